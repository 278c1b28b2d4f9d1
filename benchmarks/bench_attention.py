"""Speed of one training step of a pre-LayerNorm transformer encoder block, generated code against the
alternatives.

    python benchmarks/bench_attention.py [--repeat 10] [--batch 16] [--tokens 128] [--width 64]
                                         [--heads 4] [--dtypes float32,float64] [--no-torch]

Network [E, T] → layernorm → attention (H heads) → + x → layernorm → linear 4E gelu → linear E → + h
→ flatten → dense 10, mean squared error; one step is the forward pass, the backward pass and a
gradient-descent update of every parameter. Contenders, in this one process, with the same
parameters and data:

* generated        `sgd_step(ws, params, X, Y, lr)` of the model_inplace.py derive writes (workspace form)
* straightforward  the same step in plain NumPy, written here as a competent person would
                   (batched matmul per head, the softmax backward as A ⊙ (dA − rowsum(dA ⊙ A)))
* pytorch          autograd through nn.LayerNorm, nn.MultiheadAttention, nn.Linear, F.gelu and an
                   in-place SGD update (skipped without torch)
* matmul bound     the matrix products of the step alone (projections, scores, mixing, output
                   projection, MLP and read-out, forward and backward) on preallocated arrays
* element-wise     not a contender but a second floor, next to the bound: the element-wise passes no
                   NumPy step can avoid, each once, on preallocated arrays with attention's arrays
                   laid out as the generated step keeps them (see `floor_parts`); "products +
                   element-wise" is the bound plus these

model.py is derived here with the engine (every matrix form proved entry by entry) but without the
run's numeric checks, which evaluate one copy of the network per parameter entry; the same kinds are
verified at small sizes by `derive net` and against PyTorch in the tests. Timings are medians of
`--repeat` rounds after warm-up; each round runs every contender once, in turn (interleaved, so a
change of the machine's load reaches all of them alike), and measures CPU time (`--clock cpu`,
time.process_time: the time this process computed, not the time it waited for the shared cores;
with several BLAS threads it adds theirs) or wall time (`--clock wall`). The load average and the
BLAS thread count are printed with the table. The machine is shared, so compare ratios within one
run. Not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OUTPUTS = 10
LR = 1e-4  # small enough that repeated steps stay finite (the read-out sees E·T = 8192 inputs)


def network(E: int, T: int, H: int) -> dict:
    return {"input": [E, T], "loss": "mse", "layers": [
        {"kind": "layernorm"},
        {"kind": "attention", "heads": H},
        {"kind": "add", "from": "input", "name": "h"},
        {"kind": "layernorm"},
        {"kind": "linear", "units": 4 * E, "activation": "gelu"},
        {"kind": "linear", "units": E},
        {"kind": "add", "from": "h"},
        {"kind": "flatten"},
        {"kind": "dense", "units": OUTPUTS, "activation": "identity"}]}


def generated_module(E: int, T: int, H: int):
    from derive.codegen import plan_code
    from derive.model import build_model
    from derive.netfile import parse_network
    from derive.inplace import merged
    from derive.run import derive_in_parallel, model_sources
    from derive.verify import load_package

    model = build_model(parse_network(network(E, T, H), "bench_attention", text="", formats=("py",)))
    start = time.perf_counter()
    derivation = derive_in_parallel(model)
    sources = model_sources(derivation, title="bench_attention", command="bench_attention", plan=plan_code(derivation))
    print(f"derived (index forms, matrix forms proved) and printed model.py in {time.perf_counter() - start:.1f} s")
    return merged(*load_package(*sources, "bench_attention_model"))  # model.py with model_inplace.py


# ---- the straightforward step (arrays as model.py keeps them: X (E, T, m)) ------------------------

def _erf(x):
    """NumPy has no erf: Python's math.erf entry by entry (model.py has a vectorised one of its own)."""
    from math import erf

    return np.vectorize(erf, otypes=[x.dtype])(x)


def _gelu(Z):
    return 0.5 * Z * (1 + _erf(Z / np.sqrt(2)))


