"""Speed of one training step of a LeNet-5-like network, generated code against the alternatives.

    python benchmarks/bench_cnn.py [--repeat 20] [--batch 128] [--dtypes float32,float64] [--no-torch]

Network 1×28×28 → conv 6 k5 p2 relu → maxpool 2 → conv 16 k5 relu → maxpool 2 → flatten → dense 120
relu → dense 84 relu → dense 10 softmax, cross entropy; one step is the forward pass, the backward
pass and a gradient-descent update of every parameter. Contenders, in this one process, with the
same parameters and data:

* generated        `sgd_step(ws, params, X, Y, lr)` of the model_inplace.py derive writes (workspace form)
* straightforward  the same step in plain NumPy with im2col/col2im, written here as a competent
                   person would (sliding_window_view, reshape, matmul; col2im by offsets)
* pytorch          autograd and an in-place update (skipped without torch)
* matmul bound     the matrix products of the im2col form alone (forward, input error and kernel
                   gradient of both convolutions, the three dense layers), on preallocated arrays
* element-wise floor  the element-wise passes of the im2col form alone, each once (im2col copies,
                   col2im adds, bias adds and sums, max pooling and its routing; `elementwise_floor`):
                   not a bound, but what a step spends besides its products when nothing is fused

model.py is derived here with the engine (every matrix form proved entry by entry) but without the
run's numeric checks, which evaluate one copy of the network per parameter entry (61 706 here);
the same kinds are verified at small sizes by `derive net` and against PyTorch in the tests.
Timings are medians of `--repeat` rounds after warm-up, one step of every contender per round, in
CPU time and in wall time; the machine is shared, so compare ratios within one run, and run with
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 for figures that do not depend on the other jobs. Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LAYERS = "conv 6 k5 p2 relu, maxpool 2, conv 16 k5 relu, maxpool 2, flatten, dense 120 relu, dense 84 relu, dense 10 softmax"


def generated_module():
    from derive.cnn import network_text
    from derive.codegen import plan_code
    from derive.model import build_model
    from derive.netfile import parse_network
    from derive.inplace import merged
    from derive.run import derive_in_parallel, model_sources
    from derive.verify import load_package

    text = network_text("1x28x28", LAYERS, "cross_entropy", "bench_cnn")
    model = build_model(parse_network(tomllib.loads(text), "bench_cnn", text=text, formats=("py",)))
    start = time.perf_counter()
    derivation = derive_in_parallel(model)
    sources = model_sources(derivation, title="bench_cnn", command="bench_cnn", plan=plan_code(derivation))
    print(f"derived (index forms, matrix forms proved) and printed model.py in {time.perf_counter() - start:.1f} s")
    return merged(*load_package(*sources, "bench_cnn_model"))  # model.py with model_inplace.py


# ---- the straightforward step ---------------------------------------------------------------------


def _cols(X, k, pad):  # (C, H, W, m) → columns (C·k·k, H'·W'·m)
    if pad:
        X = np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    V = np.lib.stride_tricks.sliding_window_view(X, (k, k), axis=(1, 2))  # (C, H', W', m, k, k)
    C, Ho, Wo, m = V.shape[:4]
    return V.transpose(0, 4, 5, 1, 2, 3).reshape(C * k * k, Ho * Wo * m), (Ho, Wo, m)


def _col2im(dcols, shape, k, pad):  # (C·k·k, H'·W'·m) → (C, H, W, m)
    C, H, W, m = shape
    Ho, Wo = H + 2 * pad - k + 1, W + 2 * pad - k + 1
    d = dcols.reshape(C, k, k, Ho, Wo, m)
    out = np.zeros((C, H + 2 * pad, W + 2 * pad, m), dcols.dtype)
    for p in range(k):
        for q in range(k):
            out[:, p:p + Ho, q:q + Wo] += d[:, p, q]
    return out[:, pad:pad + H, pad:pad + W]


def _pool(A):  # 2×2 max pooling, stride 2: output and the mask of the (first) maxima
    C, H, W, m = A.shape
    V = A.reshape(C, H // 2, 2, W // 2, 2, m).transpose(0, 1, 3, 5, 2, 4).reshape(C, H // 2, W // 2, m, 4)
    where = V.argmax(axis=-1)
    return np.take_along_axis(V, where[..., None], -1)[..., 0], where


def _unpool(D, where, shape):
    C, H, W, m = shape
    out = np.zeros((C, H // 2, W // 2, m, 4), D.dtype)
    np.put_along_axis(out, where[..., None], D[..., None], -1)
    return out.reshape(C, H // 2, W // 2, m, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(C, H, W, m)


def straightforward_step(p, X, Y, lr):
    m = X.shape[-1]
    c1, s1 = _cols(X, 5, 2)
    Z1 = (p["K1"].reshape(6, -1) @ c1).reshape(6, *s1) + p["b1"].reshape(6, 1, 1, 1)
    A1 = np.maximum(Z1, 0)
    P2, w2 = _pool(A1)
    c3, s3 = _cols(P2, 5, 0)
    Z3 = (p["K3"].reshape(16, -1) @ c3).reshape(16, *s3) + p["b3"].reshape(16, 1, 1, 1)
    A3 = np.maximum(Z3, 0)
    P4, w4 = _pool(A3)
    F5 = P4.reshape(-1, m)
    A6 = np.maximum(p["W6"] @ F5 + p["b6"], 0)
    A7 = np.maximum(p["W7"] @ A6 + p["b7"], 0)
    Z8 = p["W8"] @ A7 + p["b8"]
    E = np.exp(Z8 - Z8.max(axis=0))
    D8 = (E / E.sum(axis=0) - Y) / m
    D7 = (p["W8"].T @ D8) * (A7 > 0)
    D6 = (p["W7"].T @ D7) * (A6 > 0)
    G5 = (p["W6"].T @ D6).reshape(P4.shape)
    D3 = _unpool(G5, w4, A3.shape) * (Z3 > 0)
    G2 = _col2im(p["K3"].reshape(16, -1).T @ D3.reshape(16, -1), P2.shape, 5, 0)
    D1 = _unpool(G2, w2, A1.shape) * (Z1 > 0)
    grads = {"W8": D8 @ A7.T, "b8": D8.sum(axis=1, keepdims=True), "W7": D7 @ A6.T, "b7": D7.sum(axis=1, keepdims=True),
             "W6": D6 @ F5.T, "b6": D6.sum(axis=1, keepdims=True),
             "K3": (D3.reshape(16, -1) @ c3.T).reshape(p["K3"].shape), "b3": D3.sum(axis=(1, 2, 3)).reshape(16, 1),
             "K1": (D1.reshape(6, -1) @ c1.T).reshape(p["K1"].shape), "b1": D1.sum(axis=(1, 2, 3)).reshape(6, 1)}
    for key, g in grads.items():
        p[key] -= lr * g


def bound_step(arrays):
    """The matrix products of the im2col form of one step, on preallocated operands."""
    for a, b, out in arrays:
        np.matmul(a, b, out=out)


def bound_arrays(dtype, m, rng):
    shapes = [((6, 25), (25, 784 * m)), ((25, 6), (6, 784 * m)), ((6, 784 * m), (784 * m, 25)),  # conv 1
              ((16, 150), (150, 100 * m)), ((150, 16), (16, 100 * m)), ((16, 100 * m), (100 * m, 150)),  # conv 3
              ((120, 400), (400, m)), ((400, 120), (120, m)), ((120, m), (m, 400)),
              ((84, 120), (120, m)), ((120, 84), (84, m)), ((84, m), (m, 120)),
              ((10, 84), (84, m)), ((84, 10), (10, m)), ((10, m), (m, 84))]
    out = []
    for (r, k), (_, c) in shapes:
        out.append((rng.standard_normal((r, k)).astype(dtype), rng.standard_normal((k, c)).astype(dtype),
                    np.empty((r, c), dtype)))
    return out


def floor_arrays(dtype, m, rng):
    """Preallocated arrays of the element-wise passes of one im2col step (see elementwise_floor)."""
    shapes = {"X": (1, 28, 28, m), "P1": (1, 32, 32, m), "cols1": (1, 5, 5, 28, 28, m), "Z1": (6, 28, 28, m),
              "D1": (6, 28, 28, m), "A2": (6, 14, 14, m), "G2": (6, 14, 14, m), "cols3": (6, 5, 5, 10, 10, m),
              "Z3": (16, 10, 10, m), "D3": (16, 10, 10, m), "A4": (16, 5, 5, m), "G4": (16, 5, 5, m),
              "b1": (6, 1, 1, 1), "b3": (16, 1, 1, 1), "s1": (6,), "s3": (16,)}
    arrays = {key: rng.standard_normal(shape).astype(dtype) for key, shape in shapes.items()}
    arrays["P1"].fill(0)
    arrays["first1"], arrays["first3"] = np.empty((6, 14, 14, m), bool), np.empty((16, 5, 5, m), bool)
    return arrays


def _pool_and_route(Z, A, G, D, first):
    """2×2 max pooling of Z into A with relu, the first maxima located, and G routed back into D."""
    views = [Z[:, p::2, q::2] for p in range(2) for q in range(2)]
    np.maximum(views[0], views[1], out=A)
    np.maximum(A, views[2], out=A)
    np.maximum(A, views[3], out=A)
    for k, view in enumerate(views):
        np.equal(view, A, out=first)
        np.multiply(G, first, out=D[:, k // 2::2, k % 2::2])
    np.maximum(A, 0, out=A)


def elementwise_floor(a):
    """The element-wise passes an im2col step cannot do without, each once, unblocked, on preallocated
    arrays: the padding copy and the im2col copies of both convolutions, the bias adds, max pooling
    (maxima, where they are, relu on the pooled arrays) and the routing of its error, col2im's 25
    adds, and the bias gradients' sums. Not a bound: a measure of what the step spends besides its
    products when nothing is fused, for the analysis of what bounds the step."""
    np.copyto(a["P1"][:, 2:30, 2:30], a["X"])
    for p in range(5):
        for q in range(5):
            np.copyto(a["cols1"][:, p, q], a["P1"][:, p:p + 28, q:q + 28])
    np.add(a["Z1"], a["b1"], out=a["Z1"])
    _pool_and_route(a["Z1"], a["A2"], a["G2"], a["D1"], a["first1"])
    for p in range(5):
        for q in range(5):
            np.copyto(a["cols3"][:, p, q], a["A2"][:, p:p + 10, q:q + 10])
    np.add(a["Z3"], a["b3"], out=a["Z3"])
    _pool_and_route(a["Z3"], a["A4"], a["G4"], a["D3"], a["first3"])
    a["G2"].fill(0)
    for p in range(5):
        for q in range(5):
            view = a["G2"][:, p:p + 10, q:q + 10]
            np.add(view, a["cols3"][:, p, q], out=view)
    np.add.reduce(a["D1"].reshape(6, -1), axis=1, out=a["s1"])
    np.add.reduce(a["D3"].reshape(16, -1), axis=1, out=a["s3"])


def torch_step_factory(params, dtype):
    import torch

    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(), torch.nn.Linear(84, 10),
    ).to(tdtype)
    with torch.no_grad():
        for layer, key in ((net[0], "1"), (net[3], "3"), (net[7], "6"), (net[9], "7"), (net[11], "8")):
            layer.weight.copy_(torch.tensor(params[("K" if key in "13" else "W") + key]))
            layer.bias.copy_(torch.tensor(params["b" + key].ravel()))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)

    def step(X, labels):
        opt.zero_grad(set_to_none=False)
        torch.nn.functional.cross_entropy(net(X), labels).backward()
        opt.step()

    return step


def timed(contenders: dict, repeat: int, warmup: int = 3) -> tuple[dict, dict]:
    """Median CPU time and median wall time of one call of each contender. The contenders run in
    rounds, one call of each per round, so that a change in the shared machine's load falls on all
    of them alike; CPU time (this process's, all threads) is what a loaded machine distorts least."""
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    cpu = {name: [] for name in contenders}
    wall = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    return ({n: statistics.median(v) for n, v in cpu.items()}, {n: statistics.median(v) for n, v in wall.items()})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args(argv)
    module = generated_module()
    m = args.batch
    rows = []
    for name in args.dtypes.split(","):
        dtype = np.dtype(name).type
        rng = np.random.default_rng(0)
        params = module.init_params(module.SIZES, rng, dtype=dtype)
        X = rng.standard_normal((1, 28, 28, m)).astype(dtype)
        labels = rng.integers(0, 10, size=m)
        Y = np.eye(10, dtype=dtype)[:, labels]
        ws = module.Workspace(module.SIZES, m, dtype)
        mine = {k: v.copy() for k, v in params.items()}
        plain = {k: v.copy() for k, v in params.items()}
        # the two NumPy steps compute the same update (checked once before timing)
        a, b = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in params.items()}
        module.sgd_step(module.Workspace(module.SIZES, m, dtype), a, X, Y, 0.01)
        straightforward_step(b, X, Y, 0.01)
        worst = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
        arrays = bound_arrays(dtype, m, rng)
        floor = floor_arrays(dtype, m, rng)
        contenders = {"generated": lambda: module.sgd_step(ws, mine, X, Y, 0.01),
                      "straightforward": lambda: straightforward_step(plain, X, Y, 0.01),
                      "matmul bound": lambda: bound_step(arrays),
                      "element-wise floor": lambda: elementwise_floor(floor)}
        if not args.no_torch:
            try:
                import torch

                step = torch_step_factory(params, dtype)
                Xt = torch.tensor(np.moveaxis(X, -1, 0))
                lt = torch.tensor(labels)
                contenders["pytorch"] = lambda: step(Xt, lt)
            except ImportError:
                pass
        cells = timed(contenders, args.repeat)
        rows.append((name, cells, worst))
    names = ["generated", "straightforward", "pytorch", "matmul bound", "element-wise floor"]
    for title, which in (("CPU time", 0), ("wall time", 1)):
        print(f"\none training step, LeNet-5-like on 1x28x28, batch {m}: {title} (median of {args.repeat}, ms)\n")
        print("| dtype | " + " | ".join(names) + " | generated / straightforward | generated / bound | "
              "generated / (bound + floor) | same update |")
        print("|---|" + "---:|" * (len(names) + 4))
        for name, both, worst in rows:
            cells = both[which]
            values = " | ".join(f"{cells[n] * 1e3:.1f}" if n in cells else "–" for n in names)
            both_floors = cells["matmul bound"] + cells["element-wise floor"]
            print(f"| {name} | {values} | {cells['generated'] / cells['straightforward']:.2f} | "
                  f"{cells['generated'] / cells['matmul bound']:.2f} | {cells['generated'] / both_floors:.2f} | "
                  f"max diff {worst:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
