"""Whole-job time (derive, generate code, verify, render; in process) for every catalog activation and
loss and a few user-written expressions, as a ratio to the sigmoid + mse job.

    python benchmarks/bench_catalog.py [--layers 2] [--repeat 3]

Not a test: timings depend on the machine. The first job of each kind includes SymPy's caches
warming up, so each configuration is run `--repeat` times and the median is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

from derive.catalog import ACTIVATIONS, LOSSES
from derive.model import make_spec
from derive.run import generate

USER_WRITTEN = ["z*tanh(log(1+exp(z)))", "atan(z)", "erf(z)", "max(0.1*z, z)", "z**3/3+z"]


def timed(spec, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        outcome = generate(spec)
        times.append(time.perf_counter() - start)
        assert outcome.report.passed, spec
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    reference = timed(make_spec(args.layers, "sigmoid"), args.repeat)
    print(f"{'configuration':<40} {'median (s)':>10} {'/ sigmoid':>10}")
    rows = [(f"--act {a}", make_spec(args.layers, a)) for a, e in ACTIVATIONS.items() if not e.output_only]
    rows += [(f"--act '{a}'", make_spec(args.layers, a)) for a in USER_WRITTEN]
    rows += [(f"--loss {l}", make_spec(args.layers, "tanh", None, l)) for l in LOSSES]
    rows += [("--act tanh --l2 0.01 --l1 0.001", make_spec(args.layers, "tanh", l2="0.01", l1="0.001"))]
    for label, spec in rows:
        seconds = timed(spec, args.repeat)
        print(f"{label:<40} {seconds:>10.2f} {seconds / reference:>10.1f}")


if __name__ == "__main__":
    main()
