"""The critical path of `derive cnn` with its defaults, estimated from the CPU of its processes.

    python benchmarks/bench_cnn_run.py [--repeat 3]

On a shared machine the wall time of a run measures the other jobs. This runs the real, forked job
(`derive cnn --out TMP -q`, in this process) and records the parent's CPU clock at every fork and
every wait of `derive.parallel.Background`, and each child's CPU; then it replays that schedule on
two free cores (runnable processes share them equally) and prints the time the run would take
there, with the CPU of every process. Not a test: CPU times taken under contention run high.
Each repetition is a fresh process, so that no cache of an earlier run is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def replay(events: list, children: dict, cores: float = 2.0, step: float = 0.0005) -> float:
    """Seconds until the parent's "end" when its CPU segments (between forks and waits) and the
    children's CPU run on `cores` shared equally by whatever is runnable."""
    t, parent, k, running, done, waiting = 0.0, 0.0, 0, {}, set(), None
    while True:
        while waiting is None and k < len(events) and parent >= events[k][0] - 1e-12:
            _, kind, name = events[k]
            if kind == "end":
                return t
            if kind == "fork":
                running[name] = children[name]
            elif name not in done:
                waiting = name
                break
            k += 1
        if waiting is not None and waiting in done:
            waiting, k = None, k + 1
            continue
        share = min(1.0, cores / (len(running) + (waiting is None))) * step
        parent += share if waiting is None else 0.0
        for name in list(running):
            running[name] -= share
            if running[name] <= 0:
                del running[name]
                done.add(name)
        t += step


def record(out: str) -> dict:
    """One run of the job here, with the clocks described above."""
    import derive.parallel as parallel

    start_cpu, start_wall, events = time.process_time(), time.perf_counter(), []
    read_end, write_end = os.pipe()
    child, init, result = parallel._child, parallel.Background.__init__, parallel.Background.result

    def timed_child(fn, args, connection):
        begin = time.process_time()

        class Reporting:
            def send(self, value):
                os.write(write_end, (json.dumps([fn.__name__, time.process_time() - begin]) + "\n").encode())
                connection.send(value)

            def close(self):
                connection.close()

        child(fn, args, Reporting())

    def timed_init(self, fn, *args):
        events.append((time.process_time() - start_cpu, "fork", fn.__name__))
        init(self, fn, *args)

    def timed_result(self):
        if not self._done:
            events.append((time.process_time() - start_cpu, "wait", self._fn.__name__))
        return result(self)

    parallel._child, parallel.Background.__init__, parallel.Background.result = timed_child, timed_init, timed_result
    from derive.cli import main

    main(["cnn", "--out", out, "-q"], standalone_mode=False)
    events.append((time.process_time() - start_cpu, "end", ""))
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        children = dict(json.loads(line) for line in pipe.read().splitlines())
    return {"parent": events[-1][0], "children": children, "path": replay(events, children),
            "cpu": events[-1][0] + sum(children.values()), "wall": time.perf_counter() - start_wall,
            "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", metavar="DIR", help=argparse.SUPPRESS)  # a single run, printed as JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(record(args.one)))
        return
    runs = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.repeat):
            line = subprocess.run([sys.executable, __file__, "--one", out], check=True, capture_output=True,
                                  text=True).stdout.strip().splitlines()[-1]
            runs.append(json.loads(line))
            run = runs[-1]
            print(f"critical path {run['path']:.2f} s  CPU {run['cpu']:.2f} s (this process {run['parent']:.2f}; "
                  + ", ".join(f"{k} {v:.2f}" for k, v in run["children"].items())
                  + f")  wall {run['wall']:.2f} s  load {run['load']:.1f}")
    print(f"median: critical path {statistics.median(r['path'] for r in runs):.2f} s, "
          f"CPU {statistics.median(r['cpu'] for r in runs):.2f} s, wall {statistics.median(r['wall'] for r in runs):.2f} s")


if __name__ == "__main__":
    main()
