"""The command line with the full catalog: `derive list`, user-written expressions, parameters,
penalties, and hostile text that must be refused before anything happens."""

import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from derive.catalog import ACTIVATIONS, LOSSES
from derive.cli import main

# every test here parses user text under CPU-time deadlines: run under load too (tests/conftest.py)
pytestmark = pytest.mark.time_limited


def run(args, **kwargs):
    return CliRunner().invoke(main, args, catch_exceptions=False, **kwargs)


def test_list_prints_every_entry_with_sympys_derivative():
    result = run(["list"])
    assert result.exit_code == 0
    for name in list(ACTIVATIONS) + list(LOSSES):
        assert f"  {name} " in result.output
    assert "g'(z) = exp(-z)/(1 + exp(-z))**2" in result.output  # SymPy's own derivative of the sigmoid
    assert "= a*(1 - a)" in result.output  # and the form the engine proved
    assert "alpha = 0.01 by default" in result.output and "e.g. leaky_relu:0.01" in result.output
    assert "dl/da    = Piecewise((a - y, delta >= Abs(a - y)), (delta*sign(a - y), True))" in result.output


def test_user_written_activation_and_loss_on_the_command_line(tmp_path):
    result = run(["mlp", "--layers", "2", "--act", "z*tanh(log(1+exp(z)))", "--loss", "(a-y)**4/4",
                  "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "verification passed" in result.output
    md = (tmp_path / "derivation.md").read_text()
    assert "derive mlp --layers 2 --act 'z*tanh(log(1+exp(z)))' --loss '(a-y)**4/4'" in md
    assert "`z*tanh(log(1+exp(z)))`" in md
    spec = json.loads((tmp_path / "derivation.json").read_text())["spec"]
    assert spec["activations"] == ["z*tanh(log(1+exp(z)))"] * 2 and spec["loss"] == "(a-y)**4/4"


def test_default_folder_of_a_user_expression_is_a_safe_name(workdir):
    result = CliRunner().invoke(main, ["mlp", "--layers", "1", "--act", "z/(1+abs(z))", "--format", "json"])
    assert result.exit_code == 0, result.output
    (folder,) = os.listdir(workdir / "outputs")
    assert folder.startswith("mlp-L1-none-custom_") and folder.endswith("-mse")


def test_commas_inside_parentheses_and_parameters_per_layer(tmp_path):
    result = run(["mlp", "--layers", "3", "--act", "max(0.1*z, z),leaky_relu:0.2", "--loss", "huber:0.5",
                  "--l2", "0.01", "--out", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    spec = json.loads((tmp_path / "derivation.json").read_text())["spec"]
    assert spec["activations"] == ["max(0.1*z, z)", "leaky_relu:0.2", "leaky_relu:0.2"]
    assert spec["loss"] == "huber:0.5" and spec["l2"] == "0.01"


@pytest.mark.parametrize("args, words", [
    (["--act", "relu,tanh,relu"], ["3 activations", "2 hidden layers"]),
    (["--act", "leaky_relu:2"], ["alpha", "0 ≤ alpha < 1"]),
    (["--act", "x*2"], ["unknown variable 'x' (allowed: variable z)", "accepted: numbers, variable z,"]),
    (["--act", "lambda z: z"], ["invalid activation expression 'lambda z: z': lambda is not allowed"]),
    (["--act", "lambda: 1"], ["lambda is not allowed"]),
    (["--act", "leaky_rel:0.1"], ["unknown activation 'leaky_rel:0.1'", "did you mean 'leaky_relu'"]),
    (["--act", "tanh", "--loss", "lambda a: a"], ["invalid loss expression 'lambda a: a': lambda is not allowed"]),
    (["--act", "tanh", "--loss", "a*q"], ["accepted: numbers, variables a, y,"]),
    (["--act", "log(z)"], ["not a finite real number at z = 0"]),
    (["--act", "tanh", "--loss", "a*q"], ["--loss", "unknown variable 'q'"]),
    (["--act", "tanh", "--loss", "-y*log(a)"], ["not a finite real number", "--out-act"]),
    (["--act", "tanh", "--loss", "nll", "--out-act", "softmax"], ["log-probabilities", "log_softmax"]),
    (["--act", "tanh", "--l1", "x"], ["--l1", "'x'"]),
    (["--act", "tanh", "--penalise-bias"], ["--penalise-bias"]),
    (["--act", "log_softmax"], ["output activation"]),
])
def test_bad_choices_are_one_line_errors(tmp_path, args, words):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["mlp", "--layers", "3", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert "\n" not in message and message.startswith("derive: error:")
    for word in words:
        assert word in message, message
    assert not out.exists()


# text that would do something if it were ever evaluated, through every option that takes an expression
PAYLOADS = [
    "__import__('os').system('touch PWNED')",
    "open('PWNED', 'w').write('x')",
    "exec(\"open('PWNED','w')\")",
    "eval('1')",
    "z.__class__.__mro__[1].__subclasses__()",
    "(lambda: open('PWNED', 'w'))()",
    "[open('PWNED','w') for _ in (1,)]",
    "9**9**9**9",
    "exp(exp(exp(exp(z))))**999999",
    "z" + "+z" * 400,
    "(" * 60 + "z" + ")" * 60,
    "sigmoid:__import__('os')",
    "leaky_relu:__import__('os').system('touch PWNED')",
]


@pytest.mark.parametrize("option", ["--act", "--out-act", "--loss"])
@pytest.mark.parametrize("payload", PAYLOADS)
def test_hostile_text_is_refused_with_no_side_effect(workdir, option, payload):
    base = {"--act": ["--act", payload], "--out-act": ["--act", "tanh", "--out-act", payload],
            "--loss": ["--act", "tanh", "--loss", payload.replace("z", "a")]}[option]
    start = time.process_time()
    result = CliRunner().invoke(main, ["mlp", "--layers", "2", *base])
    cpu = time.process_time() - start  # CPU seconds of this process: other jobs on the machine do not count
    assert os.listdir(workdir) == []  # no PWNED, no outputs/
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert "\n" not in message and message.startswith("derive: error: invalid value for")
    assert cpu < 1.0


def test_payload_in_a_real_process_creates_no_file(tmp_path):
    """The same in a real process started the way users start derive (no test harness in between)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    for payload in ("__import__('os').system('touch PWNED')", "open('PWNED','w').close()"):
        done = subprocess.run([sys.executable, "-m", "derive", "mlp", "--layers", "2", "--act", payload],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert list(tmp_path.iterdir()) == []
