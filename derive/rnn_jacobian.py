"""How an error travels back k steps in an Elman network: the Jacobian ∂h[τ + k]/∂h[τ].

One step: SymPy differentiates the cell's own rules, h[τ + 1, i] = g(z[τ + 1, i]) and z[τ + 1, i] =
… + Σₖ W_hh[i, k] h[τ, k] …, with respect to h[τ, q]; the Kronecker sum collapses to
∂h[τ + 1, i]/∂h[τ, q] = g′(z[τ + 1, i]) W_hh[i, q] (g′ in terms of the output where a proved form
exists). Over k steps the chain rule multiplies k such matrices, so ‖∂h[τ + k]/∂h[τ]‖ ≤ (γ ‖W_hh‖)^k
with γ = sup |g′|. The numbers are those of the generated code: ‖W_hh‖₂ of `init_params` at its
default seed and sizes, and the measured norm of the product on a random sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from derive.indexing import Iverson, collapse, holds_over_index_ranges
from derive.layers.recurrent import RNNCell
from derive.notation import A, Z, Axis
from derive.rewrite import activation_derivative
from derive.rnn import RNNModel

HORIZONS = (1, 5, 10, 20, 50)


@dataclass(frozen=True)
class Jacobian:
    lhs: sp.Expr  # ∂h[τ + 1, i]/∂h[τ, q]
    computed: sp.Expr  # as SymPy gave it from the rules
    rhs: sp.Expr  # g′ in terms of the output
    gamma: float  # sup |g′| (on a fine grid of z)
    norm: float  # ‖W_hh‖₂ at the initial weights of model.py
    bounds: tuple[tuple[int, float], ...]  # (k, (γ‖W_hh‖)^k)
    measured: tuple[tuple[int, float], ...]  # (k, ‖∂h[T−1]/∂h[T−1−k]‖₂) on a random sequence


def one_step(model: RNNModel) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """∂h[τ + 1, i]/∂h[τ, q] of the first layer from its rules: (lhs, SymPy's result, in terms of h)."""
    cell, act = model.network.layers[0], model.network.layers[1]
    assert isinstance(cell.kind, RNNCell)
    tau, i = cell.out_indices()
    q = Axis("n", cell.layer).index("q")
    h, z = act.output.base, cell.output.base
    rule = cell.call_entry((tau + 1, i), None)
    guards = {g: sp.Dummy("guard") for g in rule.atoms(Iverson)}  # constants of h: held as symbols while differentiating
    inner = collapse(sp.diff(rule.xreplace(guards), h[tau, q]).doit()).xreplace({v: k for k, v in guards.items()})
    inner = inner.xreplace({g: 1 for g in inner.atoms(Iverson) if holds_over_index_ranges(g.args[0])})  # [τ + 1 ≥ 1]
    d = activation_derivative(act.kind.activation)
    computed = d.derivative.xreplace({Z: z[tau + 1, i]}) * inner
    used = d.in_terms_of_output if d.in_terms_of_output is not None else d.derivative
    readable = used.xreplace({A: h[tau + 1, i], Z: z[tau + 1, i]}) * inner
    return sp.Derivative(h[tau + 1, i], h[tau, q]), computed, readable


def jacobian(model: RNNModel, module, seed: int = 0) -> Jacobian:
    lhs, computed, rhs = one_step(model)
    act = model.network.layers[1].kind.activation
    d = activation_derivative(act)
    grid = np.linspace(-20, 20, 40001)
    gprime = sp.lambdify(Z, d.derivative, modules="numpy")
    gamma = float(np.max(np.abs(np.broadcast_to(gprime(grid), grid.shape))))
    spec = model.spec
    params = module.init_params(np.random.default_rng(seed))
    W_hh = params["weight_hh_l0"]
    norm = float(np.linalg.norm(W_hh, 2))
    bounds = tuple((k, (gamma * norm) ** k) for k in HORIZONS)
    steps = max(HORIZONS)
    X = np.random.default_rng(seed + 1).standard_normal((steps + 1, spec.inputs, 1))
    Zs = module.forward(params, X)["Z1"]
    product = np.eye(W_hh.shape[0])
    measured = []
    for k in range(1, steps + 1):  # ∂h[T−1]/∂h[T−1−k] = J[T−1] … J[T−k], J[t] = diag(g′(z[t])) W_hh
        t = steps + 1 - k
        product = product @ (np.broadcast_to(gprime(Zs[t][:, 0]), (W_hh.shape[0],))[:, None] * W_hh)
        if k in HORIZONS:
            measured.append((k, float(np.linalg.norm(product, 2))))
    return Jacobian(lhs, computed, rhs, gamma, norm, bounds, tuple(measured))