def _gelu_grad(Z):
    return 0.5 * (1 + _erf(Z / np.sqrt(2))) + Z * np.exp(-0.5 * Z * Z) / np.sqrt(2 * np.pi)


def _layernorm(X, gamma, beta):
    mu = X.mean(axis=0, keepdims=True)
    U = X - mu
    rs = 1 / np.sqrt((U * U).mean(axis=0, keepdims=True) + 1e-5)
    Xh = U * rs
    return Xh * gamma[:, :, None] + beta[:, :, None], Xh, rs


def _layernorm_back(G, Xh, rs, gamma):
    g = G * gamma[:, :, None]
    dX = rs * (g - g.mean(axis=0, keepdims=True) - Xh * (g * Xh).mean(axis=0, keepdims=True))
    return dX, (G * Xh).sum(axis=(1, 2))[:, None], G.sum(axis=(1, 2))[:, None]


def straightforward_step(p, X, Y, lr, H):
    E, T, m = X.shape
    d = E // H
    N1, Xh1, rs1 = _layernorm(X, p["gamma1"], p["beta1"])
    Nt = N1.transpose(2, 1, 0)  # (m, T, E)

    def proj(W, b):  # (m, H, T, d)
        return (Nt @ W.reshape(E, E).T + b.reshape(E)).reshape(m, T, H, d).transpose(0, 2, 1, 3)

    Q, K, V = proj(p["Wq2"], p["bq2"]), proj(p["Wk2"], p["bk2"]), proj(p["Wv2"], p["bv2"])
    S = Q @ K.transpose(0, 1, 3, 2) / np.sqrt(d)
    S = S - S.max(axis=-1, keepdims=True)
    A = np.exp(S)
    A /= A.sum(axis=-1, keepdims=True)
    O = A @ V  # (m, H, T, d)
    Oc = O.transpose(0, 2, 1, 3).reshape(m, T, E)
    Att = Oc @ p["Wo2"].reshape(E, E).T + p["bo2"].reshape(E)
    Hs = X + Att.transpose(2, 1, 0)
    N4, Xh4, rs4 = _layernorm(Hs, p["gamma4"], p["beta4"])
    Z5 = np.einsum("fc,cjs->fjs", p["W5"], N4) + p["b5"][:, :, None]
    A5 = _gelu(Z5)
    Z6 = np.einsum("fc,cjs->fjs", p["W6"], A5) + p["b6"][:, :, None]
    A7 = Hs + Z6
    F = A7.reshape(-1, m)
    out = p["W9"] @ F + p["b9"]
    D9 = (out - Y) / m
    g = {"W9": D9 @ F.T, "b9": D9.sum(axis=1, keepdims=True)}
    D7 = (p["W9"].T @ D9).reshape(E, T, m)
    g["W6"] = np.einsum("fjs,cjs->fc", D7, A5)
    g["b6"] = D7.sum(axis=(1, 2))[:, None]
    D5 = np.einsum("fc,fjs->cjs", p["W6"], D7) * _gelu_grad(Z5)
    g["W5"] = np.einsum("fjs,cjs->fc", D5, N4)
    g["b5"] = D5.sum(axis=(1, 2))[:, None]
    dN4 = np.einsum("fc,fjs->cjs", p["W5"], D5)
    dH, g["gamma4"], g["beta4"] = _layernorm_back(dN4, Xh4, rs4, p["gamma4"])
    dH = dH + D7
    dAtt = dH.transpose(2, 1, 0)  # (m, T, E)
    g["Wo2"] = (dAtt.reshape(-1, E).T @ Oc.reshape(-1, E)).reshape(p["Wo2"].shape)
    g["bo2"] = dAtt.sum(axis=(0, 1))[:, None]
    dO = (dAtt @ p["Wo2"].reshape(E, E)).reshape(m, T, H, d).transpose(0, 2, 1, 3)
    dA = dO @ V.transpose(0, 1, 3, 2)
    dV = A.transpose(0, 1, 3, 2) @ dO
    dS = A * (dA - (dA * A).sum(axis=-1, keepdims=True)) / np.sqrt(d)
    dQ = dS @ K
    dK = dS.transpose(0, 1, 3, 2) @ Q
    dN1 = np.zeros_like(Nt)
    for name, D in (("q", dQ), ("k", dK), ("v", dV)):
        Dc = D.transpose(0, 2, 1, 3).reshape(m * T, E)
        g["W" + name + "2"] = (Dc.T @ Nt.reshape(-1, E)).reshape(H, d, E)
        g["b" + name + "2"] = Dc.sum(axis=0).reshape(H, d)
        dN1 += (Dc @ p["W" + name + "2"].reshape(E, E)).reshape(m, T, E)
    _, g["gamma1"], g["beta1"] = _layernorm_back(dN1.transpose(2, 1, 0), Xh1, rs1, p["gamma1"])
    for key, value in g.items():
        p[key] -= lr * value


