"""Every naming convention of the project in one place.

A quantity of the network (a weight matrix, a pre-activation, an error …) is identified by a
`Quantity`: its kind and its layer. From it come the SymPy label used by the engine (`z_3`), the
LaTeX shown in documents (`z^{(3)}`), the Unicode shown on the terminal (`z⁽³⁾`) and the name used
in generated code (`Z3`). Nothing else in the package builds such names by hand, so a change of
convention is a change here only (the idea of google/tangent's `naming.py`).

Layers are numbered 1…L for weight layers; layer 0 is the input. A `LayerRef` is either a concrete
layer number or the symbolic layer `l` with an offset (l, l+1, l−1) used in the general derivation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import sympy as sp

# --------------------------------------------------------------------------------------------------
# layers


@dataclass(frozen=True, order=True)
class LayerRef:
    """A concrete layer (`number` set) or the symbolic layer l + offset (`number` None)."""

    number: int | None
    offset: int = 0

    @staticmethod
    def symbolic(offset: int = 0) -> LayerRef:
        return LayerRef(None, offset)

    def shifted(self, k: int) -> LayerRef:
        if self.number is not None:
            return LayerRef(self.number + k)
        return LayerRef(None, self.offset + k)

    @property
    def is_symbolic(self) -> bool:
        return self.number is None

    def tag(self) -> str:
        """Identifier-safe form: '3', 'l', 'lp1', 'lm1'."""
        if self.number is not None:
            return str(self.number)
        if self.offset == 0:
            return "l"
        return f"l{'p' if self.offset > 0 else 'm'}{abs(self.offset)}"

    def latex(self) -> str:
        if self.number is not None:
            return str(self.number)
        if self.offset == 0:
            return "l"
        return f"l{'+' if self.offset > 0 else '-'}{abs(self.offset)}"

    def text(self) -> str:
        return self.latex().replace("-", "−")


def layer(n: int | LayerRef) -> LayerRef:
    return n if isinstance(n, LayerRef) else LayerRef(int(n))


# --------------------------------------------------------------------------------------------------
# quantities

# kind -> (LaTeX symbol, code prefix or None, rank, per-sample or batch)
_KINDS: dict[str, tuple[str, str | None, int, str]] = {
    # per-sample (vectors; one training example)
    "x": ("x", None, 1, "sample"),
    "y": ("y", None, 1, "sample"),
    "z": ("z", None, 1, "sample"),
    "a": ("a", None, 1, "sample"),
    "delta": (r"\delta", None, 1, "sample"),
    "grad_a": ("a", None, 1, "sample"),  # ∂C/∂a, printed as a derivative
    # parameters and their gradients
    "W": ("W", "W", 2, "param"),
    "b": ("b", "b", 1, "param"),
    "grad_W": ("W", "dW", 2, "param"),
    "grad_b": ("b", "db", 1, "param"),
    # minibatch (matrices; one column per sample)
    "X": ("X", "X", 2, "batch"),
    "Y": ("Y", "Y", 2, "batch"),
    "Z": ("Z", "Z", 2, "batch"),
    "A": ("A", "A", 2, "batch"),
    # the minibatch errors: a capital beside Z and A (a bold δ cannot be told from δ in print; Δ is a
    # small change); code delta3
    "Delta": ("D", "delta", 2, "batch"),
    "grad_A": ("A", "dA", 2, "batch"),
    # the loss of one sample (the key of its formula among a derivation's results)
    "cost": ("C", None, 0, "sample"),
}

_LAYERLESS = {"x", "y", "X", "Y", "cost"}

# the per-sample kind of a quantity -> its minibatch kind (one column per sample)
_BATCH = {"x": "X", "y": "Y", "z": "Z", "a": "A", "delta": "Delta", "grad_a": "grad_A"}
# the kind of a quantity -> the kind of the quantity that holds ∂C/∂(it): the error δ of a
# pre-activation, ∂C/∂a of an activation, ∂C/∂W of a weight
_GRADIENT = {"z": "delta", "a": "grad_a", "Z": "Delta", "A": "grad_A", "W": "grad_W", "b": "grad_b"}


# the kinds of ∂C/∂q for a q computed by the network (not a parameter): printed as a derivative
DERIVATIVE_KINDS = {"grad_a", "grad_A"}


def register_quantity(kind: str, latex: str, code: str | None, rank: int, mode: str, *,
                      batch: str | None = None, gradient: str | None = None, derivative: bool = False) -> None:
    """Add a kind of quantity (a layer kind's parameter or output); its names are then made here
    like every other. `mode` is "sample", "param" or "batch"; `batch` names the minibatch kind of a
    per-sample quantity and `gradient` the kind that holds its derivative."""
    if kind in _SIZE_ROLES:  # its labels (c_2) would be the size symbols of that axis role (channels of layer 2)
        raise ValueError(f"quantity kind {kind!r} is the name of an axis size; choose another kind name")
    existing = _KINDS.get(kind)
    entry = (latex, code, rank, mode)
    if existing is not None and existing != entry:
        raise ValueError(f"quantity kind {kind!r} is already registered as {existing}")
    _KINDS[kind] = entry
    if derivative:  # ∂C/∂u: printed as a derivative, like ∂C/∂a
        DERIVATIVE_KINDS.add(kind)
    if batch is not None:
        _BATCH[kind] = batch
    if gradient is not None:
        _GRADIENT[kind] = gradient
    quantity_of.cache_clear()


@dataclass(frozen=True)
class Quantity:
    """One named quantity of the network, e.g. Quantity('W', LayerRef(3))."""

    kind: str
    layer: LayerRef | None = None

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"unknown quantity kind {self.kind!r}")
        if (self.layer is None) != (self.kind in _LAYERLESS):
            raise ValueError(f"quantity {self.kind!r} layer mismatch: {self.layer}")

    @property
    def label(self) -> str:
        return self.kind if self.layer is None else f"{self.kind}_{self.layer.tag()}"

    @property
    def rank(self) -> int:
        return _KINDS[self.kind][2]

    @property
    def is_batch(self) -> bool:
        return _KINDS[self.kind][3] == "batch"

    @property
    def is_gradient(self) -> bool:
        return self.kind.startswith("grad_")

    @property
    def is_parameter(self) -> bool:
        return _KINDS[self.kind][3] == "param" and not self.is_gradient

    def batched(self, batch: bool = True) -> Quantity:
        """The minibatch form of a per-sample quantity (z → Z); parameters are the same in both."""
        return Quantity(_BATCH.get(self.kind, self.kind), self.layer) if batch else self

    @property
    def gradient(self) -> Quantity:
        """The quantity holding ∂C/∂(this one): δ for z, ∂C/∂a for a, ∂C/∂W for W."""
        if self.kind not in _GRADIENT:
            raise ValueError(f"{self.kind!r} has no gradient quantity")
        return Quantity(_GRADIENT[self.kind], self.layer)

    @property
    def base(self) -> sp.IndexedBase:
        """The SymPy IndexedBase the engine uses for this quantity."""
        return _indexed_base(self.label)

    @property
    def symbol(self) -> sp.Symbol:
        """A plain symbol standing for the whole vector/matrix in vector-form expressions."""
        return _vector_symbol(self.label)

    # ---- display

    def latex(self) -> str:
        """LaTeX of the whole quantity (no indices): W^{(3)}, \\delta^{(l)}, X."""
        sym = _KINDS[self.kind][0]
        if self.kind == "a" and self.layer is not None and self.layer.number == 0:
            return "x"
        if self.kind == "A" and self.layer is not None and self.layer.number == 0:
            return "X"
        if self.layer is None:
            return sym
        return f"{sym}^{{({self.layer.latex()})}}"

    def latex_entry(self, indices: str) -> str:
        """LaTeX of one entry, e.g. W^{(3)}_{pq}."""
        return f"{self.latex()}_{{{indices}}}"

    def code(self) -> str:
        """Name in generated code: W3, dW3, Z3, A0 (= X), delta3."""
        prefix = _KINDS[self.kind][1]
        if prefix is None:
            raise ValueError(f"{self.kind!r} has no code name (per-sample quantity)")
        if self.layer is None:
            return prefix
        if self.layer.is_symbolic:
            raise ValueError("symbolic layers have no code name")
        return f"{prefix}{self.layer.number}"

    def text(self) -> str:
        """Unicode for terminal output: W⁽³⁾."""
        sym = {"delta": "δ"}.get(self.kind, _KINDS[self.kind][0])
        sym = re.sub(r"^\{(\w)_\{\\mathrm\{(\w+)\}\}\}$", r"\1_\2", _UNICODE.get(sym, sym))  # {W_{\mathrm{q}}}: W_q
        if self.layer is None:
            return sym
        return f"{sym}⁽{self.layer.text().translate(_SUPERSCRIPT)}⁾"


_SUPERSCRIPT = str.maketrans("0123456789l+−", "⁰¹²³⁴⁵⁶⁷⁸⁹ˡ⁺⁻")
# LaTeX symbols of quantities as Unicode (an SVG label shows α⁽¹⁾, not \alpha⁽¹⁾)
_UNICODE = {r"\alpha": "α", r"\beta": "β", r"\gamma": "γ", r"\hat{x}": "x̂", r"\hat{X}": "X̂",
            r"\tilde{x}": "x̃", r"\tilde{X}": "X̃"}
_TAG = re.compile(r"(\d+)|l(?:([pm])(\d+))?")


@cache
def _indexed_base(label: str) -> sp.IndexedBase:
    return sp.IndexedBase(label, real=True)


@cache
def _vector_symbol(label: str) -> sp.Symbol:
    return sp.Symbol(label, real=True)


@cache
def quantity_of(label: str) -> Quantity | None:
    """The quantity behind an engine label ('W_3', 'delta_lp1', 'y'), or None for other names.

    Labels are parsed rather than looked up, so expressions built in another process (see
    `parallel`) print the same as local ones.
    """
    if label in _LAYERLESS:
        return Quantity(label)
    if "@" in label:  # "A_1@step_t - 1": one step of a sequence (derive.timeloop), an array of that quantity
        return quantity_of(label.split("@")[0])
    kind, _, tag = label.rpartition("_")
    match = _TAG.fullmatch(tag)
    if kind not in _KINDS or kind in _LAYERLESS or match is None:
        return None
    number, sign, offset = match.groups()
    if number is not None:
        return Quantity(kind, LayerRef(int(number)))
    return Quantity(kind, LayerRef.symbolic(0 if sign is None else (1 if sign == "p" else -1) * int(offset)))


def Q(kind: str, layer_ref: int | LayerRef | None = None) -> Quantity:  # noqa: N802 - reads like math
    """Shorthand constructor: Q('W', 3), Q('delta', LayerRef.symbolic(1))."""
    return Quantity(kind, None if layer_ref is None else layer(layer_ref))


def input_quantity(batch: bool) -> Quantity:
    """The input is the activation of layer 0."""
    return Q("A" if batch else "a", 0)


# --------------------------------------------------------------------------------------------------
# sizes, indices and scalars


@cache
def size(layer_ref: LayerRef) -> sp.Symbol:
    """n_l: the number of units of a layer."""
    return sp.Symbol(f"n_{layer_ref.tag()}", integer=True, positive=True)


@cache
def axis_size(role: str, layer_ref: LayerRef) -> sp.Symbol:
    """The size of one axis of a layer's output: n_l (units), c_l (channels), h_l (rows), w_l (columns)."""
    return size(layer_ref) if role == "n" else sp.Symbol(f"{role}_{layer_ref.tag()}", integer=True, positive=True)


@dataclass(frozen=True)
class Axis:
    """One axis of a quantity: a layer's units (role "n"), channels ("c"), rows ("h") or columns
    ("w"), sized by that layer, or a fixed extent (a kernel's rows: role "kh", extent 3)."""

    role: str
    layer: LayerRef | None = None
    extent: int | None = None

    @property
    def size(self) -> sp.Expr:
        return sp.Integer(self.extent) if self.extent is not None else axis_size(self.role, self.layer)

    def index(self, letter: str) -> sp.Idx:
        return sp.Idx(sp.Symbol(letter, integer=True), (0, self.size - 1))


# the letters of the indices of an entry, by what it is for and by the role of its axis; rank-1
# quantities keep the letters of the MLP (zᵢ = Σⱼ Wᵢⱼ aⱼ, ∂C/∂a_q, ∂C/∂W_pq)
_LETTERS = {
    "out": {"n": "i", "c": "f", "h": "i", "w": "j", "t": "tau", "hd": "h", "dk": "d", "wk": "u"},
    "target": {"n": "q", "c": "c", "h": "u", "w": "v", "t": "r", "hd": "h'", "dk": "d'", "wk": "k"},
}
# the roles of axes, whose sizes are symbols named role_layer (c_2: the channels of layer 2)
_SIZE_ROLES = frozenset(_LETTERS["out"])


def axis_indices(axes: tuple[Axis, ...], purpose: str) -> tuple[sp.Idx, ...]:
    """Indices over `axes`: "out" for the entry of a node's output that a chain-rule sum runs over,
    "target" for the entry a derivative is taken with respect to."""
    letters = _LETTERS[purpose]
    return tuple(axis.index(letters.get(axis.role, axis.role[0])) for axis in axes)


def units_axes(layer_ref: LayerRef) -> tuple[Axis, ...]:
    """The axes of a vector of units (every quantity of an MLP)."""
    return (Axis("n", layer_ref),)


def layer_of_size(symbol: sp.Symbol) -> int | None:
    """l for the size symbol n_l of a concrete layer, else None."""
    name = symbol.name
    if name.startswith("n_") and name[2:].isdigit() and symbol == size(LayerRef(int(name[2:]))):
        return int(name[2:])
    return None


def size_latex(layer_ref: LayerRef) -> str:
    return f"n_{{{layer_ref.latex()}}}"


BATCH_SIZE = sp.Symbol("m", integer=True, positive=True)
LEARNING_RATE = sp.Symbol("eta", positive=True)
COST = sp.Symbol("C", real=True)  # loss of one training example
BATCH_COST = sp.Symbol("Cbar", real=True)  # mean loss over the minibatch

# regularisation: the penalty R = Σ_l R⁽ˡ⁾, its strengths, and the data part of the cost without it
PENALTY = sp.Symbol("R", real=True)
LAYER_PENALTY = sp.Symbol("R_l", real=True)  # R⁽ˡ⁾, the share of layer l
L2_STRENGTH = sp.Symbol("lambda_2", positive=True)
L1_STRENGTH = sp.Symbol("lambda_1", positive=True)
DATA_COST = sp.Symbol("C_data", real=True)
BATCH_DATA_COST = sp.Symbol("Cbar_data", real=True)

SCALAR_LATEX = {"m": "m", "eta": r"\eta", "C": "C", "Cbar": r"\bar{C}", "R": "R", "R_l": "R^{(l)}",
                "lambda_2": r"\lambda_{2}", "lambda_1": r"\lambda_{1}", "C_data": r"C_{\mathrm{data}}",
                "Cbar_data": r"\bar{C}_{\mathrm{data}}"}
SCALAR_CODE = {"m": "m", "eta": "lr", "lambda_2": "L2_STRENGTH", "lambda_1": "L1_STRENGTH"}


def index(name: str, layer_ref: LayerRef | None) -> sp.Idx:
    """An index running over the units of a layer (or over the samples when layer_ref is None)."""
    upper = BATCH_SIZE if layer_ref is None else size(layer_ref)
    return sp.Idx(sp.Symbol(name, integer=True), (0, upper - 1))


def sample_index(name: str = "s") -> sp.Idx:
    return index(name, None)


# how the documents print the sample indices: the engine's t is printed r, because t is the step of
# an optimizer in the same documents (one letter, one meaning)
SAMPLE_INDEX_LATEX = {"s": "s", "t": "r"}


def is_sample_index(i: sp.Idx) -> bool:
    return str(i.label) in SAMPLE_INDEX_LATEX and i.upper == BATCH_SIZE - 1


# canonical scalar variables of catalog expressions: g(z), loss ℓ(a, y)
Z = sp.Symbol("z", real=True)
A = sp.Symbol("a", real=True)
Y = sp.Symbol("y", real=True)


# --------------------------------------------------------------------------------------------------
# training: the parameter θ and its gradient, the optimizer's hyper-parameters (η, β₁, …) and state
# (the momentum buffer, Adam's moments, …), and the moments of the initialisation derivation (Var,
# E). Each is a SymPy symbol registered here with its LaTeX and its code name, so that the printers
# of `present_training` and `codegen_training` never build a name by hand. Code names are
# torch.optim's names (`lr`, `exp_avg`, `momentum_buffer` …) so that generated code reads like the
# library it matches.

_LATEX: dict[str, str] = {}
_CODE: dict[str, str] = {}
COEFFICIENTS: set[str] = {"eta"}  # scalars printed before the quantities they scale (η ∇C, λ θ)


def symbol(name: str, latex: str, code: str | None = None, *, coefficient: bool = False, **assumptions) -> sp.Symbol:
    """A registered symbol; `name` is the SymPy name (unique within training), `code` defaults to it.
    A `coefficient` (a hyper-parameter) is printed in front of the other factors of a product."""
    if name in _LATEX and _LATEX[name] != latex:
        raise ValueError(f"training symbol {name!r} registered twice with different LaTeX")
    _LATEX[name] = latex
    _CODE[name] = code if code is not None else name
    if coefficient:
        COEFFICIENTS.add(name)
    return sp.Symbol(name, **assumptions)


def latex_name(name: str) -> str | None:
    return _LATEX.get(name)


def code_name(name: str) -> str | None:
    return _CODE.get(name)


@cache
def timed(sym: sp.Symbol) -> sp.IndexedBase:
    """The same quantity as a sequence over the steps t (θ_t, m_t, …), for the documents."""
    return sp.IndexedBase(sym.name)


# the step counter and the quantities every optimizer shares
STEP = sp.Symbol("t", integer=True, positive=True)
PAST = sp.Symbol("k", integer=True, positive=True)  # summation index over past steps
THETA = symbol("theta", r"\theta", "p", real=True)  # one parameter array (W⁽ˡ⁾ or b⁽ˡ⁾)
THETA_NEXT = symbol("theta_next", r"\theta'", real=True)
GRAD = symbol("grad", r"\nabla \bar{C}", "grad", real=True)  # ∂C̄/∂θ of the current minibatch
GRADIENT = symbol("g", "G", real=True)  # the gradient the optimizer uses (after weight decay); not g, the activation
FULL_GRAD = symbol("full_grad", r"\nabla \mathcal{C}", real=True)  # gradient of the mean cost over all data
COST_NOW = symbol("cost_now", r"\mathcal{C}(\theta)", real=True)
MODEL = symbol("model", r"M(\theta')", real=True)  # the proximal model minimised by one step
GRAD_ENTRY = symbol("grad_entry", r"\left(\nabla \mathcal{C}\right)", real=True)  # entries ∂C/∂θᵢ, indexed
COST_ANY = symbol("cost_any", r"\mathcal{C}", real=True)  # the mean loss over all training data, 𝒞(θ) (C is one sample's)
COST_L2 = symbol("cost_l2", r"\tilde{C}", real=True)  # the cost with an L2 penalty
GRAD_SAMPLE = symbol("grad_sample", r"\nabla C", real=True)  # gradient of the loss of one sample


class Expectation(sp.Function):
    """E[x]: an expectation, kept unevaluated; the derivations apply its rules (linearity …) as steps."""

    nargs = 1

    def _derive_latex(self, printer, exp=None, **_):
        tex = rf"\mathbb{{E}}\left[{printer._print(self.args[0])}\right]"
        return rf"{tex}^{{{exp}}}" if exp else tex


class Variance(sp.Function):
    """Var(x), kept unevaluated like `Expectation`."""

    nargs = 1

    def _derive_latex(self, printer, exp=None, **_):
        tex = rf"\operatorname{{Var}}\left({printer._print(self.args[0])}\right)"
        return rf"{tex}^{{{exp}}}" if exp else tex
