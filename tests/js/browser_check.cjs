// Open a derive HTML document in headless Chromium with every network request refused, and report
// what a reader would see: console errors, page errors, requests other than the file itself,
// formulas that the browser did not lay out as MathML or that carry a render error, and a
// full-page screenshot.  Usage: node browser_check.cjs PAGE.html SHOT.png  (prints one JSON object)
const path = require("path");
const { chromium } = require("playwright-core");

async function main() {
  const [page_file, shot] = process.argv.slice(2);
  const url = "file://" + path.resolve(page_file);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
  const report = { console_errors: [], page_errors: [], requests: [] };
  try {
    const context = await browser.newContext({ viewport: { width: 1000, height: 800 }, offline: true });
    const page = await context.newPage();
    page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") report.console_errors.push(m.text()); });
    page.on("pageerror", (e) => report.page_errors.push(String(e)));
    await page.route("**/*", (route) => {
      if (route.request().url() !== url) { report.requests.push(route.request().url()); return route.abort(); }
      return route.continue();
    });
    await page.goto(url, { waitUntil: "load" });
    Object.assign(report, await page.evaluate(() => {
      const maths = [...document.querySelectorAll("math")];
      const notLaidOut = maths.filter((m) => !getComputedStyle(m).display.includes("math"))
                              .map((m) => m.getAttribute("alttext"));
      const empty = maths.filter((m) => { const r = m.getBoundingClientRect(); return r.width < 1 || r.height < 1; })
                         .map((m) => m.getAttribute("alttext"));
      const box = document.querySelector('menclose[notation="box"]');
      const text = document.body.innerText;
      return {
        title: document.title,
        lang: document.documentElement.lang,
        math: maths.length,
        display_math: maths.filter((m) => m.getAttribute("display") === "block").length,
        not_laid_out: notLaidOut,
        empty: empty,
        merror: document.querySelectorAll("merror").length,
        boxed_border: box ? getComputedStyle(box).borderTopStyle : null,
        svg: document.querySelectorAll("figure svg circle").length,
        dollars_in_text: (text.match(/\$/g) || []).length,
        headings: [...document.querySelectorAll("h2:not(.part)")].map((h) => h.textContent),
      };
    }));
    await page.screenshot({ path: shot, fullPage: false });
    await page.screenshot({ path: shot.replace(/\.png$/, "-full.png"), fullPage: true });
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(report) + "\n");
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + "\n"); process.exit(1); });
