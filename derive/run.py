"""The whole job, from a validated spec to the files it writes.

spec → model → derivation → code → verification → presentation → rendered files, in that order and
in memory; files are written only at the very end, and only when every check passed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from derive import __version__
from derive.codegen import CodePlan, plan_code
from derive.codegen_training import code_context as training_code_context
from derive.codegen_training import plan_training
from derive.derivation import Derivation, derive
from derive.initialisation import Initialisation, derive_initialisation
from derive.errors import VerificationFailed
from derive.model import build_model
from derive.present import code_context, document_context, json_document
from derive.render import render, write_files
from derive.catalog.optimizers import choice_text
from derive.spec import MLPSpec, OptimizerChoice
from derive.present_training import training_json
from derive.training import Training, derive_training
from derive.verify import DirectDifferentiation, Report, verify
from derive.verify_training import training_checks

FILE_NAMES = {"md": "derivation.md", "tex": "derivation.tex", "py": "model.py", "json": "derivation.json"}


@dataclass
class Outcome:
    spec: MLPSpec
    derivation: Derivation
    report: Report
    files: dict[str, bytes]  # file name → content
    seconds: float
    training: Training | None = None
    initialisation: Initialisation | None = None


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
    if spec.optimizer != OptimizerChoice():
        parts.append(f"--optimizer {choice_text(spec.optimizer)}")
    return " ".join(parts)


def model_source(
    derivation: Derivation,
    *,
    title: str,
    command: str,
    training: Training | None = None,
    initialisation: Initialisation | None = None,
    plan: CodePlan | None = None,
) -> str:
    """model.py for a derivation: the backward pass of `codegen` and the training code of
    `codegen_training` (the optimizer of the spec and the derived initial scales, derived here if
    not given)."""
    model = derivation.model
    training = training if training is not None else derive_training(model.spec.optimizer)
    initialisation = initialisation if initialisation is not None else derive_initialisation(model)
    context = code_context(plan if plan is not None else plan_code(derivation), title=title, command=command)
    context |= training_code_context(plan_training(model, training, initialisation))
    return render("model.py.j2", context)


def generate(spec: MLPSpec) -> Outcome:
    """Derive, verify and render everything for `spec`, in memory."""
    start = time.perf_counter()
    model = build_model(spec)
    direct = DirectDifferentiation(model)  # runs in a second process while the engine derives
    derivation = derive(model)
    training = derive_training(spec.optimizer)
    initialisation = derive_initialisation(model)
    plan = plan_code(derivation)
    command = command_line(spec)
    title = f"derive {__version__}: {spec.slug()}"
    source = model_source(derivation, title=title, command=command, training=training, initialisation=initialisation,
                          plan=plan)
    report = verify(derivation, source, direct)
    report.checks += training_checks(model, training, initialisation, source)
    files: dict[str, bytes] = {}
    if "py" in spec.formats:
        files[FILE_NAMES["py"]] = source.encode()
    for fmt in ("md", "tex"):
        if fmt in spec.formats:
            context = document_context(derivation, report, plan, command=command, fmt=fmt,
                                       training=(training, initialisation))
            files[FILE_NAMES[fmt]] = render(f"derivation.{fmt}.j2", context).encode()
    if "json" in spec.formats:
        document = json_document(derivation, report, command=command)
        document["training"] = training_json(training, initialisation)
        files[FILE_NAMES["json"]] = (json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode()
    return Outcome(spec, derivation, report, files, time.perf_counter() - start, training, initialisation)


def generate_and_write(spec: MLPSpec, out: Path) -> tuple[Outcome, list[Path]]:
    """Generate, and write the files only if every check passed."""
    outcome = generate(spec)
    if not outcome.report.passed:
        failed = ", ".join(c.name for c in outcome.report.checks if c.ran and not c.passed)
        raise VerificationFailed(f"verification failed ({failed}); nothing was written to {out}")
    return outcome, write_files(out, outcome.files)
