"""Derivation time against depth: the δ-form keeps every step local, so time grows linearly.

    python benchmarks/bench_scaling.py [--depths 2,4,8,16,32,64]

Times the derivation in its two halves (`run.derive_in_parallel`: the per-sample and the minibatch
derivation, the latter in a second process started first, matrix forms and their entry-by-entry
proofs; `derive mlp` starts that process after the per-sample half, while it derives the update
rule and the initial scales)
in a fresh process per depth, and prints t(L), t(L)/L and t(64)/t(8)
(goal ≤ 10, i.e. linear growth). Direct differentiation of the expanded loss is shown for
contrast where it is affordable.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, sys, time
from derive.model import build_model, make_spec
from derive.run import derive_in_parallel as derive
from derive.verify_symbolic import direct_gradients, symbolic_point
layers = int(sys.argv[1])
model = build_model(make_spec(layers, "sigmoid", None, "mse"))
start = time.perf_counter(); derive(model); elapsed = time.perf_counter() - start
direct = None
if layers <= 4:
    point = symbolic_point(model)
    start = time.perf_counter(); direct_gradients(model, point); direct = time.perf_counter() - start
print(json.dumps({"derive": elapsed, "direct": direct}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depths", default="2,4,8,16,32,64")
    args = parser.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    times = {}
    print(f"{'L':>4} {'derive (s)':>11} {'per layer (ms)':>15} {'direct diff, width 2 (s)':>26}")
    for layers in depths:
        out = subprocess.run([sys.executable, "-c", CHILD, str(layers)], check=True, capture_output=True, text=True)
        figures = json.loads(out.stdout)
        times[layers] = figures["derive"]
        direct = "—" if figures["direct"] is None else f"{figures['direct']:.2f}"
        print(f"{layers:>4} {figures['derive']:>11.2f} {1000 * figures['derive'] / layers:>15.0f} {direct:>26}")
    if 8 in times and 64 in times:
        ratio = times[64] / times[8]
        print(f"t(64)/t(8) = {ratio:.1f}  (goal ≤ 10: {'met' if ratio <= 10 else 'NOT met'})")


if __name__ == "__main__":
    main()
