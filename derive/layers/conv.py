"""Convolution (PyTorch's `conv2d` / `conv1d`, which are correlations): one output entry is

    z⁽ˡ⁾[f, i, j] = Σ_c Σ_p Σ_q K⁽ˡ⁾[f, c, p, q] · a[c, s·i + d·p − P, s·j + d·q − P] + b⁽ˡ⁾[f]

with stride s, dilation d and zero padding P: an input entry outside the image is zero, which the
rule says with the Iverson bracket [0 ≤ s·i + d·p − P < h] (only when P > 0; without padding every
index the output size allows is inside). The 1-D convolution is the same rule over one spatial
axis. Nothing backward is written here: the engine differentiates this rule (`derive.indexing`
collapses the Kronecker sums over the affine indices and keeps the stride's divisibility).

The output size along an axis is ⌊(h + 2P − d(k − 1) − 1)/s⌋ + 1; a window that does not fit is a
one-line error naming the layer (raised by `output_shape`, reworded by the network file reader).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.errors import DeriveError
from derive.indexing import Iverson
from derive.layers.base import LayerKind, Node, Option, entry_of, register, whole_number
from derive.notation import Axis, Q, Quantity, register_quantity

register_quantity("K", "K", "K", 4, "param", gradient="grad_K")
register_quantity("grad_K", "K", "dK", 4, "param")

SPATIAL_ROLES = {1: ("w",), 2: ("h", "w")}
KERNEL_ROLES = {"h": "kh", "w": "kw"}
KERNEL_LETTERS = {"h": "p", "w": "q"}  # the summation letters of the kernel's offsets


def pair(value) -> tuple[int, int]:
    """A size given as one whole number (square) or a list [rows, columns]."""
    if isinstance(value, list) and len(value) == 2:
        return tuple(whole_number(1, 64)(v) for v in value)
    return (whole_number(1, 64)(value),) * 2


def pair_from(low: int):
    def read(value) -> tuple[int, int]:
        if isinstance(value, list) and len(value) == 2:
            return tuple(whole_number(low, 64)(v) for v in value)
        return (whole_number(low, 64)(value),) * 2

    return read


def output_extent(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """⌊(size + 2·padding − dilation·(kernel − 1) − 1)/stride⌋ + 1 (≤ 0: the window does not fit)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def check_fits(what: str, shape: tuple[int, ...], kernel, stride, padding, dilation) -> tuple[int, ...]:
    """The output extents of a window sliding over the spatial axes of `shape` (channels first), or
    a one-line error when the (dilated) window is larger than the padded input."""
    spatial = shape[1:]
    out = []
    for axis, size in enumerate(spatial):
        k, s, p, d = kernel[axis], stride[axis], padding[axis], dilation[axis]
        if 2 * p > d * (k - 1) + 1 and what.startswith("pool"):
            raise DeriveError(f"padding {p} is more than half the window {k}; a pooling window would see only padding")
        extent = output_extent(size, k, s, p, d)
        if extent < 1:
            span = d * (k - 1) + 1
            raise DeriveError(f"the {what} window spans {span} entries along an axis of {size} (padding {p} "
                              f"on each side): it does not fit; use a smaller kernel or more padding")
        out.append(extent)
    return tuple(out)


def spatial_roles(node: Node) -> tuple[str, ...]:
    return tuple(a.role for a in node.in_axes[0][1:])


def window_position(out_index: sp.Expr, offset: sp.Expr, stride: int, dilation: int, padding: int) -> sp.Expr:
    """s·i + d·p − P: the input position the kernel offset p of output position i reads."""
    return stride * out_index + dilation * offset - padding


def inside(position: sp.Expr, axis: Axis) -> sp.Basic:
    return sp.And(position >= 0, position <= axis.size - 1)


