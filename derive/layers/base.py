"""What every layer kind is: a local forward rule at index level, and the registry of kinds.

A kind says how one entry of its output is computed from entries of its inputs and parameters
(zᵢ = Σⱼ Wᵢⱼ aⱼ + bᵢ, aᵢ = g(zᵢ), sᵢ = uᵢ + vᵢ …). Everything backward comes from that rule: the
engine (`derive.derivation`) differentiates it with SymPy and glues kinds together with the chain
rule. A kind may add proved readable forms of its local derivative (σ′ = a(1 − a)), code forms, a
picture glyph and prose keys; nothing outside its module names it.

A `Node` is one use of a kind in a network: the kind with its options, the layer number that names
its output (z⁽³⁾, a⁽³⁾), and the quantities it reads. Every entry function takes `sample`: None for
the per-sample form (zᵢ), a sample index for the minibatch form (Zᵢₛ, one column per sample).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any, ClassVar

import sympy as sp

from derive.notation import Axis, LayerRef, Q, Quantity, axis_indices, index, units_axes

# the built-in kinds by name, in the order they are listed, and the module that registers each: a
# module is imported when one of its kinds is first looked up, so a run imports only the kinds it uses
# (an MLP does not pay for convolution, attention and normalisation)
BUILT_IN: dict[str, str] = {
    **dict.fromkeys(("activation", "softmax", "log_softmax"), "derive.layers.activation"),
    "add": "derive.layers.add",
    "dense": "derive.layers.dense",
    "loss": "derive.layers.loss",
    "layernorm": "derive.layers.layernorm",
    "rmsnorm": "derive.layers.rmsnorm",
    "dropout": "derive.layers.dropout",
    "batchnorm": "derive.layers.batchnorm",
    **dict.fromkeys(("conv2d", "conv1d", "flatten", "global_avg_pool", "avg_pool2d", "max_pool2d"),
                    "derive.layers.conv"),
    "attention": "derive.layers.attention",
    "linear": "derive.layers.linear",
    "position": "derive.layers.position",
}


class KindRegistry(Mapping):
    """The kinds by name. Names are known without importing anything (error messages list them);
    a built-in kind's module is imported on its first lookup."""

    def __init__(self) -> None:
        self._classes: dict[str, type[LayerKind]] = {}

    def __getitem__(self, name: str) -> type[LayerKind]:
        if name not in self._classes and name in BUILT_IN:
            import_module(BUILT_IN[name])
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        yield from BUILT_IN
        yield from (name for name in self._classes if name not in BUILT_IN)

    def __len__(self) -> int:
        return len(BUILT_IN) + sum(name not in BUILT_IN for name in self._classes)

    def __contains__(self, name: object) -> bool:
        return name in BUILT_IN or name in self._classes

    def add(self, cls: type[LayerKind]) -> None:
        if cls.name in BUILT_IN and cls.name not in self._classes and BUILT_IN[cls.name] != cls.__module__:
            import_module(BUILT_IN[cls.name])  # the built-in kind of that name, so the clash is seen now
        existing = self._classes.get(cls.name)
        if existing is not None and existing is not cls:
            raise ValueError(f"layer kind {cls.name!r} is already registered by {existing.__name__}")
        self._classes[cls.name] = cls


KINDS = KindRegistry()


