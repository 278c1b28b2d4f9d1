"""The training sections in the written documents: every optimizer renders, LaTeX compiles, JSON
round-trips through SymPy."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import sympy as sp

from conftest import generated
from derive.catalog.optimizers import OPTIMIZERS
from derive.model import make_spec
from derive.notation import Expectation, Variance


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_every_optimizer_has_its_section(optimizer):
    """The complete section (`--detail full`): every option in the table; the lesson prints the step only."""
    outcome = generated(make_spec(1, "identity", None, "mse", None, "md,json", optimizer=optimizer, detail="full"))
    text = outcome.files["derivation.md"].decode()
    opt = OPTIMIZERS[optimizer]
    assert re.search(r"## (\d+)\. Optimizer\n", text) and re.search(r"## (\d+)\. Initialisation\n", text)
    assert text.index(". Optimizer\n") < text.index(". Initialisation\n") < text.index("## A. Generated code")
    assert f"defined exactly as `{opt.torch_class}`" in text
    for hyper in opt.hypers:
        assert f"| `{hyper.name}` |" in text
    assert text.count("$$") % 2 == 0 and "\\text{\\Pi}" not in text and "Infinity" not in text
    document = json.loads(outcome.files["derivation.json"])
    assert document["training"]["optimizer"]["torch"] == opt.torch_class
    names = {"Expectation": Expectation, "Variance": Variance}
    for step, data in zip(outcome.training.equations, document["training"]["optimizer"]["equations"]):
        assert sp.sympify(data["rhs"]["sympy"], locals=names) == step.rhs


NO_TEX = shutil.which("pdflatex") is None and not os.environ.get("DERIVE_REQUIRE_TEX")


@pytest.mark.skipif(NO_TEX, reason="pdflatex is not installed (CI installs TeX Live and sets DERIVE_REQUIRE_TEX)")
# leaky_relu: an activation name with an underscore, written in the initialisation table
# every detail once: the complete sections, the lesson's short ones and the summary
@pytest.mark.parametrize("config", [(2, "relu", "ce", "momentum:dampening=0.1", "full"),
                                    (2, "sigmoid", "mse", "adamw", "lesson"), (2, "leaky_relu", "mse", "sgd", "summary")])
def test_training_sections_compile_with_pdflatex(tmp_path, config):
    layers, act, loss, optimizer, detail = config
    tex = generated(make_spec(layers, act, None, loss, None, "tex", optimizer=optimizer,
                             detail=detail)).files["derivation.tex"]
    (tmp_path / "derivation.tex").write_bytes(tex)
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "derivation.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    log = (tmp_path / "derivation.log").read_text(errors="replace")
    assert "Undefined control sequence" not in log and "Double superscript" not in log
