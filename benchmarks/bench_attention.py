"""Speed of one training step of a pre-LayerNorm transformer encoder block, generated code against the
alternatives.

    python benchmarks/bench_attention.py [--repeat 10] [--batch 16] [--tokens 128] [--width 64]
                                         [--heads 4] [--dtypes float32,float64] [--no-torch]

Network [E, T] → layernorm → attention (H heads) → + x → layernorm → linear 4E gelu → linear E → + h
→ flatten → dense 10, mean squared error; one step is the forward pass, the backward pass and a
gradient-descent update of every parameter. Contenders, in this one process, with the same
parameters and data:

* generated        `sgd_step(ws, params, X, Y, lr)` of the model.py derive writes (workspace form)
* straightforward  the same step in plain NumPy, written here as a competent person would
                   (batched matmul per head, the softmax backward as A ⊙ (dA − rowsum(dA ⊙ A)))
* pytorch          autograd through nn.LayerNorm, nn.MultiheadAttention, nn.Linear, F.gelu and an
                   in-place SGD update (skipped without torch)
* matmul bound     the matrix products of the step alone (projections, scores, mixing, output
                   projection, MLP and read-out, forward and backward) on preallocated arrays

model.py is derived here with the engine (every matrix form proved entry by entry) but without the
run's numeric checks, which evaluate one copy of the network per parameter entry; the same kinds are
verified at small sizes by `derive net` and against PyTorch in the tests. Timings are medians of
`--repeat` steps after warm-up; the machine is shared, so compare ratios within one run. Not a test.
"""

from __future__ import annotations

import argparse
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
    from derive.run import derive_in_parallel, model_source
    from derive.verify import load_module

    model = build_model(parse_network(network(E, T, H), "bench_attention", text="", formats=("py",)))
    start = time.perf_counter()
    derivation = derive_in_parallel(model)
    source = model_source(derivation, title="bench_attention", command="bench_attention", plan=plan_code(derivation))
    print(f"derived (index forms, matrix forms proved) and printed model.py in {time.perf_counter() - start:.1f} s")
    return load_module(source, "bench_attention_model")


# ---- the straightforward step (arrays as model.py keeps them: X (E, T, m)) ------------------------

def _erf(x):
    """NumPy has no erf: Python's math.erf entry by entry, as model.py does (NumPy only)."""
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


def timed(fn, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args(argv)
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
        cells = {"generated": timed(lambda: module.sgd_step(ws, mine, X, Y, LR), args.repeat),
                 "straightforward": timed(lambda: straightforward_step(plain, X, Y, LR, H), args.repeat)}
        arrays = bound_arrays(dtype, E, T, H, m, rng)
        cells["matmul bound"] = timed(lambda: bound_step(arrays), args.repeat)
        if not args.no_torch:
            try:
                import torch

                torch.set_num_threads(1)
                step = torch_step_factory(params, dtype, E, T, H)
                xt, yt = torch.tensor(X.transpose(2, 1, 0).copy()), torch.tensor(Y.T.copy())
                cells["pytorch"] = timed(lambda: step(xt, yt), args.repeat)
            except ImportError:
                pass
        rows.append((name, cells, worst))
    print(f"\none training step, pre-LN transformer block, batch {m}, {T} tokens, width {E}, {H} heads "
          f"(median of {args.repeat}, ms)\n")
    names = ["generated", "straightforward", "pytorch", "matmul bound"]
    print("| dtype | " + " | ".join(names) + " | generated / straightforward | generated / pytorch | "
          "generated / bound | same update |")
    print("|---|" + "---:|" * (len(names) + 4))
    for name, cells, worst in rows:
        values = " | ".join(f"{cells[n] * 1e3:.1f}" if n in cells else "–" for n in names)
        vs_torch = f"{cells['generated'] / cells['pytorch']:.2f}" if "pytorch" in cells else "–"
        print(f"| {name} | {values} | {cells['generated'] / cells['straightforward']:.2f} | {vs_torch} | "
              f"{cells['generated'] / cells['matmul bound']:.2f} | max diff {worst:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
