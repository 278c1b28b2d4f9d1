"""Run independent pieces of the pipeline in a second process when the platform can fork.

The machine this tool targets has two cores and a run spends most of its time in SymPy, which is
single-threaded. Work that does not depend on the rest (the direct differentiation of the expanded
loss, the minibatch derivation) is started in a forked child and collected when needed. Results
come back pickled; where fork is unavailable the work simply runs in-process when it is asked for,
so the results are the same either way.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from typing import Any


def _child(fn: Callable, args: tuple, connection) -> None:
    try:
        connection.send((True, fn(*args)))
    except BaseException as error:  # report, do not hang the parent
        connection.send((False, f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))
    finally:
        connection.close()


class BackgroundFailed(RuntimeError):
    """The forked computation raised; the message carries its traceback."""


class Background:
    """`fn(*args)`, started now in a forked process if possible; `result()` waits for it."""

    def __init__(self, fn: Callable, *args: Any):
        self._fn, self._args = fn, args
        self._done, self._value = False, None
        self._connection = self._process = None
        if "fork" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("fork")
            parent, child = context.Pipe(duplex=False)
            self._process = context.Process(target=_child, args=(fn, args, child), daemon=True)
            self._process.start()
            child.close()
            self._connection = parent

    def result(self) -> Any:
        if not self._done:
            if self._connection is not None:
                try:
                    ok, value = self._connection.recv()
                finally:
                    self._connection.close()
                    self._process.join()
                if not ok:
                    raise BackgroundFailed(f"background computation failed: {value}")
                self._value = value
            else:
                self._value = self._fn(*self._args)
            self._done = True
        return self._value