@dataclass(frozen=True)
class _Window(LayerKind):
    """What convolution and pooling share: a window (kernel) with stride, padding and dilation
    sliding over the spatial axes of its input (1 or 2 of them)."""

    kernel: tuple[int, ...] = (3, 3)
    stride: tuple[int, ...] = (1, 1)
    padding: tuple[int, ...] = (0, 0)
    dilation: tuple[int, ...] = (1, 1)
    what = "window"

    def fit(self, input_units):
        """Options given as pairs keep the first entry for a 1-D input."""
        if isinstance(input_units[0], tuple) and len(input_units[0]) == 2:  # channels × positions
            return self.__class__(**{**self.__dict__, "kernel": self.kernel[-1:], "stride": self.stride[-1:],
                                     "padding": self.padding[-1:], "dilation": self.dilation[-1:]})
        if not isinstance(input_units[0], tuple):
            raise DeriveError(f"a {self.name} layer reads channels × positions or an image, not a vector of "
                              f"{input_units[0]} units; give the network input = [channels, rows, columns]")
        return self

    def spatial_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return check_fits(self.what, input_shape, self.kernel, self.stride, self.padding, self.dilation)

    def output_axes(self, node: Node, input_axes):
        return tuple(Axis(axis.role, node.layer) for axis in input_axes[0])

    def kernel_axes(self, node: Node) -> tuple[Axis, ...]:
        return tuple(Axis(KERNEL_ROLES[r], None, k) for r, k in zip(spatial_roles(node), self.kernel))

    def window(self, node: Node, positions: tuple[sp.Expr, ...]) -> tuple[tuple[sp.Idx, ...], tuple[sp.Expr, ...], sp.Expr]:
        """The kernel offsets (p, q), the input positions they read, and the padding guard (1 if none)."""
        offsets = tuple(axis.index(KERNEL_LETTERS[r]) for axis, r in zip(self.kernel_axes(node), spatial_roles(node)))
        reads = tuple(window_position(i, p, s, d, pad) for i, p, s, d, pad in
                      zip(positions, offsets, self.stride, self.dilation, self.padding))
        guard = sp.S.One
        if any(self.padding):
            conditions = [inside(r, axis) for r, axis, pad in zip(reads, node.in_axes[0][1:], self.padding) if pad]
            guard = Iverson(sp.And(*conditions))
        return offsets, reads, guard

    def size_facts(self, node: Node):
        return {}

    def window_sizes(self, node: Node):
        """Per spatial axis: (input size, output size, kernel, stride, padding, dilation), for the
        small sizes of the proofs (`derive.windowsizes`)."""
        return [(i.size, o.size, k, s, p, d) for i, o, k, s, p, d in
                zip(node.in_axes[0][1:], node.out_axes[1:], self.kernel, self.stride, self.padding, self.dilation)]

    def geometry(self):
        from derive.convops import geometry_text

        return geometry_text(self.kernel, self.stride, self.padding, self.dilation)


@dataclass(frozen=True)
class _Conv(_Window):
    channels: int = 1  # output channels F
    bias: bool = True
    what = "convolution"
    output_kind = "z"

    @classmethod
    def build(cls, values: dict):
        return cls(**_window_values(values, cls), channels=values["channels"], bias=values.get("bias", True))

    def parameters(self, node: Node) -> tuple[Quantity, ...]:
        return (Q("K", node.layer), Q("b", node.layer)) if self.bias else (Q("K", node.layer),)

    def parameter_axes(self, node: Node, param: Quantity):
        own = Axis("c", node.layer)
        if param.kind == "K":
            return (own, node.in_axes[0][0], *self.kernel_axes(node))
        return (own,)

    def weights(self, node: Node):
        return {Q("K", node.layer): node.inputs[0]}

    def parameter_letters(self, node: Node, param: Quantity) -> tuple[str, ...]:
        """∂C/∂K_{f′c′p′q′}, ∂C/∂b_{f′}: the rule's own letters primed (the rule sums over c, p, q)."""
        if param.kind != "K":
            return ("f'",)
        offsets = [KERNEL_LETTERS[r] + "'" for r in spatial_roles(node)]
        return ("f'", "c'", *offsets)

    def fans(self, node: Node) -> tuple[sp.Expr, sp.Expr]:
        """Fan-in and fan-out of the kernel: the inputs one output entry reads, C·kh·kw, and the
        outputs one input entry reaches (away from the borders, stride 1), F·kh·kw."""
        window = sp.Mul(*[sp.Integer(k) for k in self.kernel])
        return node.in_axes[0][0].size * window, Axis("c", node.layer).size * window

    def output_shape(self, node: Node, input_shapes):
        return (self.channels, *self.spatial_shape(input_shapes[0]))

    def entry(self, node: Node, unit, sample):
        f, *positions = unit
        c = node.in_axes[0][0].index("c")
        offsets, reads, guard = self.window(node, tuple(positions))
        K = Q("K", node.layer).base
        term = guard * K[(f, c, *offsets)] * entry_of(node.inputs[0], (c, *reads), sample)
        limits = [(c, c.lower, c.upper)] + [(p, p.lower, p.upper) for p in offsets]
        out = sp.Sum(term, *limits)
        return out + Q("b", node.layer).base[f] if self.bias else out


