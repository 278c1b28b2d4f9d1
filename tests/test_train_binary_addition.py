"""The generated code of `derive rnn` learns binary addition (examples/train_binary_addition_rnn.py),
in a shorter run: most held-out sums entirely right."""

import importlib.util

from conftest import ROOT


def test_binary_addition_is_learned():
    spec = importlib.util.spec_from_file_location("train_binary_addition_rnn",
                                                  ROOT / "examples" / "train_binary_addition_rnn.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.run(iterations=1500, verbose=False) >= 0.95
