"""Network files (`derive net FILE.toml`): reading, one-line errors, and the MLP shortcut's round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from derive.cli import main
from derive.errors import DeriveError
from derive.model import build_model, make_net_spec, make_spec
from derive.netfile import network_text

ROOT = Path(__file__).resolve().parent.parent
RESIDUAL = ROOT / "examples" / "residual_mlp.toml"


def write(tmp_path: Path, text: str, name: str = "net.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("args", [
    ["--layers", "3", "--act", "sigmoid"],
    ["--layers", "3", "--act", "relu", "--loss", "ce", "--l2", "0.01", "--penalise-bias"],
    ["--layers", "2", "--act", "z*tanh(z)", "--out-act", "identity", "--loss", "(a-y)**4/4"],
    ["--layers", "3", "--act", "leaky_relu:0.1,elu", "--sizes", "3,7,6,2", "--optimizer", "adam:lr=0.01"],
    ["--layers", "1", "--act", "identity"],
    ["--layers", "2", "--act", "gelu", "--loss", "nll"],
])
def test_printed_network_file_builds_the_same_graph(tmp_path, args):
    spec = _spec_of(args)
    printed = CliRunner().invoke(main, ["mlp", *args, "--print-network"])
    assert printed.exit_code == 0, printed.output
    assert printed.output == network_text(spec)
    net = make_net_spec(write(tmp_path, printed.output))
    mlp_model, net_model = build_model(spec), build_model(net)
    assert net_model.network.nodes == mlp_model.network.nodes
    assert net_model.network.sizes == mlp_model.network.sizes
    assert net_model.network.penalty == mlp_model.network.penalty
    assert net.optimizer == spec.optimizer
    assert net_model.is_chain


def _spec_of(args: list[str]):
    """The MLPSpec the same command line gives (the options these cases use)."""
    flags = {"--penalise-bias"}
    pairs, rest = {}, list(args)
    while rest:
        key = rest.pop(0)
        pairs[key] = True if key in flags else rest.pop(0)
    return make_spec(pairs["--layers"], pairs["--act"], pairs.get("--out-act"), pairs.get("--loss", "mse"),
                     pairs.get("--sizes"), optimizer=pairs.get("--optimizer"), l2=pairs.get("--l2"),
                     l1=pairs.get("--l1"), penalise_bias=bool(pairs.get("--penalise-bias")))


@pytest.mark.parametrize("text, message", [
    ("input = 4\n", "expected at least one [[layers]] table"),
    ("[[layers]]\nkind = 'dense'\nunits = 3\n", "missing key 'input'"),
    ("input = 4\nlos = 'mse'\n[[layers]]\nkind = 'dense'\nunits = 3\n", "unknown key 'los'; accepted: input, loss"),
    ("input = 4\n[[layers]]\nkind = 'dens'\nunits = 3\n", "layers[1]: unknown kind 'dens'; accepted: "),
    ("input = 4\n[[layers]]\nkind = 'dense'\n", "layers[1] (kind 'dense'): missing key 'units'"),
    ("input = 4\n[[layers]]\nkind = 'dense'\nunits = 0\n", "units = 0; expected a whole number from 1 to 100000"),
    ("input = 4\n[[layers]]\nkind = 'dense'\nunits = 3\nsize = 2\n", "unknown key 'size'; accepted: kind, name, input"),
    ("input = 4\n[[layers]]\nkind = 'dense'\nunits = 3\n[[layers]]\nkind = 'add'\nfrom = 'h'\n",
     "from = 'h' names no earlier layer; no earlier layer has a name"),
    ("input = 4\n[[layers]]\nkind = 'dense'\nunits = 3\nname = 'h'\n[[layers]]\nkind = 'dense'\nunits = 3\nname = 'h'\n",
     "name 'h' is used by an earlier layer"),
    ("input = 4\n[[layers]]\nkind = 'add'\nfrom = 'x'\n", "names no earlier layer"),
    ("input = 4\n[[layers]]\nkind = 'dense'\nunits = 3\nactivation = 'nope'\n", "activation: unknown activation 'nope'"),
    ("input = 4\nloss = 'ce'\n[[layers]]\nkind = 'dense'\nunits = 3\nactivation = 'tanh'\n",
     "loss 'ce' takes log(a) and needs outputs in (0, 1)"),
    ("input = 4\n[[layers]]\nkind = 'dense'\nunits = 3\nname = 'h'\n[[layers]]\nkind = 'add'\nfrom = 'h'\nactivation = 'tanh'\n",
     "unknown key 'activation'"),
    ("input = 4\nl2 = -1\n[[layers]]\nkind = 'dense'\nunits = 3\n", "l2: -1; expected a number with 0 < λ ≤ 1000"),
    ("input = 4\noptimizer = 'adamm'\n[[layers]]\nkind = 'dense'\nunits = 3\n", "optimizer: unknown optimizer 'adamm'"),
    ("input = 4\n[[layers]\nkind = 'dense'\n", "is not valid TOML"),
    ("input = 'four'\n[[layers]]\nkind = 'dense'\nunits = 3\n", "input = 'four'; expected a whole number"),
])
def test_bad_files_are_refused_in_one_line_naming_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(DeriveError) as caught:
        make_net_spec(path)
    text_of_error = str(caught.value)
    assert text_of_error.startswith(path + ":")
    assert message in text_of_error
    assert "\n" not in text_of_error


def test_cli_refuses_a_bad_file_with_exit_2_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "input = 4\n[[layers]]\nkind = 'dense'\nunits = -3\n")
    result = CliRunner().invoke(main, ["net", path])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "units = -3" in result.output
    assert not (tmp_path / "outputs").exists()


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(DeriveError, match="cannot be read"):
        make_net_spec(str(tmp_path / "absent.toml"))


def test_residual_example_builds_a_graph_with_a_skip():
    model = build_model(make_net_spec(str(RESIDUAL)))
    network = model.network
    assert not model.is_chain
    a1 = next(node.output for node in network.layers if node.output.label == "a_1")
    assert len(network.consumers[a1]) == 2 and network.named_gradient(a1)
    assert network.sizes == (4, 6, 6, 6, 3)


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.toml")), ids=lambda p: p.name)
def test_every_example_network_file_builds(path):
    from derive.rnn import RNNSpec, build_rnn

    spec = make_net_spec(str(path))
    if isinstance(spec, RNNSpec):  # recurrent layers: the network of `derive rnn` (tests/test_rnn.py derives it)
        assert build_rnn(spec).network.layers
        return
    model = build_model(spec)
    assert model.network.layers
    if path.name.startswith("mlp"):
        assert model.is_chain  # a printed MLP file gives the MLP's document


@pytest.mark.parametrize("last", ["", 'activation = "identity"\n'], ids=["no-activation", "identity"])
def test_a_network_ending_in_a_dense_layer_derives_codes_and_verifies(tmp_path, last):
    """The output is a pre-activation when the last dense layer names no activation: its error is
    the loss's gradient itself, which the generated code must compute before it uses it."""
    from derive.run import generate

    path = tmp_path / "plain.toml"
    path.write_text('input = 4\nloss = "mse"\n\n[[layers]]\nkind = "dense"\nunits = 5\nactivation = "tanh"\n\n'
                    '[[layers]]\nkind = "dense"\nunits = 3\n' + last)
    outcome = generate(make_net_spec(str(path), formats="py"))
    assert outcome.report.passed, [c.name for c in outcome.report.checks if c.ran and not c.passed]
    assert "def gradients(" in outcome.files["model.py"].decode()
