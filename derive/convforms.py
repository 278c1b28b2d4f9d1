"""Recognition of the index forms of convolutional layers as whole-array operations (`convops`).

The engine derives every formula of a convolution entry by entry. This module reads those index
forms and names the operation each one is: the forward correlation (im2col), the scatter form of
the input error (col2im), the kernel gradient, flatten and its inverse. A recognition is only a
claim; `matrixform.entries_agree` proves it entry by entry at small sizes before it is used.
"""

from __future__ import annotations

import sympy as sp

from derive import notation

_UNFLAT = "unflat__"
_GRADIENT_KINDS = {"delta", "Delta", "grad_a", "grad_A"}


def _symbol(entry: sp.Indexed) -> sp.Symbol:
    return notation._vector_symbol(str(entry.base.label))


def _quantity(entry: sp.Indexed):
    return notation.quantity_of(str(entry.base.label))


def _flat_of(expr: sp.Expr, indices) -> bool:
    """expr = ((i₀·n₁ + i₁)·n₂ + i₂)…: the C-major position of the indices (their ranges' sizes)."""
    out = sp.S.Zero
    for i in indices:
        out = out * (i.upper + 1) + i
    return sp.expand(expr - out) == 0


def flatten_form(expr: sp.Expr, free: tuple) -> sp.Expr | None:
    """Σ_{c,u,v} δ(n, flat(c,u,v)) X[c,u,v(,s)] with free (n(,s)) is vec(X)."""
    if not isinstance(expr, sp.Sum):
        return None
    bound = [lim[0] for lim in expr.limits]
    factors = sp.Mul.make_args(expr.function)
    deltas = [f for f in factors if isinstance(f, sp.KroneckerDelta)]
    entries = [f for f in factors if isinstance(f, sp.Indexed)]
    if len(deltas) != 1 or len(entries) != 1 or len(factors) != 2:
        return None
    (delta,), (entry,) = deltas, entries
    n = free[0]
    if n not in delta.args:
        return None
    flat = delta.args[1] if delta.args[0] == n else delta.args[0]
    spatial = tuple(entry.indices[:len(bound)])
    if set(spatial) != set(bound) or not _flat_of(flat, spatial) or tuple(entry.indices[len(bound):]) != free[1:]:
        return None
    from derive.convops import Flatten

    return Flatten(_symbol(entry), sp.Integer(len(free) > 1), n.upper + 1, sp.Integer(len(bound)))


def unflatten_form(expr: sp.Expr, free: tuple, to_matrix_form) -> sp.Expr | None:
    """vec⁻¹ of the factors that read flat positions (Wᵀδ through a flatten), times the others
    (g′(z) read at (c, u, v)) as they are."""
    whole = unflatten(expr, free)
    if whole is not None:
        inner, flat_free, wrap = whole
        return wrap(to_matrix_form(inner, flat_free))
    if not expr.is_Mul:
        return None
    flat, rest = [], []
    for factor in expr.args:
        (flat if factor.atoms(sp.Indexed) and unflatten(factor, free) is not None else rest).append(factor)
    if not flat:
        return None
    inner, flat_free, wrap = unflatten(sp.Mul(*flat), free)
    others = sp.Mul(*rest)
    return (to_matrix_form(others, free) if others.atoms(sp.Indexed) else others) * wrap(to_matrix_form(inner, flat_free))


def unflatten(expr: sp.Expr, free: tuple) -> tuple[sp.Expr, tuple, sp.Expr] | None:
    """An expression over (c, u, v(, s)) that reads its arrays only at the flat position
    c·h·w + u·w + v: the same expression over a fresh index n, to be recognised, then vec⁻¹ of it."""
    batch = len(free) >= 2 and notation.is_sample_index(free[-1])
    spatial = free[:-1] if batch else free
    if len(spatial) < 2:
        return None
    flat = sp.S.Zero
    for i in spatial:
        flat = flat * (i.upper + 1) + i
    from derive.indexing import _known  # sizes equal by construction (a sum of two sequences before the flatten)

    found = False
    for entry in expr.atoms(sp.Indexed):
        for index in entry.indices:
            if index.has(*spatial):
                if sp.expand(_known(index - flat)) != 0:
                    return None
                found = True
    if not found:
        return None
    n = sp.Idx(sp.Symbol("n", integer=True), (0, sp.Mul(*[i.upper + 1 for i in spatial]) - 1))
    replaced = expr.replace(lambda e: isinstance(e, sp.Indexed),
                            lambda e: e.base[tuple(n if sp.expand(_known(i - flat)) == 0 else i for i in e.indices)])
    if replaced.has(*spatial):
        return None
    new_free = (n, free[-1]) if batch else (n,)
    from derive.convops import Unflatten

    def wrap(matrix):
        return Unflatten(matrix, sp.Integer(batch), *[i.upper + 1 for i in spatial])

    return replaced, new_free, wrap


