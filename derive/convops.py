"""Whole-array operations of convolutional networks (the matrix forms `convforms` recognises).

Arrays keep the derivation's index order with the sample index last: an image batch is (C, H, W, m),
a signal batch (C, W, m), a kernel PyTorch's (F, C, kh, kw). Per sample the trailing axis is absent.
Each operation is an `ops.Op` (evaluation on exact numbers for the entry-by-entry proof, LaTeX,
NumPy code, lowering for the workspace) whose NumPy code calls a helper of the generated module
(`HELPERS`, printed into model.py): no Python loop over positions, only over the kh·kw offsets of a
kernel in col2im.

* `Im2colConv(X, K, geometry)`: z = Σ_c Σ_p Σ_q K[f,c,p,q] x[c, s·i+d·p−P, s·j+d·q−P], the window
  view of the zero-padded input (`sliding_window_view`) contracted with the kernel (one matrix
  product after the im2col copy);
* `Col2imConv(D, K, geometry, H, W)`: the input error, the kernel applied to the error (the same
  product transposed) and scattered back by an accumulating strided add, padding cropped;
* `KernelGrad(D, X, geometry)`: Σ over positions (and samples) of the error times the window view;
* `FullCorrelation(D, K, geometry, H, W)`: the gathered form, the stride-dilated, zero-padded error
  correlated with the kernel rotated by 180°;
* `Flatten(X)` / `Unflatten(G, C, H, W)`: PyTorch's C-major order (reshape, no copy).
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.core.symbol import Str

from derive.ops import Op, _code_operand, _latex_operand

# ---------------------------------------------------------------------------------------------------
# geometry: kernel, stride, padding, dilation per spatial axis, as a string argument "k,s,p,d;k,s,p,d"


def geometry_text(kernel, stride, padding, dilation) -> Str:
    return Str(";".join(f"{k},{s},{p},{d}" for k, s, p, d in zip(kernel, stride, padding, dilation)))


def geometry_tag(arg) -> str:
    """A short name for a geometry, as part of a code name: k5p2 (kernel 5, padding 2), k3x2s2
    (kernel 3 × 2, stride 2); stride 1, padding 0 and dilation 1 are left out."""
    kernel, stride, padding, dilation = read_geometry(arg)
    parts = []
    for letter, values, usual in (("k", kernel, None), ("s", stride, 1), ("p", padding, 0), ("d", dilation, 1)):
        if any(v != usual for v in values):
            parts.append(letter + ("x".join(map(str, values)) if len(set(values)) > 1 else str(values[0])))
    return "".join(parts)


def read_geometry(arg) -> tuple[tuple[int, ...], ...]:
    """(kernel, stride, padding, dilation), each a tuple over the spatial axes."""
    axes = [tuple(int(v) for v in part.split(",")) for part in str(arg).split(";")]
    return tuple(tuple(a[n] for a in axes) for n in range(4))


# ---------------------------------------------------------------------------------------------------
# the NumPy functions (the same source is printed into the generated model.py)

HELPERS = '''
def _into(result, out):
    """The result, or copied into `out` (the workspace form's array) when one is given."""
    if out is None:
        return result
    np.copyto(out, result)
    return out


def _scratch(scratch, key, shape, dtype, fill=None):
    """A work array of a window operation. `scratch` is the dict the Workspace keeps for one window
    operation: the array is made on the first step and reused by every later one (a step then
    allocates nothing); without a workspace it is made afresh."""
    array = None if scratch is None else scratch.get(key)
    if array is None or array.shape != shape or array.dtype != dtype:
        array = np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
        if scratch is not None:
            scratch[key] = array
    return array


def _windows(X, kernel, stride, padding, dilation):
    """The window view of X (C, *spatial, …) zero-padded: (C, *out, …, *kernel), no copy but the pad."""
    nsp = len(kernel)
    if any(padding):
        X = np.pad(X, [(0, 0)] + [(p, p) for p in padding] + [(0, 0)] * (X.ndim - 1 - nsp))
    spans = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    view = np.lib.stride_tricks.sliding_window_view(X, spans, axis=tuple(range(1, 1 + nsp)))
    picks = (slice(None),) + tuple(slice(None, None, s) for s in stride) + (slice(None),) * (X.ndim - 1 - nsp)
    return view[picks + tuple(slice(None, None, d) for d in dilation)]


def _padded(X, padding, scratch=None, fill=0):
    """X with `padding` entries of `fill` before and after each spatial axis. In a workspace the
    border is written once, on the first step; later steps copy only the interior."""
    if not any(padding):
        return X
    nsp = len(padding)
    spatial = X.shape[1:1 + nsp]
    shape = (X.shape[0],) + tuple(n + 2 * p for n, p in zip(spatial, padding)) + X.shape[1 + nsp:]
    P = _scratch(scratch, "padded with " + str(fill), shape, X.dtype, fill)
    np.copyto(P[(slice(None),) + tuple(slice(p, p + n) for p, n in zip(padding, spatial))], X)
    return P


def _window_sizes(P, kernel, stride, dilation):
    """The number of windows along each spatial axis of the padded P."""
    return tuple((n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(P.shape[1:], kernel, stride, dilation))


def _offsets(kernel, stride, dilation, sizes):
    """For each kernel offset (row-major order) the slices of the padded input that this entry of
    every window reads: a strided view, one entry per window."""
    return [(slice(None),) + tuple(slice(d * p, d * p + s * (o - 1) + 1, s)
                                   for p, d, s, o in zip(offset, dilation, stride, sizes))
            for offset in np.ndindex(*kernel)]


def _im2col(X, kernel, stride, padding, dilation, scratch=None):
    """The im2col columns (C, *kernel, *out, …): entry [c, p, q, i, j, …] is the zero-padded
    x[c, s·i + d·p, s·j + d·q, …], copied from the window view into one contiguous array."""
    nsp = len(kernel)
    P = _padded(X, padding, scratch)
    sizes = _window_sizes(P, kernel, stride, dilation)
    cols = _scratch(scratch, "cols", (X.shape[0],) + tuple(kernel) + sizes + X.shape[1 + nsp:], X.dtype)
    for offset, where in zip(np.ndindex(*kernel), _offsets(kernel, stride, dilation, sizes)):
        np.copyto(cols[(slice(None),) + offset], P[where])
    return cols


def _kernel_part(K, kernel):
    """K's entries of offsets inside the kernel (a proof may hand a larger array of which only those are read)."""
    if K.shape[2:] == tuple(kernel):
        return K
    return K[(slice(None), slice(None)) + tuple(slice(0, k) for k in kernel)]


def _product(A, B, shape, out=None):
    """The matrix product A @ B laid out as `shape`: computed in `out` when it is given (nothing allocated)."""
    if out is not None and out.flags.c_contiguous:
        np.matmul(A, B, out=out.reshape(A.shape[0], B.shape[1]))
        return out
    return _into(np.matmul(A, B).reshape(shape), out)


def _conv(X, K, kernel, stride, padding, dilation, out=None, scratch=None):
    """z[f, i, j, …] = Σ_c Σ_p Σ_q K[f, c, p, q] x[c, s·i + d·p − P, s·j + d·q − P, …] (im2col, then one product)."""
    cols = _im2col(X, kernel, stride, padding, dilation, scratch)
    K = _kernel_part(K, kernel)
    F = K.shape[0]
    rows = K.size // F
    return _product(K.reshape(F, rows), cols.reshape(rows, -1), (F,) + cols.shape[1 + len(kernel):], out)


def _conv_input_grad(D, K, kernel, stride, padding, dilation, spatial, out=None, scratch=None):
    """∂C/∂x: every output error sent back through the kernel to the inputs its window read
    (col2im: one product, then an accumulating strided add per kernel offset), padding cropped."""
    nsp = len(kernel)
    K = _kernel_part(K, kernel)
    F, C = K.shape[:2]
    rows = K.size // F
    cols = _scratch(scratch, "error columns", (C,) + tuple(kernel) + D.shape[1:], np.result_type(K, D))
    np.matmul(K.reshape(F, rows).T, D.reshape(F, -1), out=cols.reshape(rows, -1))
    def part(k, offset, into):
        piece = cols[(slice(None),) + offset]
        return piece if into is None else np.copyto(into, piece)

    return _fold(part, C, kernel, stride, padding, dilation, spatial, D.shape[1:1 + nsp], D.shape[1 + nsp:],
                 cols.dtype, out, scratch)


def _conv_kernel_grad(D, X, kernel, stride, padding, dilation, out=None, scratch=None, cols_ready=False):
    """∂C/∂K[f, c, p, q] = Σ over positions (and samples) of the error times the input its window read:
    the error times the im2col columns transposed (with `cols_ready`, those the forward pass left in
    `scratch` for this input)."""
    cols = scratch["cols"] if cols_ready else _im2col(X, kernel, stride, padding, dilation, scratch)
    F = D.shape[0]
    rows = cols.size // (D.size // F)
    return _product(D.reshape(F, -1), cols.reshape(rows, -1).T, (F, X.shape[0]) + tuple(kernel), out)


def _full_correlation(D, K, kernel, stride, padding, dilation, spatial, out=None):
    """∂C/∂x as the gathered form: the error dilated by the stride, padded by d(k − 1), correlated
    with the kernel rotated by 180° (channels swapped), then the input padding cropped."""
    nsp = len(kernel)
    sizes = D.shape[1:1 + nsp]  # the output positions
    dilated = np.zeros((D.shape[0],) + tuple(s * (o - 1) + 1 for s, o in zip(stride, sizes)) + D.shape[1 + nsp:], dtype=D.dtype)
    dilated[(slice(None),) + tuple(slice(None, None, s) for s in stride)] = D
    extra = [n + 2 * p - (s * (o - 1) + 1) - d * (k - 1) for n, p, s, o, d, k in
             zip(spatial, padding, stride, sizes, dilation, kernel)]  # rows the last window did not reach
    pads = [(0, 0)] + [(d * (k - 1), d * (k - 1) + e) for d, k, e in zip(dilation, kernel, extra)]
    dilated = np.pad(dilated, pads + [(0, 0)] * (D.ndim - 1 - nsp))
    rotated = np.flip(K, axis=tuple(range(2, 2 + nsp))).swapaxes(0, 1)
    full = _conv(dilated, rotated, kernel, (1,) * nsp, (0,) * nsp, dilation)
    return _into(full[(slice(None),) + tuple(slice(p, p + n) for p, n in zip(padding, spatial))], out)


def _fold(part, channels, kernel, stride, padding, dilation, spatial, sizes, rest, dtype, out=None, scratch=None):
    """col2im: the part of each kernel offset k (`part(k, offset, into)`: written into `into`, or
    returned when `into` is None) added into the input positions that offset read — a strided view
    of the total, no loop over positions — then the padding cropped. When no input position is read
    twice (stride ≥ the window's span) each part is written straight into its view, with no add."""
    if out is None or any(padding):
        shape = (channels,) + tuple(n + 2 * p for n, p in zip(spatial, padding)) + tuple(rest)
        total = _scratch(scratch, "fold", shape, dtype)
    else:
        total = out
    disjoint = all(s >= d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation))
    covered = disjoint and all(d == 1 and s == k and s * o == n + 2 * p
                               for k, s, d, o, n, p in zip(kernel, stride, dilation, sizes, spatial, padding))
    if not covered:
        total.fill(0)
    for k, (offset, where) in enumerate(zip(np.ndindex(*kernel), _offsets(kernel, stride, dilation, sizes))):
        view = total[where]
        if disjoint:
            part(k, offset, view)
        else:
            np.add(view, part(k, offset, None), out=view)
    if total is out:
        return out
    return _into(total[(slice(None),) + tuple(slice(p, p + n) for p, n in zip(padding, spatial))], out)


def _window_sum(X, kernel, stride, padding, dilation, out=None, scratch=None):
    """s[c, i, j, …] = the sum of the window of (i, j) (zero padding counted), offset by offset."""
    nsp = len(kernel)
    P = _padded(X, padding, scratch)
    sizes = _window_sizes(P, kernel, stride, dilation)
    total = np.empty((X.shape[0],) + sizes + X.shape[1 + nsp:], X.dtype) if out is None else out
    for k, where in enumerate(_offsets(kernel, stride, dilation, sizes)):
        if k == 0:
            np.copyto(total, P[where])
        else:
            np.add(total, P[where], out=total)
    return total


def _window_spread(D, kernel, stride, padding, dilation, spatial, out=None, scratch=None):
    """Each output's entry added to every input entry of its window (the transpose of _window_sum)."""
    nsp = len(kernel)
    return _fold(lambda k, offset, into: D if into is None else np.copyto(into, D), D.shape[0], kernel, stride,
                 padding, dilation, spatial, D.shape[1:1 + nsp], D.shape[1 + nsp:], D.dtype, out, scratch)


def _position_mean(X, spatial_axes, out=None):
    """The mean of each channel over its positions: X (C, *spatial, …) → (C, …)."""
    axes = tuple(range(1, 1 + spatial_axes))
    count = 1
    for a in axes:
        count *= X.shape[a]
    total = np.add.reduce(X, axis=axes, out=out)
    return np.divide(total, count, out=total)


def _first_max(X, kernel, stride, padding, dilation, scratch=None, best=None):
    """Each window's largest entry (into `best`) and, per kernel offset k (row-major order), the mask
    of the windows whose first maximum is at k (PyTorch's tie rule: a later entry equal to the
    maximum loses). Padding is −∞: a padded position never wins, as in PyTorch's max_pool2d. Only
    element-wise operations on the strided views of each offset: no masked writes, which are slow."""
    nsp = len(kernel)
    P = _padded(X, padding, scratch, -np.inf)
    sizes = _window_sizes(P, kernel, stride, dilation)
    shape = (X.shape[0],) + sizes + X.shape[1 + nsp:]
    offsets = _offsets(kernel, stride, dilation, sizes)
    best = _scratch(scratch, "largest", shape, X.dtype) if best is None else best
    firsts = _scratch(scratch, "first maxima", (len(offsets),) + shape, np.bool_)
    taken = _scratch(scratch, "taken", shape, np.bool_)
    complex_step = np.iscomplexobj(X)  # the complex-step reference: compare the real parts
    np.copyto(best, P[offsets[0]])
    for k, where in enumerate(offsets[1:], 1):
        if complex_step:
            np.greater(P[where].real, best.real, out=taken)
            np.copyto(best, P[where], where=taken)
        else:
            np.maximum(best, P[where], out=best)
    taken.fill(False)
    for k, where in enumerate(offsets):
        piece, largest = (P[where].real, best.real) if complex_step else (P[where], best)
        np.equal(piece, largest, out=firsts[k])
        np.greater(firsts[k], taken, out=firsts[k])  # a maximum, and none before it
        np.logical_or(taken, firsts[k], out=taken)
    return firsts, best


def _max_pool(X, kernel, stride, padding, dilation, out=None, scratch=None):
    """a[c, i, j, …] = the largest entry of the window (where it was stays in `scratch` for the backward pass)."""
    return _first_max(X, kernel, stride, padding, dilation, scratch, out)[1]


def _max_pool_grad(D, X, kernel, stride, padding, dilation, spatial, out=None, scratch=None, firsts_ready=False):
    """∂C/∂u: each output's error routed to the first maximum of its window, 0 to the others (with
    `firsts_ready`, the positions the forward pass left in `scratch` for this input)."""
    nsp = len(kernel)
    firsts = scratch["first maxima"] if firsts_ready else _first_max(X, kernel, stride, padding, dilation, scratch)[0]
    routed = _scratch(scratch, "routed", D.shape, D.dtype)

    def part(k, offset, into):  # the error of each window whose first maximum is at offset k
        if D.dtype == object:  # exact numbers (the proofs), which do not multiply by a bool
            piece = np.where(firsts[k], D, 0)
            return piece if into is None else np.copyto(into, piece)
        return np.multiply(D, firsts[k], out=routed if into is None else into)

    return _fold(part, D.shape[0], kernel, stride, padding, dilation, spatial, D.shape[1:1 + nsp],
                 D.shape[1 + nsp:], D.dtype, out, scratch)
'''

_namespace: dict = {"np": np}
exec(HELPERS, _namespace)  # noqa: S102 - our own source, printed into model.py as well
windows = _namespace["_windows"]
conv = _namespace["_conv"]
conv_input_grad = _namespace["_conv_input_grad"]
conv_kernel_grad = _namespace["_conv_kernel_grad"]
full_correlation = _namespace["_full_correlation"]
window_sum, window_spread = _namespace["_window_sum"], _namespace["_window_spread"]
max_pool, max_pool_grad = _namespace["_max_pool"], _namespace["_max_pool_grad"]
position_mean = _namespace["_position_mean"]

# each helper's source and the helpers it calls (printed into model.py in this order)
_SOURCES = {name: "def " + chunk.strip() for name, chunk in
            ((c.split("(", 1)[0], c) for c in HELPERS.split("\ndef ")[1:])}
NEEDS = {"_conv": ("_into", "_scratch", "_padded", "_window_sizes", "_offsets", "_im2col", "_kernel_part",
                   "_product"),
         "_conv_input_grad": ("_into", "_scratch", "_offsets", "_kernel_part", "_fold"),
         "_conv_kernel_grad": ("_into", "_scratch", "_padded", "_window_sizes", "_offsets", "_im2col", "_product"),
         "_full_correlation": ("_into", "_scratch", "_padded", "_window_sizes", "_offsets", "_im2col",
                               "_kernel_part", "_product", "_conv"),
         "_window_sum": ("_scratch", "_padded", "_window_sizes", "_offsets"),
         "_window_spread": ("_into", "_scratch", "_offsets", "_fold"),
         "_max_pool": ("_scratch", "_padded", "_window_sizes", "_offsets", "_first_max"),
         "_max_pool_grad": ("_into", "_scratch", "_padded", "_window_sizes", "_offsets", "_first_max", "_fold"),
         "_position_mean": ()}
ORDER = ("_into", "_scratch", "_windows", "_padded", "_window_sizes", "_offsets", "_im2col", "_kernel_part",
         "_product", "_fold", "_first_max", "_conv", "_conv_input_grad", "_conv_kernel_grad", "_full_correlation", "_window_sum",
         "_window_spread", "_max_pool", "_max_pool_grad", "_position_mean")


def helper_lines(name: str) -> list[str]:
    return _SOURCES[name].split("\n")


def use(printer, name: str) -> None:
    """Note that printed code calls helper `name` (and what it calls)."""
    printer.helpers.update((*NEEDS.get(name, ()), name))


def _geometry_code(arg) -> str:
    kernel, stride, padding, dilation = read_geometry(arg)
    return f"{kernel}, {stride}, {padding}, {dilation}"


def _spatial(args) -> tuple[int, ...]:
    return tuple(int(a) for a in args)


def _over_copies(fn, lead: int, *arrays):
    """fn applied to each copy of a network (the complex-step reference stacks copies along a leading
    axis: `lead` is 1 then, 0 otherwise); an array without that axis is shared by every copy."""
    if lead == 0:
        return fn(*arrays)
    copies = max(a.shape[0] for a in arrays)
    pick = lambda a, k: a[k if a.shape[0] > 1 else 0]  # noqa: E731
    return np.stack([fn(*[pick(a, k) for a in arrays]) for k in range(copies)])


def _window_multiply_adds(network, symbol) -> sp.Expr:
    """F·C·kh·kw multiply-adds per output position and sample: the product of im2col, of col2im's
    product and of the kernel gradient alike (the node is found by the kernel's or the error's layer)."""
    from derive import notation
    from derive.backprop import parameter_axes

    layer = notation.quantity_of(symbol.name).layer
    node = next(n for n in network.layers if n.layer == layer and hasattr(n.kind, "window_sizes") and n.parameters)
    kernel = sp.Mul(*[a.size for a in parameter_axes(node, notation.Q("K", layer))])
    return kernel * sp.Mul(*[a.size for a in node.out_axes[1:]]) * notation.BATCH_SIZE


def _conv_copies(X: np.ndarray, K: np.ndarray, geometry) -> np.ndarray:
    """The convolution of every copy of a network at once (the complex-step reference: copies along
    a leading axis of the kernel, and of the input unless it is shared), as one einsum."""
    kernel = geometry[0]
    nsp = len(kernel)
    shared = X.shape[0] == 1
    Xm = X[0] if shared else np.moveaxis(X, 0, -1)  # (C, *spatial, *rest[, L])
    V = windows(Xm, *geometry)  # (C, *out, *rest[, L], *kernel)
    letters = iter("abdeghijkmnorstuvwxyz")
    out = "".join(next(letters) for _ in range(nsp))
    rest = "".join(next(letters) for _ in range(V.ndim - 1 - 2 * nsp - (0 if shared else 1)))
    offsets = "".join(next(letters) for _ in range(nsp))
    spec = f"lfc{offsets},c{out}{rest}{'' if shared else 'l'}{offsets}->lf{out}{rest}"
    return np.einsum(spec, K, V, optimize=True)


class Im2colConv(Op):
    """Z = K ⋆ X: the correlation of the input with the kernel (PyTorch's conv2d), by im2col. Args:
    the input, the kernel, the geometry, then the output's spatial sizes (for shapes only)."""

    def evaluate(self, value):
        geometry = read_geometry(self.args[2])
        K = value(self.args[1])
        if K.ndim - 2 - len(geometry[0]) == 0:
            return conv(value(self.args[0]), K, *geometry)
        return _conv_copies(value(self.args[0]), K, geometry)

    def _derive_latex(self, printer, **_):
        return rf"{_latex_operand(printer, self.args[1])} \star {_latex_operand(printer, self.args[0])}"

    def _numpycode(self, printer, **_):
        use(printer, "_conv")
        return f"_conv({printer._print(self.args[0])}, {printer._print(self.args[1])}, {_geometry_code(self.args[2])})"

    def lower(self, lowering):
        window = lowering.window_dict(self.args[0], geometry_tag(self.args[2]))
        call = lowering.helper_call(self, "_conv", self.args[:2], _geometry_code(self.args[2]), window)
        lowering.leaves(window, "cols")
        return call

    def multiply_adds(self, network):
        return _window_multiply_adds(network, self.args[1])

    def shape(self, shape_of):
        x, k = shape_of(self.args[0]), shape_of(self.args[1])
        nsp = len(self.args) - 3
        return (k[0], *[_dim(a) for a in self.args[3:]], *x[1 + nsp:])


class Col2imConv(Op):
    """∂C/∂X = col2im(Kᵀ Δ): the kernel applied to the error and scattered back to the inputs."""

    def evaluate(self, value):
        geometry, spatial = read_geometry(self.args[2]), _spatial(self.args[3:])
        K = value(self.args[1])
        return _over_copies(lambda d, k: conv_input_grad(d, k, *geometry, spatial), K.ndim - 2 - len(geometry[0]),
                            value(self.args[0]), K)

    def _derive_latex(self, printer, **_):
        return rf"\operatorname{{fold}}\left({{{_latex_operand(printer, self.args[1])}}}^{{\top}} {_latex_operand(printer, self.args[0])}\right)"

    def _numpycode(self, printer, **_):
        use(printer, "_conv_input_grad")
        sizes = ", ".join(printer._print(a) for a in self.args[3:])
        return (f"_conv_input_grad({printer._print(self.args[0])}, {printer._print(self.args[1])}, "
                f"{_geometry_code(self.args[2])}, ({sizes},))")

    def multiply_adds(self, network):
        return _window_multiply_adds(network, self.args[1])

    def lower(self, lowering):
        sizes = ", ".join(lowering.printer._print(a) for a in self.args[3:])
        window = lowering.window_dict(self.args[0], geometry_tag(self.args[2]))
        return lowering.helper_call(self, "_conv_input_grad", self.args[:2], f"{_geometry_code(self.args[2])}, ({sizes},)",
                                    window)

    def shape(self, shape_of):
        d, k = shape_of(self.args[0]), shape_of(self.args[1])
        nsp = len(self.args) - 3
        return (k[1], *[_dim(a) for a in self.args[3:]], *d[1 + nsp:])


class FullCorrelation(Col2imConv):
    """∂C/∂X = (the stride-dilated error) ⋆ rot180(K), padding cropped: the gathered form."""

    def evaluate(self, value):
        geometry, spatial = read_geometry(self.args[2]), _spatial(self.args[3:])
        K = value(self.args[1])
        return _over_copies(lambda d, k: full_correlation(d, k, *geometry, spatial), K.ndim - 2 - len(geometry[0]),
                            value(self.args[0]), K)

    def _derive_latex(self, printer, **_):
        return (rf"\operatorname{{crop}}\left(\operatorname{{dil}}\left({_latex_operand(printer, self.args[0])}\right)"
                rf" \star \operatorname{{rot}}_{{180}}\left({_latex_operand(printer, self.args[1])}\right)\right)")

    def _numpycode(self, printer, **_):
        use(printer, "_full_correlation")
        sizes = ", ".join(printer._print(a) for a in self.args[3:])
        return (f"_full_correlation({printer._print(self.args[0])}, {printer._print(self.args[1])}, "
                f"{_geometry_code(self.args[2])}, ({sizes},))")


def _dim(arg):
    """A size in the workspace's shapes: a number, or the name of a size (c1, h2), through the
    sizes equal by construction of the network being planned."""
    if arg.is_Integer:
        return int(arg)
    from derive.windowsizes import _NETWORK

    network = _NETWORK.get()
    return network.symbol_dim(arg) if network is not None else str(arg).replace("_", "")


class KernelGrad(Op):
    """∂C/∂K = Δ ⋆ X: the correlation of the input with the error, summed over positions and samples."""

    nargs = 3

    def evaluate(self, value):
        return conv_kernel_grad(value(self.args[0]), value(self.args[1]), *read_geometry(self.args[2]))

    def _derive_latex(self, printer, **_):
        return rf"{_latex_operand(printer, self.args[1])} \star {_latex_operand(printer, self.args[0])}"

    def _numpycode(self, printer, **_):
        use(printer, "_conv_kernel_grad")
        return (f"_conv_kernel_grad({printer._print(self.args[0])}, {printer._print(self.args[1])}, "
                f"{_geometry_code(self.args[2])})")

    def lower(self, lowering):
        window = lowering.window_dict(self.args[1], geometry_tag(self.args[2]))
        extra = _geometry_code(self.args[2]) + (", cols_ready=True" if lowering.left(window, "cols") else "")
        return lowering.helper_call(self, "_conv_kernel_grad", self.args[:2], extra, window)

    def multiply_adds(self, network):
        return _window_multiply_adds(network, self.args[0])

    def shape(self, shape_of):
        d, x = shape_of(self.args[0]), shape_of(self.args[1])
        kernel = read_geometry(self.args[2])[0]
        return (d[0], x[0], *kernel)


class Flatten(Op):
    """vec(X): the entries of each sample in PyTorch's C-major order (channels outermost). Args: the
    array, 1 for a minibatch (samples last, kept) or 0 for one sample (the result is a column), and
    the size of the result (for shapes only)."""

    nargs = 4  # the array, 1 (minibatch) or 0, the size of the result, the number of axes flattened

    def evaluate(self, value):
        x = value(self.args[0])
        lead = x.ndim - int(self.args[3]) - int(self.args[1])  # copies of a network along a leading axis
        return x.reshape(*x.shape[:lead], -1, x.shape[-1]) if self.args[1] else x.reshape(*x.shape[:lead], -1, 1)

    def _derive_latex(self, printer, **_):
        return rf"\operatorname{{vec}}\left({printer._print(self.args[0])}\right)"

    def _numpycode(self, printer, **_):
        text = _code_operand(printer, self.args[0])
        return f"{text}.reshape(-1, {text}.shape[-1])" if self.args[1] else f"{text}.reshape(-1, 1)"

    def lower(self, lowering):
        inner = lowering.array(lowering.lower(self.args[0]))
        shape = self.shape(lowering.shape_of)
        columns = "m" if self.args[1] else "1"
        return lowering.view(inner, "{}.reshape(-1, " + columns + ")", shape)

    def shape(self, shape_of):
        inner = shape_of(self.args[0])
        return (_dim(self.args[2]), inner[-1]) if self.args[1] else (_dim(self.args[2]), 1)


class Unflatten(Op):
    """The inverse of vec: a column of C·H·W entries per sample back to (C, H, W). Args: the array,
    1 for a minibatch (0: one sample), then the sizes."""

    def evaluate(self, value):
        g = value(self.args[0])
        sizes = [int(a) for a in self.args[2:]]
        lead = g.ndim - 2  # a column per sample, or the columns of a minibatch
        return g.reshape(*g.shape[:lead], *sizes, g.shape[-1]) if self.args[1] else g.reshape(*g.shape[:lead], *sizes)

    def _derive_latex(self, printer, **_):
        return rf"\operatorname{{vec}}^{{-1}}\left({printer._print(self.args[0])}\right)"

    def _numpycode(self, printer, **_):
        text = _code_operand(printer, self.args[0])
        sizes = ", ".join(printer._print(a) for a in self.args[2:])
        return f"{text}.reshape({sizes}, -1)" if self.args[1] else f"{text}.reshape({sizes})"

    def lower(self, lowering):
        inner = lowering.array(lowering.lower(self.args[0]))
        shape = self.shape(lowering.shape_of)
        sizes = [lowering.printer._print(a) for a in self.args[2:]] + (["m"] if self.args[1] else [])
        return lowering.view(inner, "{}.reshape(" + ", ".join(sizes) + ")", shape)

    def shape(self, shape_of):
        g = shape_of(self.args[0])
        sizes = tuple(_dim(a) for a in self.args[2:])
        return (*sizes, g[-1]) if self.args[1] else sizes


class _PoolOp(Op):
    """A pooling operation. Args: the array(s), the geometry, 1 for a minibatch (0: one sample), then
    spatial sizes (the output's for the forward operations, the input's for the backward ones)."""

    arrays = 1
    helper = ""

    @property
    def geometry_arg(self):
        return self.args[self.arrays]

    @property
    def batched(self) -> int:
        return int(self.args[self.arrays + 1])

    @property
    def sizes(self):
        return self.args[self.arrays + 2:]

    def _apply(self, fn, *arrays):
        """fn on arrays laid out (C, *spatial, samples…); copies of a network along a leading axis
        (the complex-step reference) are moved to the end and back: pooling acts per channel."""
        nsp = len(self.sizes)
        lead = arrays[0].ndim - (1 + nsp + self.batched)
        if lead == 0:
            return fn(*arrays)
        moved = [np.moveaxis(a, 0, -1) if a.ndim == arrays[0].ndim else a for a in arrays]
        return np.moveaxis(fn(*moved), -1, 0)

    def _numpycode(self, printer, **_):
        use(printer, self.helper)
        arrays = ", ".join(printer._print(a) for a in self.args[:self.arrays])
        return f"{self.helper}({arrays}, {self._extra(printer)})"

    def _extra(self, printer) -> str:
        return _geometry_code(self.geometry_arg)

    def lower(self, lowering):
        window = lowering.window_dict(self.args[self.arrays - 1], geometry_tag(self.geometry_arg))
        return lowering.helper_call(self, self.helper, self.args[:self.arrays], self._extra(lowering.printer), window)


class WindowSum(_PoolOp):
    """The sum of each window (average pooling is it divided by kh·kw, as the derivation writes)."""

    helper = "_window_sum"

    def evaluate(self, value):
        return self._apply(lambda x: window_sum(x, *read_geometry(self.geometry_arg)), value(self.args[0]))

    def _derive_latex(self, printer, **_):
        return rf"\operatorname{{winsum}}\left({printer._print(self.args[0])}\right)"

    def shape(self, shape_of):
        x = shape_of(self.args[0])
        return (x[0], *[_dim(a) for a in self.sizes], *x[1 + len(self.sizes):])


class MaxPool(WindowSum):
    helper = "_max_pool"

    def evaluate(self, value):
        return self._apply(lambda x: max_pool(x, *read_geometry(self.geometry_arg)), value(self.args[0]))

    def _derive_latex(self, printer, **_):
        return rf"\operatorname{{maxpool}}\left({printer._print(self.args[0])}\right)"

    def lower(self, lowering):
        window = lowering.window_dict(self.args[0], geometry_tag(self.geometry_arg))
        call = lowering.helper_call(self, self.helper, self.args[:1], self._extra(lowering.printer), window)
        lowering.leaves(window, "first maxima")
        return call


class WindowSpread(_PoolOp):
    """Each entry of an output-shaped array added to every input entry of its window."""

    helper = "_window_spread"

    def evaluate(self, value):
        spatial = _spatial(self.sizes)
        return self._apply(lambda d: window_spread(d, *read_geometry(self.geometry_arg), spatial), value(self.args[0]))

    def _extra(self, printer) -> str:
        return f"{_geometry_code(self.geometry_arg)}, ({', '.join(printer._print(a) for a in self.sizes)},)"

    def _derive_latex(self, printer, **_):
        return rf"\operatorname{{spread}}\left({printer._print(self.args[0])}\right)"

    def shape(self, shape_of):
        d = shape_of(self.args[0])
        return (d[0], *[_dim(a) for a in self.sizes], *d[1 + len(self.sizes):])


class MaxPoolGrad(WindowSpread):
    arrays = 2
    helper = "_max_pool_grad"

    def evaluate(self, value):
        spatial = _spatial(self.sizes)
        return self._apply(lambda d, x: max_pool_grad(d, x, *read_geometry(self.geometry_arg), spatial),
                           value(self.args[0]), value(self.args[1]))

    def _derive_latex(self, printer, **_):
        return (rf"\operatorname{{route}}_{{\max}}\left({printer._print(self.args[0])}; "
                rf"{printer._print(self.args[1])}\right)")

    def lower(self, lowering):
        window = lowering.window_dict(self.args[1], geometry_tag(self.geometry_arg))
        extra = self._extra(lowering.printer) + (", firsts_ready=True" if lowering.left(window, "first maxima") else "")
        return lowering.helper_call(self, self.helper, self.args[:2], extra, window)


class PositionMean(Op):
    """The mean of each channel over all its positions (global average pooling). Args: the array, 1
    for a minibatch (0: one sample, the result a column), the number of spatial axes."""

    nargs = 3

    def evaluate(self, value):
        x = value(self.args[0])
        nsp, batch = int(self.args[2]), int(self.args[1])
        lead = x.ndim - 1 - nsp - batch
        axes = tuple(range(lead + 1, lead + 1 + nsp))
        count = int(np.prod([x.shape[a] for a in axes]))
        mean = x.sum(axis=axes) / count
        return mean if batch else mean[..., None]

    def _derive_latex(self, printer, **_):
        return rf"\operatorname{{mean}}_{{\text{{pos}}}}\left({printer._print(self.args[0])}\right)"

    def _numpycode(self, printer, **_):
        use(printer, "_position_mean")
        text = f"_position_mean({printer._print(self.args[0])}, {int(self.args[2])})"
        return text if self.args[1] else f"{text}.reshape(-1, 1)"

    def lower(self, lowering):
        if not self.args[1]:
            raise NotImplementedError("one sample has no workspace form")
        return lowering.helper_call(self, "_position_mean", self.args[:1], str(int(self.args[2])))

    def shape(self, shape_of):
        x = shape_of(self.args[0])
        return (x[0], *x[1 + int(self.args[2]):]) if self.args[1] else (x[0], 1)


CONV_FUNCTIONS = (Im2colConv, Col2imConv, FullCorrelation, KernelGrad, Flatten, Unflatten, WindowSum, MaxPool,
                  WindowSpread, MaxPoolGrad, PositionMean)
