"""The whole job, from a validated spec to the files it writes.

spec → model → derivation → code → verification → presentation → rendered files, in that order and
in memory; files are written only at the very end, and only when every check passed.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from derive import __version__
from derive.codegen import plan_code
from derive.derivation import Derivation, derive
from derive.errors import DeriveError, VerificationFailed
from derive.model import build_model
from derive.present import code_context, document_context, json_document
from derive.render import render, write_files
from derive.spec import MLPSpec, default_sizes
from derive.verify import DirectDifferentiation, Report, verify

FILE_NAMES = {"md": "derivation.md", "tex": "derivation.tex", "py": "model.py", "json": "derivation.json"}


@dataclass
class Outcome:
    spec: MLPSpec
    derivation: Derivation
    report: Report
    files: dict[str, bytes]  # file name → content
    seconds: float


def command_line(spec: MLPSpec) -> str:
    """The shortest `derive mlp` command that reproduces this spec (shown in every output); values
    a shell would split or expand (user-written expressions) are quoted."""
    from derive.model import make_spec

    parts = ["derive mlp", f"--layers {spec.layers}"]
    hidden = spec.hidden_activations
    act = hidden[0] if hidden and len(set(hidden)) == 1 else ",".join(hidden) if hidden else spec.output_activation
    parts.append(f"--act {shlex.quote(act)}")
    if spec.loss != "mse":
        parts.append(f"--loss {shlex.quote(spec.loss)}")
    try:
        default = make_spec(spec.layers, act, None, spec.loss)
    except DeriveError:  # the loss does not accept the default output activation
        default = None
    if default is None or default.output_activation != spec.output_activation:
        parts.append(f"--out-act {shlex.quote(spec.output_activation)}")
    if spec.sizes != default_sizes(spec.layers):
        parts.append("--sizes " + ",".join(map(str, spec.sizes)))
    for option, value in (("--l2", spec.l2), ("--l1", spec.l1)):
        if value is not None:
            parts.append(f"{option} {value}")
    if spec.penalise_bias:
        parts.append("--penalise-bias")
    return " ".join(parts)


def generate(spec: MLPSpec) -> Outcome:
    """Derive, verify and render everything for `spec`, in memory."""
    start = time.perf_counter()
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
    for fmt in ("md", "tex"):
        if fmt in spec.formats:
            context = document_context(derivation, report, plan, command=command, fmt=fmt)
            files[FILE_NAMES[fmt]] = render(f"derivation.{fmt}.j2", context).encode()
    if "json" in spec.formats:
        document = json_document(derivation, report, command=command)
        files[FILE_NAMES["json"]] = (json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode()
    return Outcome(spec, derivation, report, files, time.perf_counter() - start)


def generate_and_write(spec: MLPSpec, out: Path) -> tuple[Outcome, list[Path]]:
    """Generate, and write the files only if every check passed."""
    outcome = generate(spec)
    if not outcome.report.passed:
        failed = [c for c in outcome.report.checks if c.ran and not c.passed]
        reasons = [c.figures["error"] for c in failed if "error" in c.figures]
        why = f": {reasons[0]}" if reasons else ""
        raise VerificationFailed(
            f"verification failed ({', '.join(c.name for c in failed)}){why}; nothing was written to {out}")
    return outcome, write_files(out, outcome.files)
