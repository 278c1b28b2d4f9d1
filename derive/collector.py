"""Pausing Python's cyclic garbage collector, with its state restored afterwards.

SymPy builds hundreds of thousands of short-lived objects and frees them by reference counting; the
cyclic collector then spends time (about a tenth of a run) finding nothing to collect, and its pauses
land in whatever is running, including timed evaluations. Dependency-free, so that the command line
can pause it before the heavy imports.
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
