"""`derive mlp --layers L --act A` for every depth L and every catalog hidden activation A: does it
verify, with which largest difference from the complex-step derivatives, and how long does it take?

Each configuration runs as users run it, `python -m derive mlp --layers L --act A` in a fresh process
(default formats, into a temporary folder); the time is the whole process's wall clock. The verdict
line states the measured difference and the tolerance, which is the same at every depth.

    python benchmarks/bench_depth.py                      # L = 2, 8, 32, 64, 128, every activation
    python benchmarks/bench_depth.py --depths 2,8 --acts tanh,relu
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from derive.catalog.activations import hidden_names  # noqa: E402

VERDICT = re.compile(r"match complex-step derivatives \(relative difference < (\S+); required (\S+)\)")


def run(depth: int, act: str, folder: Path) -> tuple[bool, float, str, str, str]:
    """(passed, seconds, largest difference, tolerance, error line) of one configuration."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "derive", "mlp", "--layers", str(depth), "--act", act,
                           "--out", str(folder / f"L{depth}-{act}")], capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    found = VERDICT.search(done.stdout)
    if done.returncode != 0 or found is None:
        return False, seconds, "-", "-", (done.stderr.strip().splitlines() or ["(no message)"])[-1]
    return True, seconds, found.group(1), found.group(2), ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="2,8,32,64,128")
    parser.add_argument("--acts", default=",".join(hidden_names()))
    args = parser.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    acts = args.acts.split(",")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for depth in depths:
            for act in acts:
                results[depth, act] = outcome = run(depth, act, Path(tmp))
                passed, seconds, error, tolerance, message = outcome
                print(f"L={depth:<4} {act:<11} {'verified' if passed else 'FAILED  '} {seconds:6.2f} s  "
                      f"difference < {error}  tolerance {tolerance}  {message}", flush=True)
    print()
    print("| activation | " + " | ".join(f"L = {d}" for d in depths) + " |")
    print("|---|" + "---:|" * len(depths))
    for act in acts:
        cells = [f"{results[d, act][1]:.1f} s, < {results[d, act][2]}" if results[d, act][0] else "**failed**"
                 for d in depths]
        print(f"| {act} | " + " | ".join(cells) + " |")
    medians = [statistics.median(results[d, a][1] for a in acts) for d in depths]
    print("| median time | " + " | ".join(f"{m:.1f} s" for m in medians) + " |")
    tolerances = {results[k][3] for k in results if results[k][0]}
    failed = [k for k in results if not results[k][0]]
    print(f"\n{len(results) - len(failed)} of {len(results)} verified; tolerance {', '.join(sorted(tolerances))}"
          + (f"; failed: {failed}" if failed else ""))


if __name__ == "__main__":
    main()
