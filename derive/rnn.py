"""`derive rnn`: a recurrent network over sequences, as a graph of the engine's nodes.

    derive rnn --cell rnn --input 3 --hidden 4 --layers 1 --steps 5 --output last --units 2

The graph is: for each stacked layer l an Elman cell (z⁽ˡ⁾, reading the sequence below and its own
h⁽ˡ⁾ at the previous step) and its activation (h⁽ˡ⁾ = a⁽ˡ⁾), or the nodes of an LSTM or GRU layer
(`layers.lstm`, `layers.gru`) ending in h⁽ˡ⁾ = a⁽ˡ⁾; then either the last step's state
and a dense head (`--output last`: the loss at the last step), or a dense head at every step
(`--output all`: the loss summed over the steps); then the loss. The derivation runs at a
symbolic number of steps T (the size t of the time axes); `--steps` only sets the length of the
sequences the checks and the generated code's demonstration use.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from derive.catalog import Activation, Loss, resolve_activation, resolve_loss
from derive.catalog.optimizers import choice_text, resolve_optimizer
from derive.errors import DeriveError
from derive.layers import Dense, LossKind, Node, activation_kind
from derive.layers.gru import gru_layer
from derive.layers.lstm import lstm_layer
from derive.layers.recurrent import LastStep, RNNCell, StepDense, StepMeanLoss
from derive.network import Network
from derive.notation import Axis, LayerRef, Q
from derive.spec import OptimizerChoice, parse_formats, parse_lang, slug_part

CELLS = ("rnn", "lstm", "gru")
OUTPUTS = ("last", "all", "mean")  # the loss at the last step, summed over the steps, averaged over them
CELL_ACTIVATIONS = ("tanh", "relu")  # PyTorch's nn.RNN nonlinearity
FORMATS = ("md", "tex", "py", "json", "pdf", "html")
DEFAULT_FORMATS = ("md", "tex", "py", "json")
MAX_LAYERS = 3
MAX_UNITS = 4096
MAX_STEPS = 1000


@dataclass(frozen=True)
class RNNSpec:
    """The choices of `derive rnn`, validated (see `make_rnn_spec`)."""

    cell: str = "rnn"
    inputs: int = 3
    hidden: int = 4
    layers: int = 1
    steps: int = 5
    output: str = "last"
    units: int = 2
    act: str = "tanh"
    out_act: str = "identity"
    loss: str = "mse"
    formats: tuple[str, ...] = DEFAULT_FORMATS
    lang: str = "en"
    optimizer: OptimizerChoice = OptimizerChoice()  # of the generated update() and train()
    source: str | None = None  # the network file these choices were read from (`derive net FILE.toml`)

    def slug(self) -> str:
        """Folder name under outputs/: rnn-rnn-last-L1-tanh-identity-mse (sizes and language when not the
        defaults); for a network file net-<its name>, as every network file's."""
        if self.source is not None:
            from derive.spec import NetSpec

            return NetSpec(self.source, 1, (), lang=self.lang, optimizer=self.optimizer).slug()
        parts = ["rnn", self.cell, self.output, f"L{self.layers}", self.act, slug_part(self.out_act), slug_part(self.loss)]
        default = RNNSpec()
        sizes = (self.inputs, self.hidden, self.units, self.steps)
        if sizes != (default.inputs, default.hidden, default.units, default.steps):
            parts.append("n{}h{}k{}T{}".format(*sizes))
        if self.lang != default.lang:
            parts.append(self.lang)
        return "-".join(parts) + self.optimizer.slug()

    def command(self) -> str:
        """The `derive rnn` command that reproduces these choices (defaults left out), or the `derive
        net` command of the network file they were read from."""
        default = RNNSpec()
        if self.source is not None:
            return " ".join(["derive net", shlex.quote(self.source)] + ([f"--lang {self.lang}"] if self.lang != "en" else []))
        parts = ["derive rnn", f"--cell {self.cell}"]
        for option, name in (("--input", "inputs"), ("--hidden", "hidden"), ("--layers", "layers"),
                             ("--steps", "steps"), ("--output", "output"), ("--units", "units"),
                             ("--act", "act"), ("--out-act", "out_act"), ("--loss", "loss"), ("--lang", "lang")):
            if getattr(self, name) != getattr(default, name):
                parts.append(f"{option} {shlex.quote(str(getattr(self, name)))}")
        if self.optimizer != default.optimizer:
            parts.append(f"--optimizer {shlex.quote(choice_text(self.optimizer))}")
        return " ".join(parts)


def _whole(value, option: str, low: int, high: int) -> int:
    text = str(value).strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise DeriveError(f"invalid value for {option}: {value!r}; expected a whole number from {low} to {high}")
    return int(text)