def register(cls: type[LayerKind]) -> type[LayerKind]:
    """Class decorator: make a kind known by its name (`derive net` files say `kind = "dense"`)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    KINDS.add(cls)
    return cls


def norm_symbol(param: Quantity) -> sp.Symbol:
    """‖param‖₁, the largest column sum of its absolute values, as a symbol of an error bound."""
    return sp.Symbol(f"norm_{param.label}", positive=True)


_ENTRIES_KEPT = 4096  # entries a pure kind keeps (forgotten all at once beyond, as a process derives many networks)


def pure_entry(method: Callable) -> Callable:
    """Memoise a kind's `entry` that depends on its node, unit and sample only: the derivation asks
    for each entry several times (the forward formula, then the chain rule once per input and per
    parameter), and building it (a sum, an activation applied to an entry) is SymPy work each time."""
    kept: dict = {}

    def entry(self, node: Node, unit, sample):
        key = (node, unit, sample)
        found = kept.get(key)
        if found is None:
            if len(kept) >= _ENTRIES_KEPT:
                kept.clear()
            found = kept[key] = method(self, node, unit, sample)
        return found

    entry.__doc__, entry.__name__ = method.__doc__, method.__name__
    return entry


def entry_of(quantity: Quantity, unit, sample: sp.Expr | None) -> sp.Indexed:
    """One entry of a per-sample quantity (sample None) or of its minibatch form (the sample index
    last): `unit` is one index, or a tuple of indices for a quantity with several axes."""
    base = quantity.batched(sample is not None).base
    indices = tuple(unit) if isinstance(unit, tuple) else (unit,)
    return base[indices] if sample is None else base[(*indices, sample)]


@dataclass(frozen=True)
class Option:
    """An option a kind takes in a network file: what is accepted (for error messages) and how a
    value is read (`read` raises ValueError for a value it does not accept)."""

    accepted: str
    read: Callable[[Any], Any]
    required: bool = True


def whole_number(low: int, high: int) -> Callable[[Any], int]:
    def read(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError
        return value

    return read


class LayerKind:
    """One kind of layer. Subclasses are frozen dataclasses holding the kind's options."""

    name: ClassVar[str] = ""
    output_kind: ClassVar[str] = "a"  # the quantity its output is: "z" (pre-activation) or "a"
    couples_samples: ClassVar[bool] = False  # an output entry reads other samples (batch norm will)
    inputs: ClassVar[int] = 1  # how many outputs of earlier layers it reads (the skip of a sum: 2)
    delayed: ClassVar[frozenset[int]] = frozenset()  # inputs read at the previous time step (a recurrence)
    options: ClassVar[dict[str, Option]] = {}  # what a network file may set, besides the common keys
    summary: ClassVar[str] = ""  # one line for `derive net --help` and error messages
    names_output_error: ClassVar[bool] = False  # ∂C/∂(its output) always gets a name (a step of a normalisation)
    names_input_error: ClassVar[bool] = False  # ∂C/∂(its input) always gets a name (a compact form follows it)

    @classmethod
    def build(cls, values: dict[str, Any]) -> LayerKind:
        """The kind with the option values of a network file (already read and checked)."""
        return cls(**values)

    def parameters(self, node: Node) -> tuple[Quantity, ...]:
        """The parameters it owns (W⁽ˡ⁾, b⁽ˡ⁾), in the order the documents and the code list them."""
        return ()

    def identically_zero_gradients(self, node: Node) -> tuple[Quantity, ...]:
        """Parameters whose gradient is 0 for every input by the structure of the rule (the key bias of
        attention); the numeric check measures their rounding noise against the network's largest
        gradient instead of their own scale, which is that noise."""
        return ()

    def parameter_axes(self, node: Node, param: Quantity) -> tuple[LayerRef, ...]:
        """The layers whose sizes a parameter's axes run over (W⁽ˡ⁾: n_l × n_{l−1})."""
        raise NotImplementedError

    def weights(self, node: Node) -> dict[Quantity, Quantity]:
        """Its parameters that multiply an input, each with the input it multiplies (W⁽ˡ⁾ → a⁽ˡ⁻¹⁾):
        these start random with a derived variance; every other parameter starts at zero."""
        return {}

    def parts(self, node: Node) -> tuple[Node, ...]:
        """The nodes a network file's layer of this kind becomes, in forward order, the last giving
        the layer's output: the node itself, or a chain of simpler steps (layer normalisation:
        centre, divide by the root mean square, scale and shift), each derived by the engine."""
        return (node,)

    def initial_value(self, node: Node, param: Quantity) -> int:
        """The value every entry of a parameter that is not a weight starts at (0; a scale γ: 1)."""
        return 0

    def data_inputs(self, node: Node) -> tuple[Quantity, ...]:
        """Arrays it reads that are neither parameters nor outputs of other layers and that the
        derivation holds fixed (the mask of dropout, drawn by the generated code): per-sample
        quantities whose entries are 0 or 1, shaped like its output."""
        return ()

    constant_comment: ClassVar[str] = "a fixed number of the formulas"  # what `constants` are, in model.py

    def constants(self, node: Node) -> dict[sp.Symbol, sp.Expr]:
        """Symbols of its formulas that stand for fixed numbers (dropout's p⁽ˡ⁾), with their values."""
        return {}

    def error_gain(self, node: Node, k: int, slope) -> sp.Expr | None:
        """A bound on how much this node can enlarge the largest error on its way back to input `k`:
        max|∂C/∂input| ≤ gain · max|∂C/∂output| (`slope`: the largest slope of its activation, if it
        has one). None where no such bound is stated (normalisation, attention, convolution, a mask):
        the lesson then prints no bound through it."""
        return None

    def notation_rows(self, node: Node) -> list[tuple[str, str, dict]]:
        """Rows it adds to the documents' notation table: (LaTeX, message key, values for the message)."""
        return []

    def proved_steps(self, node: Node, network, result, batch: bool) -> dict:
        """Steps to add after the engine's results of a pass, keyed by the result they follow: a
        compact form of a derived formula, proved equal to it by the kind (the three-term form of a
        normalisation's input error). Nothing by default."""
        return {}

    def fit(self, input_units: tuple[int, ...]) -> LayerKind:
        """The kind adjusted to the sizes of its inputs (a sum projects a skip of another size)."""
        return self

    def size_facts(self, node: Node) -> dict[sp.Symbol, sp.Symbol]:
        """Sizes its rule makes equal (the sum of two outputs has the size of both), as size symbol →
        size symbol; the engine uses them to collapse sums over indices of equal ranges."""
        return {}

    def units(self, node: Node, input_units: tuple[int, ...]) -> int:
        """Its number of output units, given its inputs' (the same by default)."""
        return input_units[0]

    def output_axes(self, node: Node, input_axes: tuple[tuple[Axis, ...], ...]) -> tuple[Axis, ...]:
        """The axes of its output, given those of its inputs: by default a vector of units of its own
        layer; a kind whose output has the axes of its input (an activation) keeps their roles."""
        return units_axes(node.layer)

    def output_shape(self, node: Node, input_shapes: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
        """The concrete sizes of its output axes, given its inputs' (a vector: `units`)."""
        return (self.units(node, tuple(shape[0] for shape in input_shapes)),)

    def entry(self, node: Node, unit: sp.Idx, sample: sp.Idx | None) -> sp.Expr:
        """One output entry as an expression of input and parameter entries."""
        raise NotImplementedError

    def readable(self, node: Node, expr: sp.Expr, sample: sp.Idx | None) -> tuple[sp.Expr, str] | None:
        """A proved nicer form of a local derivative of this node and the rule that justifies it."""
        return None

    # ---- code

    def code_form(self, expr: sp.Expr) -> sp.Expr:
        """Its matrix-form output as the generated code should evaluate it (an overflow-free form)."""
        return expr

    def log_stable_output(self, inp: sp.Symbol) -> sp.Expr | None:
        """Its output in terms of its input array for a loss that takes log(a), so that the code can
        merge the two without overflow (softmax: exp(Z − lse(Z))); None: use the output as it is."""
        return None


@dataclass(frozen=True)
class Node:
    """One use of a layer kind: its options (in `kind`), its layer number, what it reads, and the
    axes of what it reads and of its output (vectors of units unless the network says otherwise)."""

    kind: LayerKind
    layer: LayerRef
    inputs: tuple[Quantity, ...]
    in_axes: tuple[tuple[Axis, ...], ...] = ()
    out_axes: tuple[Axis, ...] = ()

    def __post_init__(self):
        if not self.in_axes:
            object.__setattr__(self, "in_axes", tuple(units_axes(q.layer) for q in self.inputs))
        if not self.out_axes and self.kind.output_kind != "cost":
            object.__setattr__(self, "out_axes", self.kind.output_axes(self, self.in_axes))

    def out_indices(self, purpose: str = "out") -> tuple[sp.Idx, ...]:
        return axis_indices(self.out_axes, purpose)

    def in_indices(self, k: int = 0, purpose: str = "target") -> tuple[sp.Idx, ...]:
        return axis_indices(self.in_axes[k], purpose)

    def call_entry(self, indices: tuple, sample: sp.Idx | None) -> sp.Expr:
        """The kind's entry at output `indices` (one index for a vector, as the kinds of vectors take it)."""
        return self.kind.entry(self, indices[0] if len(indices) == 1 else tuple(indices), sample)

    @property
    def output(self) -> Quantity:
        return Q(self.kind.output_kind, self.layer)

    def out(self, batch: bool) -> Quantity:
        return self.output.batched(batch)

    def input(self, batch: bool, k: int = 0) -> Quantity:
        return self.inputs[k].batched(batch)

    def out_index(self, name: str = "i") -> sp.Idx:
        return index(name, self.layer)

    def in_index(self, name: str = "j", k: int = 0) -> sp.Idx:
        return index(name, self.inputs[k].layer)

    @property
    def parameters(self) -> tuple[Quantity, ...]:
        return self.kind.parameters(self)

    def entry(self, unit: sp.Idx, sample: sp.Idx | None) -> sp.Expr:
        return self.kind.entry(self, unit, sample)

    def readable(self, expr: sp.Expr, sample: sp.Idx | None) -> tuple[sp.Expr, str] | None:
        return self.kind.readable(self, expr, sample)