def _window_node(layer):
    from derive.windowsizes import _NETWORK

    network = _NETWORK.get()
    if network is None or layer is None:
        return None
    for node in network.layers:
        if node.layer == layer and hasattr(node.kind, "window_sizes") and node.kind.parameters(node):
            return node
    return None


def _conv_sum(expr: sp.Sum, free: tuple) -> sp.Expr | None:
    """One convolution sum: the forward correlation, the scatter form of the input error or the
    kernel gradient, by the arrays it reads."""
    factors = sp.Mul.make_args(expr.function)
    entries = [f for f in factors if isinstance(f, sp.Indexed)]
    if len(entries) != 2:
        return None
    from derive.indexing import Iverson

    scale = sp.Mul(*[f for f in factors if not isinstance(f, (sp.Indexed, Iverson))])  # the 1/m of a mean
    if scale.atoms(sp.Idx):
        return None
    found = _conv_operation(entries, free)
    return None if found is None else scale * found


def _conv_operation(entries, free):
    kernels = [e for e in entries if _quantity(e) is not None and _quantity(e).kind == "K"]
    grads = [e for e in entries if _quantity(e) is not None and _quantity(e).kind in _GRADIENT_KINDS]
    if len(kernels) == 1:
        (kernel,) = kernels
        node = _window_node(_quantity(kernel).layer)
        if node is None:
            return None
        other = next(e for e in entries if e is not kernel)
        from derive.convops import Col2imConv, Im2colConv  # once a window's node is found (not for an MLP)

        if grads:  # Σ_f Σ_i Σ_j K[f, c, ·, ·] Δ[f, i, j]: the scatter form
            spatial = tuple(a.size for a in node.in_axes[0][1:])
            return Col2imConv(_symbol(other), _symbol(kernel), node.kind.geometry(), *spatial)
        return Im2colConv(_symbol(other), _symbol(kernel), node.kind.geometry(), *[a.size for a in node.out_axes[1:]])
    if len(grads) == 1 and not kernels:
        (grad,) = grads
        node = _window_node(_quantity(grad).layer)
        if node is None:
            return None
        other = next(e for e in entries if e is not grad)
        from derive.convops import KernelGrad

        return KernelGrad(_symbol(grad), _symbol(other), node.kind.geometry())
    return None


def _pool_reading(label: str):
    """The pooling node that reads the quantity `label` (per sample or its minibatch form)."""
    from derive.windowsizes import _NETWORK

    network = _NETWORK.get()
    if network is None:
        return None
    for node in network.layers:
        if hasattr(node.kind, "window_sizes") and not node.kind.parameters(node):
            if label in (node.inputs[0].label, node.inputs[0].batched(True).label):
                return node
    return None


def _pool_producing(entry: sp.Indexed):
    """The pooling node whose output's error `entry` is an entry of."""
    q = _quantity(entry)
    if q is None or q.kind not in ("grad_a", "grad_A") or q.layer is None:
        return None
    from derive.windowsizes import _NETWORK

    network = _NETWORK.get()
    node = network.producers.get(notation.Q("a", q.layer)) if network is not None else None
    if node is not None and hasattr(node.kind, "window_sizes") and not node.kind.parameters(node):
        return node
    return None


def _pool_sum(expr: sp.Sum, free: tuple) -> sp.Expr | None:
    """Σ_{p,q} [guard] u[c, s·i+p−P, s·j+q−P] (an average's window) or Σ_{i,j} [guards] G[c, i, j]
    (its error spread back): the sums of average pooling, by the array they read."""
    from derive.indexing import Iverson

    factors = sp.Mul.make_args(expr.function)
    entries = [f for f in factors if isinstance(f, sp.Indexed)]
    if len(entries) != 1 or any(not isinstance(f, (sp.Indexed, Iverson)) and f.atoms(sp.Idx) for f in factors):
        return None
    (entry,) = entries
    scale = sp.Mul(*[f for f in factors if not isinstance(f, (sp.Indexed, Iverson))])
    batch = sp.Integer(bool(free) and notation.is_sample_index(free[-1]))
    node = _pool_producing(entry)
    if node is not None and type(node.kind).__name__ == "AvgPool2d":
        from derive.convops import WindowSpread  # once a pooling node is found (not for an MLP)

        return scale * WindowSpread(_symbol(entry), node.kind.geometry(), batch, *[a.size for a in node.in_axes[0][1:]])
    node = _pool_reading(str(entry.base.label))
    if node is not None and type(node.kind).__name__ == "AvgPool2d":
        from derive.convops import WindowSum

        return scale * WindowSum(_symbol(entry), node.kind.geometry(), batch, *[a.size for a in node.out_axes[1:]])
    return None