def bound_arrays(dtype, E, T, H, m, rng):
    """The matrix products of one step, as (batch of) matmuls on preallocated operands."""
    d = E // H
    R = m * T
    shapes = [
        ((R, E), (E, 3 * E)), ((R, 3 * E), (3 * E, E)), ((3 * E, R), (R, E)),  # in-projection: fwd, dX, dW
        ((m * H, T, d), (m * H, d, T)), ((m * H, T, T), (m * H, T, d)),  # scores, mixing
        ((m * H, T, d), (m * H, d, T)), ((m * H, T, T), (m * H, T, d)),  # dA, dV
        ((m * H, T, T), (m * H, T, d)), ((m * H, T, T), (m * H, T, d)),  # dQ, dK
        ((R, E), (E, E)), ((R, E), (E, E)), ((E, R), (R, E)),  # out-projection
        ((R, E), (E, 4 * E)), ((R, 4 * E), (4 * E, E)), ((4 * E, R), (R, E)),  # MLP 1
        ((R, 4 * E), (4 * E, E)), ((R, E), (E, 4 * E)), ((E, R), (R, 4 * E)),  # MLP 2
        ((OUTPUTS, E * T), (E * T, m)), ((E * T, OUTPUTS), (OUTPUTS, m)), ((OUTPUTS, m), (m, E * T)),  # read-out
    ]
    out = []
    for a, b in shapes:
        result = (*a[:-1], b[-1])
        out.append((rng.standard_normal(a).astype(dtype), rng.standard_normal(b).astype(dtype),
                    np.empty(result, dtype)))
    return out


def bound_step(arrays):
    for a, b, out in arrays:
        np.matmul(a, b, out=out)


def torch_step_factory(params, dtype, E, T, H):
    import torch
    import torch.nn.functional as F

    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    ln1, ln2 = torch.nn.LayerNorm(E, dtype=tdtype), torch.nn.LayerNorm(E, dtype=tdtype)
    mha = torch.nn.MultiheadAttention(E, H, batch_first=True, dtype=tdtype)
    lin5, lin6 = torch.nn.Linear(E, 4 * E, dtype=tdtype), torch.nn.Linear(4 * E, E, dtype=tdtype)
    head = torch.nn.Linear(E * T, OUTPUTS, dtype=tdtype)
    t = lambda a: torch.tensor(np.asarray(a))  # noqa: E731
    with torch.no_grad():
        ln1.weight.copy_(t(params["gamma1"].ravel()))
        ln1.bias.copy_(t(params["beta1"].ravel()))
        ln2.weight.copy_(t(params["gamma4"].ravel()))
        ln2.bias.copy_(t(params["beta4"].ravel()))
        mha.in_proj_weight.copy_(t(np.concatenate([params[k].reshape(E, E) for k in ("Wq2", "Wk2", "Wv2")])))
        mha.in_proj_bias.copy_(t(np.concatenate([params[k].reshape(E) for k in ("bq2", "bk2", "bv2")])))
        mha.out_proj.weight.copy_(t(params["Wo2"].reshape(E, E)))
        mha.out_proj.bias.copy_(t(params["bo2"].ravel()))
        for layer, key in ((lin5, "5"), (lin6, "6"), (head, "9")):
            layer.weight.copy_(t(params["W" + key]))
            layer.bias.copy_(t(params["b" + key].ravel()))
    modules = torch.nn.ModuleList([ln1, ln2, mha, lin5, lin6, head])
    opt = torch.optim.SGD(modules.parameters(), lr=LR)

    def step(x, y):  # x (m, T, E), y (m, 10)
        opt.zero_grad(set_to_none=False)
        n1 = ln1(x)
        h = x + mha(n1, n1, n1, need_weights=False)[0]
        out = h + lin6(F.gelu(lin5(ln2(h))))
        pred = head(out.permute(0, 2, 1).reshape(x.shape[0], -1))
        (0.5 * ((pred - y) ** 2).sum() / x.shape[0]).backward()
        opt.step()

    return step


