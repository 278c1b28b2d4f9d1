"""The whole job of `derive rnn`, from a validated spec to the files it writes.

spec → graph → derivation (per sample and per minibatch, at a symbolic step) → model.py →
checks → documents; files are written only at the end, and only when every check passed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from derive import __version__
from derive.codegen_training import optimizer_context, plan_optimizer
from derive.derivation import backward_pass
from derive.errors import VerificationFailed
from derive.inplace import INPLACE_FILE, load_inplace, package_sources
from derive.printing import latex
from derive.files import write_files
from derive.render import render, template_module
from derive.rnn import RNNSpec, build_rnn
from derive.rnn_code import code_context
from derive.rnn_document import build_rnn_document
from derive.rnn_jacobian import jacobian
from derive.rnn_state_jacobian import state_jacobian
from derive.rnn_verify import derivative_check, load_module, minibatch_check, symbolic_check
from derive.training import derive_training
from derive.verify_training import optimizer_check

TEMPLATES = ("model_rnn.py.j2", "model_rnn_workspace.py.j2")  # model.py, the workspace form of model_inplace.py
FILE_NAMES = {"md": "derivation.md", "tex": "derivation.tex", "py": "model.py", "json": "derivation.json",
              "pdf": "derivation.pdf", "html": "derivation.html"}


@dataclass
class RNNOutcome:
    spec: RNNSpec
    checks: list
    files: dict[str, bytes]
    seconds: float

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def _json(model, sample, batch, checks, command: str) -> bytes:
    def side(expr) -> dict:
        return {"latex": latex(expr), "sympy": str(expr)}

    def results(p):
        return {key.label if hasattr(key, "label") else str(key): {
            "index": {"lhs": side(r.lhs), "rhs": side(r.rhs)},
            "matrix": None if r.matrix_rhs is None else {"lhs": side(r.matrix_lhs), "rhs": side(r.matrix_rhs)},
            "steps": [{"rule": s.rule, "lhs": side(s.lhs), "rhs": side(s.rhs)} for s in p.steps.get(key, [])]}
            for key, r in p.results.items()}

    data = {"command": command, "version": __version__,
            "spec": {k: v for k, v in vars(model.spec).items() if k != "optimizer"} | {
                "optimizer": {"name": model.spec.optimizer.name, "overrides": dict(model.spec.optimizer.overrides)}},
            "per_sample": results(sample), "minibatch": results(batch),
            "verification": [{"name": c.name, "passed": bool(c.passed), "figures": c.figures} for c in checks]}
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()


def model_context(model, batch, training=None, *, title: str, command: str, version: str) -> dict:
    """Plain data for templates/model_rnn.py.j2: the loops over the steps (`rnn_code`) and the
    optimizer's init_state and update (`codegen_training`, shared with every model.py), for the
    optimizer of the spec unless `training` is given."""
    training = training if training is not None else derive_training(model.spec.optimizer)
    return (code_context(model, batch, title=title, command=command, version=version)
            | optimizer_context(plan_optimizer(training)))


def generate(spec: RNNSpec) -> RNNOutcome:
    start = time.perf_counter()
    if "pdf" in spec.formats:  # one line before any work if TeX (or the language's engine) is missing
        from derive.typeset import require

        require(spec.lang)
    if "html" in spec.formats:
        from derive.mathml import require as require_mathml

        require_mathml()
    model = build_rnn(spec)
    sample = backward_pass(model.network, False)
    batch = backward_pass(model.network, True)
    command = spec.command()
    training = derive_training(spec.optimizer)  # the optimizer's equations, as for `derive mlp`
    code = model_context(model, batch, training, title=f"derive {__version__}: {spec.slug()}", command=command,
                         version=__version__)
    source, inplace = package_sources(*TEMPLATES, code)
    module = load_module(source)
    workspace = load_inplace(module, inplace) if inplace is not None else None
    checks = [symbolic_check(model, sample), minibatch_check(model, sample, batch),
              derivative_check(model, module, workspace), optimizer_check(training, module)]
    jac = jacobian(model, module) if spec.cell == "rnn" else state_jacobian(model, module)
    files: dict[str, bytes] = {}
    if "py" in spec.formats:
        files[FILE_NAMES["py"]] = source.encode()
        if inplace is not None:
            files[INPLACE_FILE] = inplace.encode()
    if "md" in spec.formats:
        doc = build_rnn_document(model, sample, checks, code, command=command, fmt="md", lang=spec.lang,
                                 jacobian=jac, training=training)
        files[FILE_NAMES["md"]] = str(template_module("derivation.md.j2", {"doc": doc})).encode()
        files[doc.picture.file] = doc.picture.svg.encode()  # the Markdown shows the picture from this file
    if "tex" in spec.formats or "pdf" in spec.formats:
        doc = build_rnn_document(model, sample, checks, code, command=command, fmt="tex", lang=spec.lang,
                                 jacobian=jac, training=training)
        tex = render("derivation.tex.j2", {"doc": doc})
        if "tex" in spec.formats:
            files[FILE_NAMES["tex"]] = tex.encode()
        if "pdf" in spec.formats:
            from derive.typeset import compile_pdf

            files[FILE_NAMES["pdf"]] = compile_pdf(tex, spec.lang)
    if "html" in spec.formats:
        doc = build_rnn_document(model, sample, checks, code, command=command, fmt="html", lang=spec.lang,
                                 jacobian=jac, training=training)
        files[FILE_NAMES["html"]] = render("derivation.html.j2", {"doc": doc}).encode()
    if "json" in spec.formats:
        files[FILE_NAMES["json"]] = _json(model, sample, batch, checks, command)
    return RNNOutcome(spec, checks, files, time.perf_counter() - start)


def generate_and_write(spec: RNNSpec, out: Path) -> tuple[RNNOutcome, list[Path]]:
    """Generate, and write the files only if every check passed."""
    outcome = generate(spec)
    if not outcome.passed:
        failed = [c for c in outcome.checks if not c.passed]
        raise VerificationFailed(f"verification failed ({', '.join(c.name for c in failed)}): "
                                 f"{failed[0].figures}; nothing was written to {out}")
    return outcome, write_files(out, outcome.files)


def verdict(outcome: RNNOutcome) -> str:
    by = {c.name: c.figures for c in outcome.checks}
    s, b, d, o = by["symbolic"], by["minibatch"], by["derivatives"], by["optimizer_code"]
    return (f"verification passed: {s['partials']} partial derivatives match direct differentiation of the loss "
            f"unrolled over {s['steps']} steps ({'exactly' if s['exact'] else 'to ' + str(s['digits']) + ' digits'}); "
            f"minibatch form equals the mean of {b['samples']} samples; {d['partials']} in model.py match finite "
            f"differences (relative difference {d['largest_error']}; required {d['tolerance']})"
            + (f"; workspace form gradients_into equals gradients to {d['workspace_error']} (float64) and "
               f"{d['float32_error']} (float32)" if "workspace_error" in d else "")
            + f"; {o['optimizer']} update equals its equations over {o['steps']} steps")