def _flag(value) -> bool:
    if not isinstance(value, bool):
        raise ValueError
    return value


def _window_values(values: dict, cls) -> dict:
    out = {"kernel": values["kernel"]}
    for key in ("stride", "padding", "dilation"):
        if key in values:
            out[key] = values[key]
    if "stride" not in values and cls.what.startswith("pool"):
        out["stride"] = values["kernel"]  # PyTorch: a pooling window's stride defaults to its size
    return out


_CONV_OPTIONS = {
    "channels": Option("a whole number of output channels from 1 to 1024", whole_number(1, 1024)),
    "kernel": Option("a whole number from 1 to 64 or a list [rows, columns]", pair_from(1)),
    "stride": Option("a whole number from 1 to 64 or a list [rows, columns]", pair_from(1), required=False),
    "padding": Option("a whole number from 0 to 64 or a list [rows, columns]", pair_from(0), required=False),
    "dilation": Option("a whole number from 1 to 64 or a list [rows, columns]", pair_from(1), required=False),
    "bias": Option("true or false", lambda v: _flag(v), required=False),
}


@register
@dataclass(frozen=True)
class Conv2d(_Conv):
    name = "conv2d"
    summary = ("z[f,i,j] = Σ K[f,c,p,q] a[c, s·i+d·p−P, s·j+d·q−P] + b[f]; options: channels, kernel "
               "(required), stride, padding, dilation, bias, activation")
    options = _CONV_OPTIONS

    def fit(self, input_units):
        if isinstance(input_units[0], tuple) and len(input_units[0]) != 3:
            raise DeriveError(f"conv2d reads an image (channels, rows, columns), not the shape {list(input_units[0])}; "
                              f"use conv1d for channels × positions")
        return super().fit(input_units)


def _one_axis(read):
    """A 1-D window's size: one whole number (a list of two is an image's)."""
    def one(value):
        if isinstance(value, list):
            raise ValueError
        return read(value)

    return one


@register
@dataclass(frozen=True)
class Conv1d(_Conv):
    name = "conv1d"
    summary = ("z[f,j] = Σ K[f,c,q] a[c, s·j+d·q−P] + b[f]; options: channels, kernel (required), stride, "
               "padding, dilation, bias, activation")
    options = {k: Option(o.accepted.replace(" or a list [rows, columns]", ""),
                         _one_axis(o.read) if k in ("kernel", "stride", "padding", "dilation") else o.read, o.required)
               for k, o in _CONV_OPTIONS.items()}

    def fit(self, input_units):
        if isinstance(input_units[0], tuple) and len(input_units[0]) != 2:
            raise DeriveError(f"conv1d reads channels × positions, not the shape {list(input_units[0])}; "
                              f"use conv2d for an image")
        return super().fit(input_units)