def floor_parts(module, dtype, E: int, T: int, H: int, m: int, rng) -> dict:
    """The element-wise passes a NumPy training step of the block cannot avoid, each once, by what
    they are for; every one is a single NumPy call on preallocated arrays:

    * exp over the scores: one exp over the H·T·T·m attention scores (the softmax);
    * softmax, other passes: the row maximum, the subtraction, the row sum and the division forward,
      and backward dα ⊙ α, its row sum, the subtraction and the product with α (dS = α ⊙ (dα −
      rowsum(dα ⊙ α))), on the scores laid out head, sample, query, key;
    * gelu: erf over the 4E·T·m hidden units (NumPy has none: the generated module's `_erf`, with its
      work arrays kept) and the exp of exp(−z²/2) for the derivative;
    * layer norms: for each of the two, forward the mean, the centring, the mean square, 1/√ and the
      scaling; backward the two sums over the features and the three passes of the compact form.

    The passes that only scale or add (bias, residual, 1/√d, the read-out) are left out, so this is a
    floor, not an estimate of a step."""
    scores = rng.standard_normal((H, m, T, T)).astype(dtype)
    weights = np.empty_like(scores)
    grad = rng.standard_normal(scores.shape).astype(dtype)
    row = np.empty((H, m, T, 1), dtype)
    hidden = rng.standard_normal((4 * E, T, m)).astype(dtype)
    out = np.empty_like(hidden)
    erf_work = {}
    x = rng.standard_normal((E, T, m)).astype(dtype)
    centred, work, g = np.empty_like(x), np.empty_like(x), rng.standard_normal(x.shape).astype(dtype)
    column = np.empty((1, T, m), dtype)

    def softmax_rest():
        np.max(scores, axis=-1, keepdims=True, out=row)
        np.subtract(scores, row, out=weights)
        np.sum(weights, axis=-1, keepdims=True, out=row)
        np.divide(weights, row, out=weights)
        np.multiply(grad, weights, out=weights)
        np.sum(weights, axis=-1, keepdims=True, out=row)
        np.subtract(grad, row, out=weights)
        np.multiply(weights, scores, out=weights)

    import inspect

    keeps_work = "scratch" in inspect.signature(module._erf).parameters  # (a model.py from before it could not)

    def gelu():
        if keeps_work:
            module._erf(hidden, out=out, scratch=erf_work)
        else:
            np.copyto(out, module._erf(hidden))
        np.exp(hidden, out=out)

    def layer_norms():
        for _ in range(2):
            np.mean(x, axis=0, keepdims=True, out=column)
            np.subtract(x, column, out=centred)
            np.einsum("ijk,ijk->jk", centred, centred, out=column[0])
            np.sqrt(column, out=column)
            np.multiply(centred, column, out=centred)
            np.sum(g, axis=0, keepdims=True, out=column)
            np.einsum("ijk,ijk->jk", g, centred, out=column[0])
            np.multiply(centred, column, out=work)
            np.subtract(g, work, out=work)
            np.multiply(work, column, out=work)

    return {"exp over the scores": lambda: np.exp(scores, out=weights), "softmax, other passes": softmax_rest,
            "gelu (erf, exp)": gelu, "layer norms": layer_norms}


