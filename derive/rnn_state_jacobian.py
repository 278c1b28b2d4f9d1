"""How an error travels back through a gated cell's state: the one-step Jacobian of the LSTM's pair
(h, c) or of the GRU's h, derived from the cell's own rules, and its product over k steps.

One step: the rules of the state at τ + 1 (h = o ⊙ tanh c and c = f ⊙ c[τ] + i ⊙ g for the LSTM,
h = (1 − z) ⊙ n + z ⊙ h[τ] for the GRU) are expanded through the layer's nodes down to the state at
τ, each gate's value held as σ(·) or tanh(·) of its own pre-activation rule; SymPy differentiates
with respect to h[τ, q] (and c[τ, q]), the gates' derivatives are read off their values (σ′ = σ(1 − σ),
tanh′ = 1 − tanh²) and the Kronecker sums collapse. Every block is a sum of terms u[i] W[i, q] or
u[i] [i = q], so it is Σ diag(u) W + diag(u): `terms` splits it so, and the numbers evaluate the
coefficients u on the generated model.py's forward pass (its init_params at the default seed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from derive.indexing import Iverson, collapse, holds_over_index_ranges
from derive.layers.gru import GATES as GRU_GATES
from derive.layers.lstm import GATES as LSTM_GATES
from derive.layers.lstm import GatePre, GateValue
from derive.notation import A, Z, Axis
from derive.rewrite import activation_derivative
from derive.rnn import RNNModel

HORIZONS = (1, 2, 4, 8, 16, 32, 50)


@dataclass(frozen=True)
class Block:
    lhs: sp.Expr  # ∂s[τ + 1, i]/∂p[τ, q]
    rhs: sp.Expr  # the collapsed derivative, in terms of the gates' values
    terms: tuple[tuple[sp.Expr, sp.Expr], ...]  # (coefficient u[i], W[i, q] or KroneckerDelta(i, q)), rhs = Σ u M


@dataclass(frozen=True)
class StateJacobian:
    states: tuple[sp.IndexedBase, ...]  # (h,) or (h, c)
    blocks: tuple[Block, ...]  # row-major: ∂s/∂p for s, p in states
    norms: tuple[tuple[sp.IndexedBase, float], ...]  # (W_h·, ‖W_h·‖₂) per matrix the blocks use, at init_params
    measured: tuple[tuple[int, float, float, float], ...]  # (k, ‖product‖₂, product of the step bounds, self-loop alone)
    steps: int  # length of the random sequence


def _truth(expr: sp.Expr) -> sp.Expr:
    """Guards that hold over the index ranges at τ + 1 (as [τ + 1 ≥ 1]) set to 1."""
    return expr.xreplace({g: 1 for g in expr.atoms(Iverson) if holds_over_index_ranges(g.args[0])})


def _layer(model: RNNModel):
    first = model.network.layers[0].layer
    return [n for n in model.network.layers if n.layer == first]


def _states(nodes) -> list:
    """The quantities some node of the layer reads at the previous step: h (and the LSTM's c)."""
    states = []
    for n in nodes:
        for k in sorted(n.kind.delayed):
            if n.inputs[k] not in states:
                states.append(n.inputs[k])
    return states


def derive_blocks(model: RNNModel) -> tuple[list, list[Block]]:
    """∂s[τ + 1, i]/∂p[τ, q] for every pair of states (s, p) of the first layer, from the rules."""
    nodes = _layer(model)
    by = {n.output.base: n for n in nodes}
    states = _states(nodes)
    tau, i = nodes[0].out_indices()
    q = Axis("n", nodes[0].layer).index("q")
    fold, gate_of = {}, {}  # expanded expression → the entry it stands for; gate function → (value entry, activation)

    def expand(expr):
        reps = {}
        for x in expr.atoms(sp.Indexed):
            if x.base not in by or x.indices[0] != tau + 1:
                continue  # a parameter, the input, or a state at τ: a leaf
            n = by[x.base]
            if isinstance(n.kind, GateValue):
                pre = n.inputs[0].base[x.indices]
                inner = expand(_truth(by[pre.base].call_entry(x.indices, None)))
                fold[inner] = pre
                function = sp.Function(n.kind.output_kind)
                gate_of[function] = (x, n.kind.activation)
                reps[x] = function(inner)
            else:
                reps[x] = expand(_truth(n.call_entry(x.indices, None)))
            fold[reps[x]] = x
        return expr.xreplace(reps)

    blocks = []
    for s in states:
        node = next(n for n in nodes if n.output == s)
        rule = expand(_truth(node.call_entry((tau + 1, i), None)))
        for p in states:
            d = sp.diff(rule, p.base[tau, q])
            reps = {}
            for sub in d.atoms(sp.Subs):  # g′ at the gate's pre-activation, in terms of its value
                value, act = gate_of[sub.expr.expr.func]
                rule_d = activation_derivative(act)
                form = rule_d.in_terms_of_output if rule_d.in_terms_of_output is not None else rule_d.derivative
                reps[sub] = form.xreplace({A: value, Z: fold[sub.point[0]]})
            d = collapse(d.xreplace(reps).xreplace(fold).doit())
            blocks.append(Block(sp.Derivative(s.base[tau + 1, i], p.base[tau, q]), d, _terms(d, i, q)))
    return [s.base for s in states], blocks


def _terms(expr: sp.Expr, i, q) -> tuple[tuple[sp.Expr, sp.Expr], ...]:
    """expr = Σ u[i] M[i, q], M a matrix entry W[i, q] or [i = q]: each M held as a symbol, its
    coefficient read off by differentiating (the block is linear in them, which is checked), in a fixed order."""
    found = {f for f in expr.atoms(sp.Indexed) if f.indices == (i, q)} | set(expr.atoms(sp.KroneckerDelta))
    order = sorted(found, key=lambda m: (isinstance(m, sp.KroneckerDelta), sp.default_sort_key(m)))
    held = {m: sp.Dummy(f"m{n}") for n, m in enumerate(order)}
    linear = expr.xreplace(held)
    terms = tuple((sp.factor_terms(sp.diff(linear, held[m])), m) for m in order)
    if sp.expand(linear - sum(u * held[m] for u, m in terms)) != 0 or any(u.has(*held.values()) for u, _ in terms):
        raise ValueError(f"the Jacobian's block is not Σ u[i] M[i, q]: {expr}")
    return terms


# --------------------------------------------------------------------------------------------------
# numbers


def _evaluate(expr, values: dict, prev: dict, nxt: dict, tau, env: dict):
    """A coefficient u[i] as a vector over i: entries at τ + 1 from `nxt`, at τ from `prev`,
    parameters from `values`; a bound index of a Sum from `env`."""
    if expr.is_Number:
        return float(expr)
    if isinstance(expr, sp.Indexed):
        base, idx = expr.base, expr.indices
        if base in values:
            array = values[base]
        else:
            array = (nxt if idx[0] == tau + 1 else prev)[base]
            assert idx[0] in (tau, tau + 1), expr
            idx = idx[1:]
        key = tuple(slice(None) if j not in env else env[j] for j in idx)
        return array[key]
    if isinstance(expr, sp.Add):
        return sum(_evaluate(a, values, prev, nxt, tau, env) for a in expr.args)
    if isinstance(expr, sp.Mul):
        out = 1.0
        for a in expr.args:
            out = out * _evaluate(a, values, prev, nxt, tau, env)
        return out
    if isinstance(expr, sp.Pow):
        return _evaluate(expr.base, values, prev, nxt, tau, env) ** float(expr.exp)
    if isinstance(expr, sp.tanh):
        return np.tanh(_evaluate(expr.args[0], values, prev, nxt, tau, env))
    if isinstance(expr, sp.Sum):
        (k, lo, hi), = expr.limits
        size = next(values[x.base].shape[-1] for x in expr.function.atoms(sp.Indexed)
                    if x.base in values and x.indices[-1] == k)  # the range of k: a weight's columns
        return sum(_evaluate(expr.function, values, prev, nxt, tau, {**env, k: n}) for n in range(size))
    raise ValueError(f"cannot evaluate {expr!r}")


def _weights(blocks) -> list:
    """The matrices W[i, q] the blocks multiply, in order of first appearance."""
    seen = []
    for block in blocks:
        for _, M in block.terms:
            if not isinstance(M, sp.KroneckerDelta) and M not in seen:
                seen.append(M)
    return seen


def step_values(model: RNNModel, module, params: dict, X: np.ndarray, t: int):
    """The numbers the blocks read at step t of model.py's forward pass on X: the parameters of the
    first layer (each gate's rows of PyTorch's stacked weight_ih_l0, weight_hh_l0, bias_ih_l0,
    bias_hh_l0), the layer's quantities at t − 1 and at t, and τ (the derivation's step index)."""
    nodes = _layer(model)
    H = model.spec.hidden
    gates = LSTM_GATES if model.spec.cell == "lstm" else GRU_GATES
    values = {}
    for n in nodes:
        if isinstance(n.kind, GatePre):
            rows = slice(gates.index(n.kind.gate) * H, (gates.index(n.kind.gate) + 1) * H)
            for p, name in zip(n.kind.parameters(n), ("weight_ih", "weight_hh", "bias_ih", "bias_hh")):
                values[p.base] = params[f"{name}_l0"][rows]
    forward = module.forward(params, X)
    arrays = {n.output.base: forward[n.out(True).code()][:, :, 0] for n in nodes}
    prev = {b: a[t - 1] for b, a in arrays.items()}
    nxt = {b: a[t] for b, a in arrays.items()}
    return values, prev, nxt, nodes[0].out_indices()[0]


def one_step(blocks, values: dict, prev: dict, nxt: dict, tau, H: int) -> tuple[np.ndarray, np.ndarray]:
    """J = ∂s[τ + 1]/∂s[τ] from the derived blocks at the given entries (S·H × S·H), and the bound of
    each block's spectral norm Σ over its terms of max|u| ‖M‖₂ (S × S)."""
    S = int(round(len(blocks) ** 0.5))
    J, bounds = np.zeros((S * H, S * H)), np.zeros((S, S))
    for n, block in enumerate(blocks):
        r, c = divmod(n, S)
        for u, M in block.terms:
            coef = np.broadcast_to(_evaluate(u, values, prev, nxt, tau, {}), (H,))
            matrix = np.eye(H) if isinstance(M, sp.KroneckerDelta) else values[M.base]
            J[r * H:(r + 1) * H, c * H:(c + 1) * H] += coef[:, None] * matrix
            bounds[r, c] += np.max(np.abs(coef)) * np.linalg.norm(matrix, 2)
    return J, bounds


def state_jacobian(model: RNNModel, module, seed: int = 0) -> StateJacobian:
    """The derived blocks, and on a random sequence at the initial weights of model.py: the spectral
    norm of the product of the one-step Jacobians over k steps, the product of the per-step bounds
    Σ over the terms of max|u| ‖M‖₂ (block by block, combined as ‖J‖₂ ≤ ‖(‖J_sp‖₂)‖₂), and the
    self-loop block alone (diag(f) or diag(z)) multiplied over the same steps."""
    states, blocks = derive_blocks(model)
    H = model.spec.hidden
    params = module.init_params(np.random.default_rng(seed))
    steps = max(HORIZONS)
    X = np.random.default_rng(seed + 1).standard_normal((steps + 1, model.spec.inputs, 1))
    values, _, _, tau = step_values(model, module, params, X, 1)
    norms = tuple((M.base, float(np.linalg.norm(values[M.base], 2))) for M in _weights(blocks))
    S = len(states)
    product, loop, bound = np.eye(S * H), np.ones(H), 1.0
    measured = []
    for k in range(1, steps + 1):  # ∂s[T]/∂s[T−k] = J[T] … J[T−k+1], J[t] = ∂s[t]/∂s[t−1]
        t = steps + 1 - k
        _, prev, nxt, _ = step_values(model, module, params, X, t)
        J, block_bounds = one_step(blocks, values, prev, nxt, tau, H)
        product = product @ J
        bound *= float(np.linalg.norm(block_bounds, 2))
        diagonal = blocks[-1].terms  # the self-loop: ∂c/∂c (LSTM) or the [i = q] term of ∂h/∂h (GRU)
        u = next(u for u, M in diagonal if isinstance(M, sp.KroneckerDelta))
        loop = loop * np.broadcast_to(_evaluate(u, values, prev, nxt, tau, {}), (H,))
        if k in HORIZONS:
            measured.append((k, float(np.linalg.norm(product, 2)), bound, float(np.max(np.abs(loop)))))
    return StateJacobian(tuple(states), tuple(blocks), tuple(norms), tuple(measured), steps)