def _max_pool_form(expr: sp.Expr, free: tuple) -> sp.Expr | None:
    """Σ_k u_k [u_k is the window's first maximum] (the forward rule), or the error routed back
    through the selectors (its derivative): the forms of max pooling."""
    from derive.layers.firstmax import FirstMax

    if not expr.has(FirstMax):
        return None
    from derive.convops import MaxPool, MaxPoolGrad
    if expr.is_Mul and any(f.is_Add and f.has(FirstMax) for f in expr.args):
        return None  # g′ ⊙ (the routed error): the factors are recognised one by one (`_term`)
    batch = sp.Integer(bool(free) and notation.is_sample_index(free[-1]))
    entries = expr.atoms(sp.Indexed)
    grads = {e for e in entries if _quantity(e) is not None and _quantity(e).kind in _GRADIENT_KINDS}
    values = {str(e.base.label) for e in entries - grads}
    if len(values) != 1:
        return None
    (label,) = values
    node = _pool_reading(label)
    if node is None or type(node.kind).__name__ != "MaxPool2d":
        return None
    symbol = notation._vector_symbol(label)
    if not grads:
        return MaxPool(symbol, node.kind.geometry(), batch, *[a.size for a in node.out_axes[1:]])
    labels = {str(e.base.label) for e in grads}
    if len(labels) != 1:
        return None
    (grad,) = labels
    return MaxPoolGrad(notation._vector_symbol(grad), symbol, node.kind.geometry(), batch,
                       *[a.size for a in node.in_axes[0][1:]])


def _position_sum(expr: sp.Sum, free: tuple) -> sp.Expr | None:
    """Σ over every position of X[c, u, v(, s)]: the count of positions times their mean (the
    mean of global average pooling, which then needs no sizes in the code)."""
    entry = expr.function
    if not isinstance(entry, sp.Indexed) or not free:
        return None
    bound = [lim[0] for lim in expr.limits]
    if any((lo, hi) != (i.lower, i.upper) for i, lo, hi in expr.limits):
        return None
    batch = notation.is_sample_index(free[-1])
    spatial = tuple(entry.indices[1:len(entry.indices) - batch])
    if entry.indices[0] != free[0] or set(spatial) != set(bound) or tuple(spatial) != tuple(bound[::-1]) \
            and tuple(spatial) != tuple(bound) or (batch and entry.indices[-1] != free[-1]):
        return None
    if _quantity(entry) is None or _quantity(entry).kind in _GRADIENT_KINDS:
        return None
    count = sp.Mul(*[i.upper + 1 for i in bound])
    from derive.convops import PositionMean

    return count * PositionMean(_symbol(entry), sp.Integer(batch), sp.Integer(len(bound)))


def _window_factor(factor: sp.Expr, free: tuple) -> sp.Expr | None:
    if isinstance(factor, sp.Sum):
        return _conv_sum(factor, free) or _pool_sum(factor, free) or _position_sum(factor, free)
    return _max_pool_form(factor, free)


def _term(term: sp.Expr, free: tuple, to_matrix_form) -> sp.Expr | None:
    whole = _max_pool_form(term, free) if not term.is_Mul else None
    if whole is not None:
        return whole
    factors = sp.Mul.make_args(term)
    found, rest = None, []
    for factor in factors:
        matrix = _window_factor(factor, free) if found is None and factor.atoms(sp.Indexed) else None
        if matrix is not None:
            found = matrix
        else:
            rest.append(factor)
    if found is None:
        return None
    rest = sp.Mul(*rest)
    if rest == 1:
        return found
    return (to_matrix_form(rest, free) if rest.atoms(sp.Indexed) else rest) * found


def recognise(expr: sp.Expr, free: tuple, to_matrix_form) -> sp.Expr | None:
    """The convolution operation `expr` is, or None (then the general recognition goes on)."""
    flat = flatten_form(expr, free)
    if flat is not None:
        return flat
    whole = _max_pool_form(expr, free)  # the k terms of a window's maximum belong together
    if whole is not None:
        return whole
    terms = sp.Add.make_args(expr)
    found, rest = [], []
    for term in terms:
        matrix = _term(term, free, to_matrix_form)
        (rest if matrix is None else found).append(term if matrix is None else matrix)
    if not found:
        return None
    return sp.Add(*found) + (to_matrix_form(sp.Add(*rest), free) if rest else 0)
