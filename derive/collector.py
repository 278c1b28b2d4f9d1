"""Pausing Python's cyclic garbage collector, with its state restored afterwards.

SymPy builds hundreds of thousands of short-lived objects and frees them by reference counting; the
cyclic collector then spends time (about a tenth of a run) finding nothing to collect, and its pauses
land in whatever is running, including timed evaluations. Dependency-free, so that the command line
can pause it before the heavy imports. The one pause of the process-level speed devices (issue 9: they
live at the top): the command line enters it around each command, and `run.generate` and
`run.derive_in_parallel` around their work for callers that do not come through the command line
(the gallery, the tests, `benchmarks/bench_scaling.py`); entered again inside, it changes nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The collector off inside the block, and on again after it if it was on before."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
