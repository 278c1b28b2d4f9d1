"""Whole-process time of the main job, against the time of importing its dependencies alone.

    python benchmarks/bench_cli.py [--repeat 7]

Prints medians and the ratio; the goal is ≤ 1.5 s for `derive mlp --layers 3 --act sigmoid` on the
2-core reference machine. Not a test: timings depend on the machine. Run it with the Python of a
`pip install .` environment for the figure a user sees: a source tree run with
PYTHONDONTWRITEBYTECODE set recompiles every module of derive on each run (about 0.1 s here).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        job = [sys.executable, "-m", "derive", "mlp", "--layers", "3", "--act", "sigmoid", "--out", out, "-q"]
        imports = [sys.executable, "-c", "import sympy, numpy, jinja2, click"]
        probe = ("import derive, importlib.util, os; "
                 "print(derive.__file__, '' if os.path.exists(importlib.util.cache_from_source(derive.__file__)) "
                 "else '(no compiled bytecode: every module is compiled on each run)')")
        where = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.strip()
        print(f"derive imported from                : {where}")
        timed(job)  # warm the file cache
        job_times = [timed(job) for _ in range(args.repeat)]
        import_times = [timed(imports) for _ in range(args.repeat)]
    job_median, import_median = statistics.median(job_times), statistics.median(import_times)
    print(f"derive mlp --layers 3 --act sigmoid : median {job_median:.2f} s  (min {min(job_times):.2f} s, {args.repeat} runs)")
    print(f"import sympy, numpy, jinja2, click  : median {import_median:.2f} s")
    print(f"job / imports                       : {job_median / import_median:.1f}x")
    print(f"goal ≤ 1.5 s                        : {'met' if job_median <= 1.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
