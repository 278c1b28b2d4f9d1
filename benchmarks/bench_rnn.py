"""One LSTM training step (forward and backward over the sequence) at batch 64, input 128, hidden 256,
32 steps, one layer, a dense head at every step (mse), float64, in one run:

* the generated code of `derive rnn --cell lstm` in workspace form (`gradients_into` of model_inplace.py, arrays
  allocated once) and in its readable form (`gradients`);
* straightforward NumPy: the textbook LSTM forward and backward loops, the four gates stacked in one
  (4H, ·) product per step as most hand-written code does;
* `torch.nn.LSTM` + `nn.Linear` autograd (float64, this machine's threads);
* the matrix products alone: every product the step needs (forward: W_ih x and W_hh h per step; backward:
  the weight gradients and the errors sent to the previous step), nothing else — the floor for NumPy.

    python benchmarks/bench_rnn.py [--repeat 5] [--threads N] [--dtype float32]

Not a test: timings depend on the machine (the medians of --repeat runs are printed; the contenders
take turns, so that a change of the machine's load falls on all of them). `--threads N` limits
OpenBLAS and PyTorch to N threads (set before NumPy is imported); with `--threads 1` each run is
timed by the CPU time of the process (time.process_time), which does not count time spent waiting
for a core that other jobs hold, so the figures stay comparable on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _threads_from_argv() -> str | None:
    """--threads must act before NumPy (and its BLAS) is imported."""
    for n, arg in enumerate(sys.argv):
        if arg == "--threads" and n + 1 < len(sys.argv):
            return sys.argv[n + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return None


if _threads_from_argv():
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_variable] = _threads_from_argv()

import numpy as np  # noqa: E402

M, N, H, T, K = 64, 128, 256, 32, 8


def generated():
    from derive.rnn import make_rnn_spec
    from derive.rnn_run import generate
    from derive.inplace import merged
    from derive.verify import load_files

    outcome = generate(make_rnn_spec(cell="lstm", inputs=8, hidden=4, output="all", units=2, formats="py"))
    assert outcome.passed
    return merged(*load_files(outcome.files))  # model.py with model_inplace.py


def sigmoid(x):
    return 0.5 * np.tanh(0.5 * x) + 0.5


def straightforward(params, X, Y):
    """The textbook loops with the gates stacked: one (4H, n) and one (4H, H) product per step."""
    W, U, b = params["weight_ih_l0"], params["weight_hh_l0"], (params["bias_ih_l0"] + params["bias_hh_l0"])[:, None]
    Wy, by = params["head_weight"], params["head_bias"][:, None]
    h, c = np.zeros((H, M), X.dtype), np.zeros((H, M), X.dtype)
    cache, outs = [], []
    for t in range(T):
        a = W @ X[t] + U @ h + b
        i, f, g, o = sigmoid(a[:H]), sigmoid(a[H:2 * H]), np.tanh(a[2 * H:3 * H]), sigmoid(a[3 * H:])
        c_prev, h_prev = c, h
        c = f * c + i * g
        h = o * np.tanh(c)
        cache.append((i, f, g, o, c_prev, c, h_prev))
        outs.append(h)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dh_next, dc_next = np.zeros((H, M), X.dtype), np.zeros((H, M), X.dtype)
    for t in reversed(range(T)):
        i, f, g, o, c_prev, c, h_prev = cache[t]
        dy = (Wy @ outs[t] + by - Y[t]) / M
        grads["head_weight"] += dy @ outs[t].T
        grads["head_bias"] += dy.sum(axis=1)
        dh = Wy.T @ dy + dh_next
        tc = np.tanh(c)
        dc = dh * o * (1 - tc ** 2) + dc_next
        da = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g ** 2), dh * tc * o * (1 - o)])
        grads["weight_ih_l0"] += da @ X[t].T
        grads["weight_hh_l0"] += da @ h_prev.T
        grads["bias_ih_l0"] += da.sum(axis=1)
        dh_next, dc_next = U.T @ da, dc * f
    grads["bias_hh_l0"] = grads["bias_ih_l0"].copy()
    return grads


def products(params, X, hs):
    """Every matrix product of one step, with the same shapes, and nothing else."""
    W, U = params["weight_ih_l0"], params["weight_hh_l0"]
    Wy = params["head_weight"]
    da = np.ones((4 * H, M), X.dtype)
    for t in range(T):
        W @ X[t]
        U @ hs[t]
        Wy @ hs[t]
    for t in range(T):
        Wy.T @ np.ones((K, M), X.dtype)
        da @ X[t].T
        da @ hs[t].T
        U.T @ da


def torch_step(torch, modules, X, Y):
    lstm, head, x, y = modules
    lstm.zero_grad()
    head.zero_grad()
    out, _ = lstm(x)
    loss = 0.5 * ((head(out) - y) ** 2).sum() / M
    loss.backward()


def medians(rows, repeat: int, clock) -> dict[str, float]:
    """The median time of each contender over `repeat` rounds, the contenders taking turns."""
    times = {label: [] for label, _ in rows}
    for fn in (fn for _, fn in rows):  # warm-up
        fn()
    for _ in range(repeat):
        for label, fn in rows:
            start = clock()
            fn()
            times[label].append(clock() - start)
    return {label: statistics.median(values) for label, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, help="threads for OpenBLAS and PyTorch (default: their own choice)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    args = parser.parse_args()
    dtype = np.dtype(args.dtype)
    clock = time.process_time if args.threads == 1 else time.perf_counter
    module = generated()
    rng = np.random.default_rng(0)
    params = module.init_params(rng, inputs=N, hidden=H, units=K, dtype=dtype)
    X, Y = rng.standard_normal((T, N, M)).astype(dtype), rng.standard_normal((T, K, M)).astype(dtype)
    ours = module.gradients(params, X, Y)
    reference = straightforward(params, X, Y)
    worst = max(float(np.max(np.abs(ours[k] - reference[k])) / np.max(np.abs(reference[k]))) for k in ours)
    hs = module.forward(params, X)["A1"]
    ws = module.Workspace(M, T, dtype, inputs=N, hidden=H, units=K)
    into = module.gradients_into(ws, params, X, Y)
    worst = max(worst, max(float(np.max(np.abs(into[k] - reference[k])) / np.max(np.abs(reference[k])))
                           for k in into))
    rows = [("generated workspace gradients_into", lambda: module.gradients_into(ws, params, X, Y)),
            ("generated model.py gradients", lambda: module.gradients(params, X, Y)),
            ("straightforward NumPy (gates stacked)", lambda: straightforward(params, X, Y)),
            ("matrix products alone", lambda: products(params, X, hs))]
    try:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        tdtype = torch.float64 if dtype == np.float64 else torch.float32
        lstm = torch.nn.LSTM(N, H, dtype=tdtype)
        head = torch.nn.Linear(H, K, dtype=tdtype)
        modules = (lstm, head, torch.tensor(X.transpose(0, 2, 1)), torch.tensor(Y.transpose(0, 2, 1)))
        rows.append((f"torch.nn.LSTM autograd ({torch.get_num_threads()} threads)", lambda: torch_step(torch, modules, *modules[2:])))
    except ImportError:
        pass
    threads = args.threads or os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"LSTM, batch {M}, input {N}, hidden {H}, {T} steps, {dtype}; BLAS threads {threads}, "
          f"{'CPU time of the process' if clock is time.process_time else 'wall clock'}, medians of {args.repeat}; "
          f"generated (both forms) and straightforward agree to {worst:.1e} (relative)")
    times = medians(rows, args.repeat, clock)
    floor = times["matrix products alone"]
    plain = times["straightforward NumPy (gates stacked)"]
    for label, seconds in times.items():
        print(f"{label:<44} {seconds * 1000:8.1f} ms  {seconds / floor:5.2f}× the products  "
              f"{seconds / plain:5.2f}× straightforward")


if __name__ == "__main__":
    main()
