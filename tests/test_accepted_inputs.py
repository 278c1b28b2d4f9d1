"""Every input the parser accepts either derives and verifies, or is refused in one line.

Losses users may type — linear ones (a constant ∂C/∂a), steps, kinks, odd powers — after every kind
of output activation. Run through the command line as users run it: exit 0 with a passed
verification, or exit 2 with one line on standard error and nothing written. Never a traceback, and
never a verification failure (exit 1), which would mean the tool derived something wrong.
"""

import re

import pytest
from click.testing import CliRunner

from derive.cli import main

# every test here parses user text under CPU-time deadlines: run under load too (tests/conftest.py)
pytestmark = pytest.mark.time_limited

LINEAR = ["a", "a-y", "3*a", "-a"]
OUTPUTS = [None, "identity", "sigmoid", "softmax", "log_softmax"]
OTHER = ["Heaviside(a)", "exp(a)", "abs(a-y)**3", "max(a,y)", "pi*a", "y-a", "a*y", "a**3-a", "max(a,0)"]
CASES = [(loss, out) for loss in LINEAR for out in OUTPUTS] + [(loss, out) for loss in OTHER for out in (None, "log_softmax")]
# refused, with the reason the message must give
REFUSED = {
    **{(loss, "softmax"): "softmax outputs sum to 1" for loss in LINEAR},
    ("exp(a)", "log_softmax"): "log-softmax outputs sum to 1",
    ("max(a,0)", "log_softmax"): "is 0 for every output of 'log_softmax'",
    ("Heaviside(a)", None): "is 0 for every output of 'tanh'",
    ("Heaviside(a)", "log_softmax"): "is 0 for every output",
}


@pytest.mark.parametrize("loss, out", CASES, ids=[f"{loss}-{out or 'default'}" for loss, out in CASES])
def test_loss_derives_and_verifies_or_is_refused_in_one_line(tmp_path, loss, out):
    folder = tmp_path / "out"
    args = ["mlp", "--layers", "2", "--act", "tanh", "--loss", loss, "--format", "py", "--out", str(folder)]
    result = CliRunner().invoke(main, args + (["--out-act", out] if out else []))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    if (loss, out) in REFUSED:
        assert result.exit_code == 2, result.output
        message = result.output.strip()
        assert "\n" not in message and message.startswith("derive: error: invalid")
        assert REFUSED[(loss, out)] in message and "every gradient would be 0" in message
        assert not folder.exists()
    else:
        assert result.exit_code == 0, result.output
        assert "verification passed" in result.output


@pytest.mark.parametrize("loss, value", [("a", "np.ones_like(A2)"), ("a-y", "np.ones_like(A2)"),
                                         ("3*a", "3*np.ones_like(A2)"), ("-a", "-np.ones_like(A2)")])
def test_a_linear_loss_after_an_identity_output_gives_a_constant_error_array(tmp_path, loss, value):
    """δ⁽ᴸ⁾ is the same number in every entry: the formula is that number times 𝟏, an array, so the
    products and sums below it work (it was a scalar, and the matrix form crashed)."""
    folder = tmp_path / "out"
    args = ["mlp", "--layers", "2", "--act", "tanh", "--out-act", "identity", "--loss", loss, "--out", str(folder)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"    delta2 = {value}\n" in (folder / "model.py").read_text()
    # the output error is that number times the vector of ones, in the derivation's matrix form
    # (the lesson prints it on a line of its own, `full` in an aligned derivation: "= " or "&= ")
    assert re.search(r"\\delta\^\{\(2\)\} &?= (\d+ |- )?\\mathbf\{1\}", (folder / "derivation.md").read_text())


def test_a_step_activation_is_refused_in_one_line():
    result = CliRunner().invoke(main, ["mlp", "--layers", "2", "--act", "Heaviside(z)"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "no gradient passes through it" in result.output
