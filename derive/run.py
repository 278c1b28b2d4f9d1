"""The whole job, from a validated spec to the files it writes.

spec → model → derivation → code → verification → presentation → rendered files, in that order and
in memory; files are written only at the very end, and only when every check passed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from derive import __version__
from derive.codegen import plan_code
from derive.derivation import Derivation, derive
from derive.errors import VerificationFailed
from derive.model import build_model
from derive.present import PICTURE_FILE, code_context, document_context, json_document
from derive.render import render, write_files
from derive.spec import DEFAULT_LANGUAGE, MLPSpec
from derive.verify import DirectDifferentiation, Report, verify

FILE_NAMES = {"md": "derivation.md", "tex": "derivation.tex", "py": "model.py", "json": "derivation.json",
              "pdf": "derivation.pdf", "html": "derivation.html", "ipynb": "derivation.ipynb"}


def require_tools(spec: MLPSpec) -> None:
    """Fail in one line, before any work, if a requested format needs something that is not installed."""
    if "pdf" in spec.formats:
        from derive.typeset import require

        require(spec.lang)
    if "html" in spec.formats:
        from derive.mathml import require

        require()
    if "ipynb" in spec.formats:
        from derive.notebook import require

        require()


@dataclass
class Outcome:
    spec: MLPSpec
    derivation: Derivation
    report: Report
    files: dict[str, bytes]  # file name → content
    seconds: float


def command_line(spec: MLPSpec) -> str:
    """The shortest `derive mlp` command that reproduces this spec (shown in every output)."""
    from derive.model import make_spec

    parts = ["derive mlp", f"--layers {spec.layers}"]
    hidden = spec.hidden_activations
    act = hidden[0] if hidden and len(set(hidden)) == 1 else ",".join(hidden) if hidden else spec.output_activation
    parts.append(f"--act {act}")
    if spec.loss != "mse":
        parts.append(f"--loss {spec.loss}")
    if make_spec(spec.layers, act, None, spec.loss).output_activation != spec.output_activation:
        parts.append(f"--out-act {spec.output_activation}")
    if spec.sizes != make_spec(spec.layers, act, None, spec.loss).sizes:
        parts.append("--sizes " + ",".join(map(str, spec.sizes)))
    if spec.lang != DEFAULT_LANGUAGE:
        parts.append(f"--lang {spec.lang}")
    return " ".join(parts)


def generate(spec: MLPSpec, *, compile_pdf: bool = True) -> Outcome:
    """Derive, verify and render everything for `spec`, in memory. With `compile_pdf` False a
    requested PDF is left out (the gallery's freshness check compares its source stamp instead)."""
    start = time.perf_counter()
    require_tools(spec if compile_pdf else replace(spec, formats=tuple(f for f in spec.formats if f != "pdf")))
    model = build_model(spec)
    direct = DirectDifferentiation(model)  # runs in a second process while the engine derives
    derivation = derive(model)
    plan = plan_code(derivation)
    command = command_line(spec)
    title = f"derive {__version__}: {spec.slug()}"
    source = render("model.py.j2", code_context(plan, title=title, command=command))
    report = verify(derivation, source, direct)
    files: dict[str, bytes] = {}
    if "py" in spec.formats:
        files[FILE_NAMES["py"]] = source.encode()
    contexts: dict[str, dict] = {}

    def context(fmt: str) -> dict:
        if fmt not in contexts:
            contexts[fmt] = document_context(derivation, report, plan, command=command, fmt=fmt, lang=spec.lang)
        return contexts[fmt]

    if "md" in spec.formats:
        files[FILE_NAMES["md"]] = render("derivation.md.j2", context("md")).encode()
        files[PICTURE_FILE] = context("md")["picture"]["svg"].encode()
    if "tex" in spec.formats or "pdf" in spec.formats:
        tex = render("derivation.tex.j2", context("tex"))
        if "tex" in spec.formats:
            files[FILE_NAMES["tex"]] = tex.encode()
    if "json" in spec.formats:
        document = json_document(derivation, report, command=command)
        files[FILE_NAMES["json"]] = (json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode()
    if "html" in spec.formats:
        files[FILE_NAMES["html"]] = render("derivation.html.j2", context("html")).encode()
    if "ipynb" in spec.formats:
        from derive.notebook import notebook

        files[FILE_NAMES["ipynb"]] = notebook(context("md"), render("derivation.md.j2", context("md")), source, spec)
    if "pdf" in spec.formats and compile_pdf:
        from derive.typeset import compile_pdf as compile_tex

        files[FILE_NAMES["pdf"]] = compile_tex(tex, spec.lang)
    return Outcome(spec, derivation, report, files, time.perf_counter() - start)


def generate_and_write(spec: MLPSpec, out: Path) -> tuple[Outcome, list[Path]]:
    """Generate, and write the files only if every check passed."""
    outcome = generate(spec)
    if not outcome.report.passed:
        failed = ", ".join(c.name for c in outcome.report.checks if c.ran and not c.passed)
        raise VerificationFailed(f"verification failed ({failed}); nothing was written to {out}")
    return outcome, write_files(out, outcome.files)
