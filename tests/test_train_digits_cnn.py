"""The generated code of a convolutional network trains on real images: examples/train_digits_cnn.py
at reduced size (a smaller network, 600 images, 5 epochs) must reach 80 % on the held-out quarter
(chance is 10 %). The full run reaches 98 % (README). Skipped without scikit-learn unless
DERIVE_REQUIRE_SKLEARN is set."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None


@pytest.mark.skipif(not HAVE_SKLEARN and not os.environ.get("DERIVE_REQUIRE_SKLEARN"),
                    reason="scikit-learn is not installed")
def test_train_digits_cnn_example_learns(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_digits_cnn.py"), "--samples", "600", "--epochs", "5", "--lr", "0.01",
         "--layers", "conv 4 k3 p1 relu, maxpool 2, flatten, dense 10 softmax", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("$ derive cnn --input 1x8x8 --layers")
    assert "verification passed" in done.stdout
    assert sum(line.startswith("epoch ") for line in done.stdout.splitlines()) == 5
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", done.stdout).group(1))
    assert accuracy >= 0.8, done.stdout
    assert (tmp_path / "model.py").is_file()