def interleaved(contenders: dict, repeat: int, clock, warmup: int = 2) -> dict:
    """Median time of each contender over `repeat` rounds, each round running every one in turn."""
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    times = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args(argv)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    E, T, H, m = args.width, args.tokens, args.heads, args.batch
    module = generated_module(E, T, H)
    rows = []
    for name in args.dtypes.split(","):
        dtype = np.dtype(name).type
        rng = np.random.default_rng(0)
        params = module.init_params(module.SIZES, rng, dtype=dtype)
        X = rng.standard_normal((E, T, m)).astype(dtype)
        Y = rng.standard_normal((OUTPUTS, m)).astype(dtype)
        ws = module.Workspace(module.SIZES, m, dtype)
        mine = {k: v.copy() for k, v in params.items()}
        plain = {k: v.copy() for k, v in params.items()}
        # the two NumPy steps compute the same update (checked once before timing)
        a, b = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in params.items()}
        module.sgd_step(module.Workspace(module.SIZES, m, dtype), a, X, Y, LR)
        straightforward_step(b, X, Y, LR, H)
        worst = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
        arrays = bound_arrays(dtype, E, T, H, m, rng)
        contenders = {"generated": lambda: module.sgd_step(ws, mine, X, Y, LR),
                      "straightforward": lambda: straightforward_step(plain, X, Y, LR, H),
                      "matmul bound": lambda: bound_step(arrays)}
        parts = floor_parts(module, dtype, E, T, H, m, rng)
        contenders.update(parts)
        if not args.no_torch:
            try:
                import torch

                torch.set_num_threads(1)
                step = torch_step_factory(params, dtype, E, T, H)
                xt, yt = torch.tensor(X.transpose(2, 1, 0).copy()), torch.tensor(Y.T.copy())
                contenders["pytorch"] = lambda: step(xt, yt)
            except ImportError:
                pass
        cells = interleaved(contenders, args.repeat, clock)
        cells["element-wise"] = sum(cells[p] for p in parts)
        cells["products + element-wise"] = cells["matmul bound"] + cells["element-wise"]
        rows.append((name, cells, worst, list(parts)))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "OpenBLAS's default"
    print(f"\none training step, pre-LN transformer block, batch {m}, {T} tokens, width {E}, {H} heads "
          f"(median of {args.repeat} interleaved rounds, {args.clock} time, ms; load average {load} "
          f"on {os.cpu_count()} cores; BLAS threads: {threads}; PyTorch 1 thread)\n")
    names = ["generated", "straightforward", "pytorch", "matmul bound", "products + element-wise"]
    print("| dtype | " + " | ".join(names) + " | generated / straightforward | generated / pytorch | "
          "generated / bound | generated / (products + element-wise) | same update |")
    print("|---|" + "---:|" * (len(names) + 5))
    for name, cells, worst, _ in rows:
        values = " | ".join(f"{cells[n] * 1e3:.1f}" if n in cells else "–" for n in names)
        vs_torch = f"{cells['generated'] / cells['pytorch']:.2f}" if "pytorch" in cells else "–"
        print(f"| {name} | {values} | {cells['generated'] / cells['straightforward']:.2f} | {vs_torch} | "
              f"{cells['generated'] / cells['matmul bound']:.2f} | "
              f"{cells['generated'] / cells['products + element-wise']:.2f} | max diff {worst:.1e} |")
    print("\nthe element-wise floor by part (ms; see floor_parts)\n")
    print("| dtype | " + " | ".join(rows[0][3]) + " | together | matmul bound |")
    print("|---|" + "---:|" * (len(rows[0][3]) + 2))
    for name, cells, _, parts in rows:
        print(f"| {name} | " + " | ".join(f"{cells[p] * 1e3:.1f}" for p in parts)
              + f" | {cells['element-wise'] * 1e3:.1f} | {cells['matmul bound'] * 1e3:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
