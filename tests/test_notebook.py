"""--format ipynb: the notebook runs from top to bottom in a real kernel, in every language."""

import json
import re
import subprocess
import sys

import pytest

from conftest import ROOT, need
from derive.model import make_spec
from derive.run import generate

GALLERY = {
    "en": ROOT / "outputs" / "mlp-L3-sigmoid-sigmoid-mse" / "derivation.ipynb",
    "zh": ROOT / "outputs" / "mlp-L3-sigmoid-sigmoid-mse-zh" / "derivation.ipynb",
}


def _have(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


@pytest.mark.parametrize("lang", GALLERY)
def test_notebook_executes_without_errors(lang):
    need(all(map(_have, ("nbformat", "nbclient", "ipykernel", "matplotlib"))), "the notebook extra and ipykernel",
         "DERIVE_REQUIRE_NOTEBOOK")
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(GALLERY[lang], as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=False).execute()  # raises on any cell error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    error = float(re.search(r": ([0-9.e+-]+)\n", printed).group(1))
    assert error < 1e-6  # the gradient check printed its error
    before, after = map(float, re.findall(r": ([0-9.]+)\n", printed)[-2:])
    assert after < before
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the loss plot


def test_notebook_holds_the_derivation_the_model_and_the_picture():
    nb = json.loads(GALLERY["en"].read_text())
    assert nb["nbformat"] == 4
    markdown = [("".join(c["source"]), c) for c in nb["cells"] if c["cell_type"] == "markdown"]
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    md = (ROOT / "outputs" / "mlp-L3-sigmoid-sigmoid-mse" / "derivation.md").read_text()
    for block in re.findall(r"\$\$.*?\$\$", md, flags=re.S):
        assert any(block in text for text, _ in markdown)
    picture = [c for text, c in markdown if "attachment:network.svg" in text]
    assert len(picture) == 1 and "image/svg+xml" in picture[0]["attachments"]["network.svg"]
    assert code[0] == (ROOT / "outputs" / "mlp-L3-sigmoid-sigmoid-mse" / "model.py").read_text().strip("\n")
    assert "gradients(params, X, Y)" in code[1] and "plt.show()" in code[2]
    assert all(c.get("outputs") == [] and c.get("execution_count") is None for c in nb["cells"] if c["cell_type"] == "code")
    assert "](#" not in "".join(text for text, _ in markdown)  # GitHub anchors do not work in Jupyter
    assert "[^" not in "".join(text for text, _ in markdown)  # Jupyter has no Markdown footnotes


def test_the_notebook_writes_footnotes_as_superscripts():
    """Jupyter has no Markdown footnotes: a note (Nielsen's letters, in `--detail full`; the lesson says
    them in its text) becomes a superscript number, as often as the Markdown cites it."""
    files = generate(make_spec(3, "sigmoid", None, "mse", formats="md,ipynb", detail="full")).files
    md = files["derivation.md"].decode()
    markdown = "".join("".join(c["source"]) for c in json.loads(files["derivation.ipynb"])["cells"]
                       if c["cell_type"] == "markdown")
    notes = re.findall(r"\[\^\d+\]", md)
    assert notes and "[^" not in markdown
    assert markdown.count("<sup>1</sup>") == notes.count("[^1]")


@pytest.mark.parametrize("config", [(2, "tanh", None, "bce"), (3, "relu", None, "ce"), (1, "identity", None, "mse"),
                                    (4, "tanh", "softmax", "mse")])
def test_training_code_runs_for_every_loss(config, tmp_path):
    """The notebook's code cells as one script (no kernel needed): check passes, cost decreases."""
    need(_have("matplotlib"), "matplotlib", "DERIVE_REQUIRE_NOTEBOOK")
    files = generate(make_spec(*config, formats="ipynb")).files
    nb = json.loads(files["derivation.ipynb"])
    script = "import matplotlib\nmatplotlib.use('Agg')\n" + "\n".join(
        "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    (tmp_path / "run.py").write_text(script)
    done = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "largest error" in done.stdout


def test_notebook_is_byte_identical_for_the_same_command():
    spec = make_spec(2, "relu", None, "ce", formats="ipynb", lang="zh")
    assert generate(spec).files == generate(spec).files
