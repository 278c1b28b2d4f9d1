"""Shared helpers for the test suite."""

from __future__ import annotations

import functools

import pytest

from derive.derivation import derive
from derive.model import build_model, make_spec


@functools.lru_cache(maxsize=None)
def derivation_for(layers: int, act: str, loss: str = "mse", out_act: str | None = None):
    """Derive once per configuration and share the result between tests (derivations are immutable)."""
    return derive(build_model(make_spec(layers, act, out_act, loss)))


@pytest.fixture
def derived():
    return derivation_for
