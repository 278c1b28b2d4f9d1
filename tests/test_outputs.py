"""Properties of the written files: deterministic, well-formed, compiling, and the gallery fresh."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from derive.notation import Q
import sympy as sp

from derive.gallery import gallery_specs, stale_files
from derive.ops import MATRIX_FUNCTIONS
from derive.model import make_spec
from derive.run import generate
from derive.present import sympy_text

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def outcome():
    return generate(make_spec(3, "sigmoid", None, "mse"))


def test_same_command_gives_byte_identical_files():
    spec = make_spec(2, "relu", None, "ce")
    assert generate(spec).files == generate(spec).files


def test_the_quick_start_reproduces_the_committed_gallery_files(outcome):
    # the README's first command writes into outputs/mlp-L3-sigmoid-sigmoid-mse/, which the gallery
    # fills with every format: the files it writes must be the committed ones, byte for byte, so a
    # clone stays clean (the formats asked for are not part of any file)
    folder = ROOT / "outputs" / "mlp-L3-sigmoid-sigmoid-mse"
    assert outcome.files and all((folder / name).read_bytes() == data for name, data in outcome.files.items())


def test_no_python_object_leaks_into_documents(outcome):
    for name, data in outcome.files.items():
        text = data.decode()
        assert "object at 0x" not in text and "<built-in" not in text and "Undefined" not in text, name


def test_markdown_math_is_balanced(outcome):
    text = outcome.files["derivation.md"].decode()
    assert text.count("$$") % 2 == 0
    inline = re.sub(r"\$\$.*?\$\$", "", text, flags=re.S)
    inline = re.sub(r"```.*?```", "", inline, flags=re.S)
    assert inline.count("$") % 2 == 0
    for block in re.findall(r"\$\$(.*?)\$\$", text, flags=re.S):
        assert block.count("{") == block.count("}"), block
        assert len(re.findall(r"\\left(?!arrow)", block)) == len(re.findall(r"\\right(?!arrow)", block)), block


def test_markdown_has_every_section(outcome):
    text = outcome.files["derivation.md"].decode()
    # review 30: the worked example right after the four equations, the exercises after the cost, the
    # table of symbols an appendix beside the other notations
    headings = ("What we want to compute", "Forward pass", "Loss", "The network and its two passes",
                "How every step works", "The error of the output layer", "The backward recursion",
                "Gradients of the parameters", "The four equations in words", "A worked example",
                "The big picture: sums over paths", "What the equations say about learning", "Choosing the loss",
                "Minibatch form", "The algorithm", "Why backpropagation is fast", "Exercises",
                "Training the network", "Verification", "Notation", "Other notations")
    at = [text.index(f". {heading}\n") for heading in headings]
    assert at == sorted(at)  # in this order
    assert "\n## Reference\n" not in text  # the lesson runs on into its training section and the appendices
    assert r"\boxed" in text


def test_json_steps_round_trip_through_sympy(outcome):
    document = json.loads(outcome.files["derivation.json"])
    assert document["spec"]["layers"] == 3 and document["verification"]["passed"]
    names = {f.__name__: f for f in MATRIX_FUNCTIONS}
    steps = outcome.derivation.sample.steps[Q("delta", 2)]
    for step, data in zip(steps, document["steps"]["sample"]["delta_2"]):
        assert sp.sympify(data["lhs"]["sympy"], locals=names) == step.lhs
        assert sp.sympify(data["rhs"]["sympy"], locals=names) == step.rhs
        assert data["rule"] == step.rule
    formula = document["formulas"]["batch"]["grad_W_1"]["matrix"]["rhs"]["sympy"]
    assert sp.sympify(formula, locals=names) == outcome.derivation.batch.results[Q("grad_W", 1)].matrix_rhs


def test_sympy_text_is_srepr_for_every_result(outcome):
    for result in outcome.derivation.sample.results.values():
        assert sp.sympify(sympy_text(result.rhs)) == result.rhs


def _run_with_numpy_only(outcome, tmp_path, names: tuple[str, ...], code: str) -> str:
    """Run `code` in a fresh Python in a folder holding the generated files `names`, with derive's own
    dependencies blocked: what it printed."""
    for name in names:
        (tmp_path / name).write_bytes(outcome.files[name])
    blocked = "import sys\nfor blocked in ('sympy', 'jinja2', 'click', 'derive'):\n    sys.modules[blocked] = None\n"
    done = subprocess.run([sys.executable, "-c", blocked + code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_generated_module_needs_only_numpy(outcome, tmp_path):
    code = (
        "import numpy as np, model\n"
        "p = model.init_params(model.SIZES, np.random.default_rng(0))\n"
        "X = np.ones((4, 7)); Y = np.zeros((3, 7))\n"
        "g = model.gradients(p, X, Y)\n"
        "assert set(g) == set(p) and all(g[k].shape == p[k].shape for k in p)\n"
        "c = model.forward(p, X)\n"
        "assert c['A0'] is X and c['Z3'].shape == (3, 7)\n"
        "print(model.loss(p, X, Y))\n"
    )
    assert float(_run_with_numpy_only(outcome, tmp_path, ("model.py",), code)) > 0


def test_the_workspace_form_beside_it_imports_model_and_needs_only_numpy(outcome, tmp_path):
    """model_inplace.py imported for real from the folder (its `from model import …` reads model.py
    there): its gradients_into gives the numbers of model.gradients, and its train runs."""
    code = (
        "import numpy as np, model, model_inplace\n"
        "rng = np.random.default_rng(0)\n"
        "p = model.init_params(model.SIZES, rng)\n"
        "X = rng.standard_normal((4, 7)); Y = rng.standard_normal((3, 7))\n"
        "g = model_inplace.gradients_into(model_inplace.Workspace(model.SIZES, 7), p, X, Y)\n"
        "assert all(np.array_equal(g[k], model.gradients(p, X, Y)[k]) for k in p)\n"
        "h = model_inplace.train(p, X, Y, epochs=3, batch_size=3, rng=rng, quiet=True)\n"
        "print(h['loss'][-1] < h['loss'][0])\n"
    )
    assert _run_with_numpy_only(outcome, tmp_path, ("model.py", "model_inplace.py"), code).strip() == "True"


NO_TEX = shutil.which("pdflatex") is None and not os.environ.get("DERIVE_REQUIRE_TEX")


@pytest.mark.skipif(NO_TEX, reason="pdflatex is not installed (CI installs TeX Live and sets DERIVE_REQUIRE_TEX)")
@pytest.mark.parametrize("config", [(3, "sigmoid", None, "mse"), (3, "relu", None, "ce"), (1, "identity", None, "mse")])
def test_latex_compiles_with_pdflatex(tmp_path, config):
    (tmp_path / "derivation.tex").write_bytes(generate(make_spec(*config[:2], config[2], config[3])).files["derivation.tex"])
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "derivation.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "derivation.pdf").stat().st_size > 10_000
    log = (tmp_path / "derivation.log").read_text(errors="replace")
    assert "Undefined control sequence" not in log


def test_gallery_is_fresh():
    """outputs/ must be what `python -m derive.gallery` writes with the current code."""
    stale = stale_files(ROOT / "outputs")
    assert not stale, "stale gallery files (run `python -m derive.gallery`): " + ", ".join(stale)


def test_gallery_covers_the_standard_configurations():
    slugs = {spec.slug() for spec in gallery_specs(ROOT)}
    assert {"mlp-L3-sigmoid-sigmoid-mse", "mlp-L3-relu-softmax-ce", "mlp-L2-tanh-sigmoid-bce"} <= slugs
