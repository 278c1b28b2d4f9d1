"""Speed of the generated training step against hand-written NumPy, PyTorch and the matrix products.

    python benchmarks/bench_code.py [--repeat 40] [--batches 1,128,1024] [--dtypes float64,float32]
                                    [--threads N] [--profile] [--no-torch]

Network 784-256-128-10, sigmoid hidden layers, softmax output with cross entropy; one step is a
forward pass, a backward pass and a gradient-descent update of every parameter. Contenders, all in
this one process, with the same parameters and data:

* generated       `sgd_step(ws, params, X, Y, lr)` of the model_inplace.py that derive writes (workspace form)
* straightforward the same step written plainly in NumPy, as a competent person would
* pytorch         autograd (`loss.backward()`) and an in-place update; skipped if torch is absent
* matmul bound    the eight matrix products of the step alone, into preallocated arrays, each with
                  the faster of np.matmul and np.dot for its shape: what the step cannot go below
                  without a faster BLAS

Timing: contenders take turns in rounds (a few discarded warm-up steps after each switch, so that
one library's spinning threads do not slow the next), every step is timed on its own, and the table
shows medians. Page faults per step come from getrusage (ru_minflt) over steps after warm-up. The
machine is shared and has 2 cores, so run it more than once and compare ratios within a run.
`--threads N` limits OpenBLAS and PyTorch to N threads (set before NumPy is imported). With
`--threads 1` steps are timed by the CPU time of the process (time.process_time) instead of the
wall clock: on a machine where other jobs are running, time spent descheduled is not counted, so
the figures stay stable. With more threads only the wall clock is meaningful, and two-thread BLAS
calls that wait for a busy core vary several-fold: run those on an idle machine.
`--profile` adds a per-line timing of the generated step (instrumented copy of `sgd_step`).
Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import resource
import statistics
import sys
import time
from pathlib import Path


def _threads_from_argv() -> str | None:
    """--threads must act before NumPy (and its BLAS) is imported."""
    for n, arg in enumerate(sys.argv):
        if arg == "--threads" and n + 1 < len(sys.argv):
            return sys.argv[n + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return None


if _threads_from_argv():
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = _threads_from_argv()

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from derive.model import make_spec  # noqa: E402
from derive.run import generate  # noqa: E402
from derive.inplace import INPLACE_FILE, merged  # noqa: E402
from derive.verify import load_files  # noqa: E402

SIZES = (784, 256, 128, 10)
LR = 0.01
GOAL_LARGE, GOAL_ONE, FLOAT32_TOLERANCE = 1.25, 1.6, 1e-4


# --------------------------------------------------------------------------------------------------
# the contenders


def generated_module():
    start = time.perf_counter()
    spec = make_spec(3, "sigmoid", None, "ce", sizes=",".join(map(str, SIZES)), formats="py")
    outcome = generate(spec)
    if not outcome.report.passed:
        raise SystemExit("derive's verification failed; nothing to benchmark")
    print(f"generated model.py for {spec.slug()} in {time.perf_counter() - start:.2f} s (verification passed)")
    # model.py and model_inplace.py in one namespace; the source of the second, whose sgd_step --profile times
    return merged(*load_files(outcome.files, "bench_model")), outcome.files[INPLACE_FILE].decode()


def straightforward_step(P, X, Y, lr):
    """Written plainly: one expression per formula, new arrays for every result."""
    m = X.shape[1]
    Z1 = P["W1"] @ X + P["b1"]
    A1 = 1 / (1 + np.exp(-Z1))
    Z2 = P["W2"] @ A1 + P["b2"]
    A2 = 1 / (1 + np.exp(-Z2))
    Z3 = P["W3"] @ A2 + P["b3"]
    E = np.exp(Z3 - Z3.max(axis=0, keepdims=True))
    A3 = E / E.sum(axis=0, keepdims=True)
    D3 = (A3 - Y) / m
    D2 = (P["W3"].T @ D3) * A2 * (1 - A2)
    D1 = (P["W2"].T @ D2) * A1 * (1 - A1)
    grads = {
        "W3": D3 @ A2.T, "b3": D3.sum(axis=1, keepdims=True),
        "W2": D2 @ A1.T, "b2": D2.sum(axis=1, keepdims=True),
        "W1": D1 @ X.T, "b1": D1.sum(axis=1, keepdims=True),
    }
    for key, g in grads.items():
        P[key] -= lr * g


def matmul_bound(params, X, dtype, calibrate):
    """The eight products of one step (three forward, five backward; none for the input), each with
    the faster NumPy call for its shape, into arrays allocated once."""
    m = X.shape[1]
    n0, n1, n2, n3 = SIZES
    W1, W2, W3 = params["W1"], params["W2"], params["W3"]
    A1, A2, A3 = (np.full((n, m), 0.5, dtype) for n in (n1, n2, n3))
    D1, D2, D3 = (np.full((n, m), 0.1, dtype) for n in (n1, n2, n3))
    G1, G2, G3 = (np.zeros(p.shape, dtype) + 0 for p in (W1, W2, W3))
    P1, P2 = np.zeros((n1, m), dtype) + 0, np.zeros((n2, m), dtype) + 0
    products = [(W1, X, A1), (W2, A1, A2), (W3, A2, A3), (D3, A2.T, G3), (W3.T, D3, P2), (D2, A1.T, G2), (W2.T, D2, P1), (D1, X.T, G1)]
    chosen = []
    for a, b, out in products:
        timings = {fn: calibrate(lambda fn=fn: fn(a, b, out=out)) for fn in (np.matmul, np.dot)}
        chosen.append((min(timings, key=timings.get), a, b, out))

    def step():
        for fn, a, b, out in chosen:
            fn(a, b, out=out)

    return step


def torch_contender(params, X, Y, dtype):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None, "pytorch not installed (pip install torch): skipped"
    if _threads_from_argv():
        torch.set_num_threads(int(_threads_from_argv()))
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    weights = [torch.tensor(params[f"W{l}"], dtype=tdtype, requires_grad=True) for l in (1, 2, 3)]
    biases = [torch.tensor(params[f"b{l}"][:, 0], dtype=tdtype, requires_grad=True) for l in (1, 2, 3)]
    x = torch.from_numpy(np.ascontiguousarray(X.T))  # PyTorch's layout: samples are rows
    labels = torch.from_numpy(Y.argmax(axis=0))
    everything = weights + biases

    def step():
        h = torch.sigmoid(F.linear(x, weights[0], biases[0]))
        h = torch.sigmoid(F.linear(h, weights[1], biases[1]))
        loss = F.cross_entropy(F.linear(h, weights[2], biases[2]), labels)
        loss.backward()
        with torch.no_grad():
            for p in everything:
                p.add_(p.grad, alpha=-LR)
                p.grad = None

    def state():
        return {**{f"W{l}": weights[l - 1].detach().numpy() for l in (1, 2, 3)},
                **{f"b{l}": biases[l - 1].detach().numpy()[:, None] for l in (1, 2, 3)}}

    return (step, state), f"pytorch {torch.__version__}, {torch.get_num_threads()} threads"


# --------------------------------------------------------------------------------------------------
# measuring


CLOCK = time.perf_counter  # time.process_time with --threads 1 (see module docstring)


def time_once(fn) -> float:
    start = CLOCK()
    fn()
    return CLOCK() - start


def calibrate(fn, n=15) -> float:
    for _ in range(3):
        fn()
    return statistics.median(time_once(fn) for _ in range(n))


def faults_per_step(fn, steps=50) -> float:
    for _ in range(10):  # first steps touch new pages of BLAS's and NumPy's own buffers
        fn()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps


def race(contenders: dict, repeat: int, rounds: int = 4, warmup: int = 3) -> dict[str, float]:
    """Median seconds per step; contenders take turns in rounds of `repeat / rounds` timed steps."""
    times = {name: [] for name in contenders}
    per_round = max(1, -(-repeat // rounds))
    for _ in range(rounds):
        for name, fn in contenders.items():
            for _ in range(warmup):
                fn()
            times[name] += [time_once(fn) for _ in range(per_round)]
    return {name: statistics.median(t) for name, t in times.items()}


def data(batch: int, dtype, gen):
    rng = np.random.default_rng(0)
    params = gen.init_params(SIZES, rng, dtype=dtype)
    X = rng.standard_normal((SIZES[0], batch)).astype(dtype)
    Y = np.eye(SIZES[-1], dtype=dtype)[:, rng.integers(0, SIZES[-1], batch)]
    return params, X, Y


def copy(params):
    return {k: v.copy() for k, v in params.items()}


def agreement(gen, torch_entry, batch: int, dtype) -> str:
    """One step from the same parameters: the three contenders must compute the same update."""
    params, X, Y = data(batch, dtype, gen)
    ws = gen.Workspace(SIZES, batch, dtype)
    a, b = copy(params), copy(params)
    gen.sgd_step(ws, a, X, Y, LR)
    straightforward_step(b, X, Y, LR)
    out = [f"straightforward {max(relative(a[k] - params[k], b[k] - params[k]) for k in a):.0e}"]
    if torch_entry is not None:
        (step, state), _ = torch_entry(copy(params), X, Y, dtype)
        step()
        t = state()
        out.append(f"pytorch {max(relative(a[k] - params[k], t[k] - params[k]) for k in a):.0e}")
    return ", ".join(out)


def relative(x, y) -> float:
    return float(np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-300))


def float32_agreement(gen, batch: int) -> float:
    """Largest relative difference (per parameter, in norm) of float32 gradients from float64 ones."""
    params, X, Y = data(batch, np.float64, gen)
    exact = gen.gradients(params, X, Y)
    ws = gen.Workspace(SIZES, batch, np.float32)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    single = gen.gradients_into(ws, p32, X.astype(np.float32), Y.astype(np.float32))
    return max(relative(single[k].astype(np.float64), exact[k]) for k in params)


# --------------------------------------------------------------------------------------------------
# per-line profile of the generated step


def instrumented_step(source: str, module):
    """A copy of `sgd_step` that records the time after each statement of its body."""
    tree = ast.parse(source)
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "sgd_step")
    labels = [ast.get_source_segment(source, s) for s in function.body[1:]]  # body[0] is the docstring
    body = [function.body[0]]
    mark = ast.parse("_marks.append(_clock())").body[0]
    body.append(mark)
    for statement in function.body[1:]:
        body += [statement, mark]
    function.body = body
    function.name = "sgd_step_profiled"
    namespace = dict(module.__dict__)
    marks: list[float] = []
    namespace.update(_marks=marks, _clock=time.perf_counter)
    exec(compile(ast.Module(body=[function], type_ignores=[]), "<profiled>", "exec"), namespace)  # noqa: S102
    return namespace["sgd_step_profiled"], marks, labels


def category(line: str) -> str:
    if re.match(r"^[\w, ]+ = ", line):  # names bound to arrays of the workspace or of params
        return "Python bookkeeping (checks, names)"
    if "ones_" in line or ".reduce(" in line:
        return "reductions (row/column sums, max)"
    if line.startswith("mm_") or "np.dot(" in line or "np.matmul(" in line:
        return "matrix products"
    if any(f"out={p})" in line for p in ("W1", "W2", "W3", "b1", "b2", "b3")):
        return "parameter update (θ += step)"
    if line.startswith("np."):
        return "element-wise (bias, activations, δ)"
    return "Python bookkeeping (checks, names)"


def profile(gen, source: str, batch: int, dtype, repeat: int, full: bool = False) -> None:
    fn, marks, labels = instrumented_step(source, gen)
    params, X, Y = data(batch, dtype, gen)
    ws = gen.Workspace(SIZES, batch, dtype)
    samples = []
    for k in range(repeat + 5):
        marks.clear()
        fn(ws, params, X, Y, LR)
        if k >= 5:
            samples.append(np.diff(marks))
    per_line = np.median(np.array(samples), axis=0) * 1e6
    total = per_line.sum()
    groups: dict[str, float] = {}
    for label, t in zip(labels, per_line):
        groups[category(label)] = groups.get(category(label), 0.0) + t
    print(f"\nprofile of the generated step, batch {batch}, {np.dtype(dtype).name}: {total:.0f} µs in {len(labels)} statements")
    for name, t in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {name:38s} {t:8.0f} µs  {t / total:6.1%}")
    print("  every statement, in order:" if full else "  slowest statements:")
    shown = zip(labels, per_line) if full else sorted(zip(labels, per_line), key=lambda kv: -kv[1])[:8]
    for label, t in shown:
        print(f"    {t:7.1f} µs  {label}")


# --------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=40, help="timed steps per contender (≥ 20)")
    parser.add_argument("--batches", default="1,128,1024")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--threads", type=int, help="threads for OpenBLAS and PyTorch (default: their own choice)")
    parser.add_argument("--profile", action="store_true", help="per-line timing of the generated step")
    parser.add_argument("--profile-all", action="store_true", help="the same, listing every statement")
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    global CLOCK
    if args.threads == 1:
        CLOCK = time.process_time
    batches = [int(b) for b in args.batches.split(",")]
    dtypes = [np.dtype(d).type for d in args.dtypes.split(",")]

    gen, source = generated_module()
    torch_entry = None if args.no_torch else torch_contender
    if torch_entry is not None:
        probe, note = torch_contender(data(1, np.float64, gen)[0], *data(1, np.float64, gen)[1:], np.float64)
        print(note)
        if probe is None:
            torch_entry = None
    threads = args.threads or os.environ.get("OPENBLAS_NUM_THREADS", "default")
    clock = "CPU time of the process" if CLOCK is time.process_time else "wall clock"
    print(f"numpy {np.__version__}, {os.cpu_count()} cores, BLAS threads: {threads}; clock: {clock}; "
          f"medians of {args.repeat} steps per contender; load average {os.getloadavg()[0]:.1f}")
    if CLOCK is time.perf_counter and os.getloadavg()[0] > 0.5:
        print("warning: other jobs are running; wall-clock figures with several BLAS threads are unreliable "
              "(use --threads 1 for CPU-time figures)")
    print()

    rows = []
    for dtype in dtypes:
        for batch in batches:
            params, X, Y = data(batch, dtype, gen)
            ws = gen.Workspace(SIZES, batch, dtype)
            p_gen, p_plain = copy(params), copy(params)
            contenders = {
                "generated": lambda: gen.sgd_step(ws, p_gen, X, Y, LR),
                "straightforward": lambda: straightforward_step(p_plain, X, Y, LR),
                "bound": matmul_bound(params, X, dtype, calibrate),
            }
            if torch_entry is not None:
                (step, _), _ = torch_entry(copy(params), X, Y, dtype)
                contenders["pytorch"] = step
            faults = {name: faults_per_step(fn) for name, fn in contenders.items()}
            medians = race(contenders, args.repeat)
            rows.append((batch, np.dtype(dtype).name, medians, faults, agreement(gen, torch_entry, batch, dtype)))

    def cell(medians, name):
        if name not in medians:
            return "—"
        return f"{medians[name] * 1e3:.2f} ms ({medians[name] / medians['bound']:.2f}×)"

    print("| batch, dtype | generated (workspace) | straightforward NumPy | PyTorch autograd | matrix products alone | generated / straightforward | page faults per step (gen / plain / torch) |")
    print("|---|---|---|---|---|---|---|")
    for batch, dtype, medians, faults, _ in rows:
        fault_text = " / ".join(f"{faults[n]:.0f}" if n in faults else "—" for n in ("generated", "straightforward", "pytorch"))
        print(f"| {batch}, {dtype} | {cell(medians, 'generated')} | {cell(medians, 'straightforward')} | {cell(medians, 'pytorch')} "
              f"| {medians['bound'] * 1e3:.2f} ms (1.00×) | {medians['generated'] / medians['straightforward']:.2f} | {fault_text} |")

    print("\nsame update from the same parameters (relative difference of the step, generated vs): ")
    for batch, dtype, *_, agree in rows:
        print(f"  batch {batch}, {dtype}: {agree}")
    worst32 = max(float32_agreement(gen, b) for b in batches)
    print(f"float32 gradients vs float64 (largest relative difference per parameter): {worst32:.1e}")

    print("\ngoals:")
    for batch, dtype, medians, faults, _ in rows:
        ratio = medians["generated"] / medians["bound"]
        goal = GOAL_ONE if batch == 1 else GOAL_LARGE
        verdicts = [f"≤ {goal}× bound: {'met' if ratio <= goal else 'NOT met'} ({ratio:.2f}×)"]
        if batch > 1:
            faster = medians["generated"] < medians["straightforward"]
            verdicts.append(f"faster than straightforward: {'met' if faster else 'NOT met'}")
        verdicts.append(f"zero page faults: {'met' if faults['generated'] == 0 else 'NOT met'} ({faults['generated']:.1f}/step)")
        print(f"  batch {batch:4d}, {dtype}: " + "; ".join(verdicts))
    print(f"  float32 agrees with float64 to {FLOAT32_TOLERANCE:.0e}: {'met' if worst32 <= FLOAT32_TOLERANCE else 'NOT met'} ({worst32:.1e})")

    if args.profile or args.profile_all:
        for dtype in dtypes:
            for batch in batches:
                profile(gen, source, batch, dtype, args.repeat, full=args.profile_all)


if __name__ == "__main__":
    main()
