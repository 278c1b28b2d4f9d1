// Parse every formula given on standard input (a JSON list of {"tex": ..., "display": bool}) with
// KaTeX in strict mode, as GitHub, VS Code and Jupyter renderers would, and print a JSON list of the
// failures ({"tex", "error"}).  Usage: node katex_check.cjs < formulas.json
const katex = require("katex");

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const failures = [];
  for (const { tex, display } of JSON.parse(input)) {
    try {
      katex.renderToString(tex, { displayMode: display, throwOnError: true, strict: "error" });
    } catch (error) {
      failures.push({ tex, error: String(error.message || error) });
    }
  }
  process.stdout.write(JSON.stringify({ version: katex.version, checked: JSON.parse(input).length, failures }) + "\n");
});