def _choice(value: str, option: str, accepted: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in accepted:
        raise DeriveError(f"invalid value for {option}: {value!r}; accepted: {', '.join(accepted)}")
    return text


def make_rnn_spec(cell="rnn", inputs=3, hidden=4, layers=1, steps=5, output="last", units=2, act="tanh",
                  out_act=None, loss="mse", formats=None, lang=None, optimizer=None, source=None) -> RNNSpec:
    """Validate the choices of `derive rnn`; a DeriveError names the first bad value and what is accepted."""
    cell = _choice(cell, "--cell", CELLS)
    act = _choice(act, "--act", CELL_ACTIVATIONS)
    if cell != "rnn" and act != "tanh":
        raise DeriveError(f"invalid combination: --act {act} with --cell {cell}; its activations are fixed "
                          "(σ for the gates, tanh for the cell and candidate), so --act takes only tanh there")
    loss_entry = resolve_loss(loss)
    if loss_entry.required_output or loss_entry.target == "probability":
        raise DeriveError(f"invalid value for --loss: {loss!r} needs a softmax output, which `derive rnn` does not "
                          "offer yet; accepted: mse, mae, huber:δ, bce (with --out-act sigmoid) or an expression")
    out_name = out_act if out_act is not None else (loss_entry.default_output or "identity")
    output_entry = resolve_activation(out_name, option="--out-act")
    if output_entry.is_vector:
        raise DeriveError(f"invalid value for --out-act: {out_name!r}; the head of `derive rnn` takes an "
                          "element-wise activation (identity, sigmoid, tanh, …), not softmax or log_softmax")
    if loss_entry.needs_unit_interval and not output_entry.in_unit_interval:
        raise DeriveError(f"invalid combination: loss {loss_entry.name!r} takes log(a) and needs outputs in (0, 1), "
                          f"but --out-act {output_entry.spec_text!r} can leave that range; use --out-act sigmoid")
    return RNNSpec(cell, _whole(inputs, "--input", 1, MAX_UNITS), _whole(hidden, "--hidden", 1, MAX_UNITS),
                   _whole(layers, "--layers", 1, MAX_LAYERS), _whole(steps, "--steps", 1, MAX_STEPS),
                   _choice(output, "--output", OUTPUTS), _whole(units, "--units", 1, MAX_UNITS), act,
                   output_entry.spec_text, loss_entry.spec_text,
                   parse_formats(formats, FORMATS, DEFAULT_FORMATS), parse_lang(lang), resolve_optimizer(optimizer), source)


@dataclass(frozen=True)
class RNNModel:
    """The network of a spec and the catalog entries it was built from."""

    spec: RNNSpec
    network: Network
    cell_activation: Activation
    output_activation: Activation
    loss: Loss



def build_rnn(spec: RNNSpec) -> RNNModel:
    """The graph of `spec` (see the module docstring): cells l = 1…L, then the head's layers."""
    L = LayerRef
    g = resolve_activation(spec.act)
    head_act = resolve_activation(spec.out_act)
    loss = resolve_loss(spec.loss)
    nodes: list[Node] = []
    below, below_axes = Q("a", 0), (Axis("t", L(0)), Axis("n", L(0)))
    for l in range(1, spec.layers + 1):
        if spec.cell in ("lstm", "gru"):
            make = lstm_layer if spec.cell == "lstm" else gru_layer
            layer = make(L(l), below, below_axes, spec.hidden, resolve_activation("sigmoid"), g)
        else:
            cell = Node(RNNCell(spec.hidden), L(l), (below, Q("a", l)),
                        (below_axes, (Axis("t", L(l)), Axis("n", L(l)))))
            layer = [cell, Node(activation_kind(g), L(l), (Q("z", l),), (cell.out_axes,))]
        nodes += layer
        below, below_axes = layer[-1].output, layer[-1].out_axes
    top = spec.layers + 1
    sizes = [spec.inputs] + [spec.hidden] * spec.layers
    if spec.output == "last":
        last = Node(LastStep(), L(top), (below,), (below_axes,))
        nodes.append(last)
        sizes.append(spec.hidden)
        top += 1
        head = Node(Dense(spec.units), L(top), (last.output,))
    else:
        head = Node(StepDense(spec.units), L(top), (below,), (below_axes,))
    out = Node(activation_kind(head_act), L(top), (head.output,), (head.out_axes,))
    sizes.append(spec.units)
    kind = StepMeanLoss(loss) if spec.output == "mean" else LossKind(loss)
    nodes += [head, out, Node(kind, L(top), (out.output,), (out.out_axes,))]
    return RNNModel(spec, Network(tuple(nodes), tuple(sizes)), g, head_act, loss)
