"""The registry of layer kinds imports a built-in kind's module on its first lookup: a run imports
only the kinds its network uses, while every name stays listed (error messages, `derive net`)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from derive.layers import KINDS, LayerKind, register
from derive.layers.base import BUILT_IN

PROBE = """
import sys
import derive.layers, derive.run
print(int("derive.layers.conv" in sys.modules), int("derive.layers.attention" in sys.modules))
names = list(derive.layers.KINDS)
print(int("derive.layers.conv" in sys.modules), int("conv2d" in names))
cls = derive.layers.KINDS["conv2d"]
print(int("derive.layers.conv" in sys.modules), cls.__module__, cls.name)
"""


def test_an_mlp_run_does_not_import_convolution_or_attention():
    lines = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True).stdout.split("\n")
    assert lines[0] == "0 0"  # importing the run's modules loads neither
    assert lines[1] == "0 1"  # listing the names loads nothing
    assert lines[2] == "1 derive.layers.conv conv2d"  # looking one up does


def test_every_built_in_name_gives_the_kind_of_that_name_and_the_order_is_fixed():
    assert list(KINDS)[:len(BUILT_IN)] == list(BUILT_IN)
    for name in BUILT_IN:
        assert KINDS[name].name == name
        assert name in KINDS and KINDS.get(name) is KINDS[name]
    assert KINDS.get("no_such_kind") is None and "no_such_kind" not in KINDS
    with pytest.raises(KeyError):
        KINDS["no_such_kind"]


def test_a_kind_taking_a_built_in_name_is_refused_even_before_that_module_is_loaded():
    @dataclass(frozen=True)
    class Impostor(LayerKind):
        name = "max_pool2d"

    with pytest.raises(ValueError, match="already registered by MaxPool2d"):
        register(Impostor)
    assert KINDS["max_pool2d"].__name__ == "MaxPool2d"