@register
@dataclass(frozen=True)
class Flatten(LayerKind):
    """a[n] = u[c, i, j] where n = c·h·w + i·w + j: PyTorch's C-major order (channels outermost), so that a
    dense layer after it has the weight of PyTorch's Linear after nn.Flatten."""

    name = "flatten"
    output_kind = "a"
    summary = "a[c·h·w + i·w + j] = u[c, i, j]: the channels, rows and columns as one vector (PyTorch's order)"

    def output_axes(self, node: Node, input_axes):
        return (Axis("n", node.layer),)

    def output_shape(self, node: Node, input_shapes):
        size = 1
        for extent in input_shapes[0]:
            size *= extent
        return (size,)

    def size_facts(self, node: Node):
        total = sp.Mul(*[a.size for a in node.in_axes[0]])
        return {Axis("n", node.layer).size: total}

    def flat_index(self, node: Node, indices) -> sp.Expr:
        out = sp.S.Zero
        for axis, i in zip(node.in_axes[0], indices):
            out = out * axis.size + i
        return out

    def entry(self, node: Node, unit, sample):
        indices = node.in_indices(0, "target")
        term = sp.KroneckerDelta(unit, self.flat_index(node, indices)) * entry_of(node.inputs[0], tuple(indices), sample)
        return sp.Sum(term, *[(i, i.lower, i.upper) for i in indices])

    def notation_rows(self, node: Node) -> list[tuple[str, str, dict]]:
        """vec, for a network without windows (a sequence read out by a dense layer); with windows the
        convolution's rows define it in their words."""
        return [(r"\operatorname{vec}", "flatten_notation.vec", {})]


@register
@dataclass(frozen=True)
class GlobalAvgPool(LayerKind):
    """a[c] = (1/(h·w)) Σ_i Σ_j u[c, i, j]: the mean of each channel over its positions."""

    name = "global_avg_pool"
    output_kind = "a"
    summary = "a[c] = the mean of u[c, …] over all positions: one number per channel"

    def output_axes(self, node: Node, input_axes):
        return (Axis("n", node.layer),)

    def output_shape(self, node: Node, input_shapes):
        return (input_shapes[0][0],)

    def fit(self, input_units):
        if not isinstance(input_units[0], tuple):
            raise DeriveError("global_avg_pool reads channels × positions or an image, not a vector of units")
        return self

    def size_facts(self, node: Node):
        return {Axis("n", node.layer).size: node.in_axes[0][0].size}

    def entry(self, node: Node, unit, sample):
        positions = node.in_indices(0, "target")[1:]
        count = sp.Mul(*[a.size for a in node.in_axes[0][1:]])
        term = entry_of(node.inputs[0], (unit, *positions), sample)
        return sp.Sum(term, *[(i, i.lower, i.upper) for i in positions]) / count


_POOL_OPTIONS = {
    "kernel": Option("a whole number from 1 to 64 or a list [rows, columns]", pair_from(1)),
    "stride": Option("a whole number from 1 to 64 or a list [rows, columns] (default: the kernel)", pair_from(1),
                     required=False),
    "padding": Option("a whole number from 0 to 64 or a list [rows, columns]", pair_from(0), required=False),
}


@dataclass(frozen=True)
class _Pool(_Window):
    what = "pooling"
    output_kind = "a"
    names_error = True  # ∂C/∂a of its output gets a name: its backward form reads that array whole

    @classmethod
    def build(cls, values: dict):
        return cls(**_window_values(values, cls))

    def output_shape(self, node: Node, input_shapes):
        return (input_shapes[0][0], *self.spatial_shape(input_shapes[0]))

    def size_facts(self, node: Node):
        return {node.out_axes[0].size: node.in_axes[0][0].size}  # as many channels as it reads

    def geometry(self):
        from derive.convops import geometry_text

        return geometry_text(self.kernel, self.stride, self.padding, self.dilation)


@register
@dataclass(frozen=True)
class AvgPool2d(_Pool):
    """a[c, i, j] = (1/(kh·kw)) Σ_p Σ_q u[c, s·i + p − P, s·j + q − P], zero padding counted (PyTorch's
    default, count_include_pad=True)."""

    name = "avg_pool2d"
    summary = "a[c,i,j] = mean of u[c, s·i+p−P, s·j+q−P] over the window; options: kernel (required), stride, padding"
    options = _POOL_OPTIONS

    def entry(self, node: Node, unit, sample):
        c, *positions = unit
        offsets, reads, guard = self.window(node, tuple(positions))
        term = guard * entry_of(node.inputs[0], (c, *reads), sample)
        window = sp.Mul(*[sp.Integer(k) for k in self.kernel])
        return sp.Sum(term, *[(p, p.lower, p.upper) for p in offsets]) / window


@register
@dataclass(frozen=True)
class MaxPool2d(_Pool):
    """a[c, i, j] = max of u[c, s·i + d·p, s·j + d·q] over the window, written as Σ_k u_k · [u_k is the
    first maximum of the window]: the selector states PyTorch's tie rule (the first maximum in the
    window's row-major order takes the error) and is constant between ties, so its derivative is 0
    and the engine's derivative routes the error to the selected entry."""

    name = "max_pool2d"
    refuses_windows_of_padding = True  # the proofs' small sizes avoid them too (derive.windowsizes)
    summary = ("a[c,i,j] = max of u[c, s·i+d·p−P, s·j+d·q−P] over the window (ties: the first; padding: −∞, "
               "never the maximum); options: kernel (required), stride, padding, dilation")
    options = {**_POOL_OPTIONS,
               "padding": Option("a whole number from 0 to 64 or a list [rows, columns], at most half the kernel",
                                 pair_from(0), required=False),
               "dilation": Option("a whole number from 1 to 64 or a list [rows, columns]", pair_from(1), required=False)}

    def spatial_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """PyTorch's rule for the padding (at most half the kernel), and no window of padding only
        (its maximum would be −∞), and a window of more than one entry: with a 1×1 window the maximum
        is the entry itself and its first-maximum selector is always 1, a form the matrix-form
        recogniser takes for the pooled value (the engine's entry check then fails)."""
        if all(k == 1 for k in self.kernel):
            raise DeriveError("max_pool2d kernel 1 is a window of one entry, whose maximum is the entry "
                              "itself; accepted: a kernel of 2 or more along some axis (to subsample, "
                              "use avgpool 1 with a stride)")
        sizes = super().spatial_shape(input_shape)
        for axis, (n, o, k, s, p, d) in enumerate(zip(input_shape[1:], sizes, self.kernel, self.stride,
                                                          self.padding, self.dilation)):
            if 2 * p > k:
                raise DeriveError(f"max_pool2d padding {p} is more than half the kernel {k} (PyTorch's rule); "
                                  f"accepted: 0 to {k // 2}")
            empty = [i for i in range(o) if not any(0 <= s * i + d * q - p < n for q in range(k))]
            if empty:
                raise DeriveError(f"max_pool2d window {empty[0]} along axis {axis + 1} holds only padding "
                                  f"(padding {p}, dilation {d}); use less padding")
        return sizes

    def entry(self, node: Node, unit, sample):
        from itertools import product

        from derive.layers.firstmax import FirstMax, FirstMaxInside

        c, *positions = unit
        entries, guards = [], []
        for offset in product(*[range(k) for k in self.kernel]):
            reads = tuple(window_position(i, p, s, d, pad) for i, p, s, d, pad in
                          zip(positions, offset, self.stride, self.dilation, self.padding))
            conditions = [inside(r, axis) for r, axis, pad in zip(reads, node.in_axes[0][1:], self.padding) if pad]
            guard = Iverson(sp.And(*conditions)) if conditions else sp.S.One
            guards.append(guard)
            entries.append(guard * entry_of(node.inputs[0], (c, *reads), sample))  # 0 unread outside
        if not any(self.padding):
            return sp.Add(*[x * FirstMax(sp.Integer(k), *entries) for k, x in enumerate(entries)])
        return sp.Add(*[x * FirstMaxInside(sp.Integer(k), *guards, *entries) for k, x in enumerate(entries)])
