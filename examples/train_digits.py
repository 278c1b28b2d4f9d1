"""Train a network that derive generated on real data: scikit-learn's handwritten digits.

    pip install ".[examples]"          # scikit-learn; the digits (1797 images of 8×8 pixels) ship with it
    python examples/train_digits.py    # about 5 s; prints one line per epoch and the test accuracy

derive derives the network (here 64 → 128 → 64 → 10, relu, softmax with cross entropy, Adam),
verifies it and writes model.py; this script only loads the data, standardises it, holds out a
quarter of it for testing, and calls the generated `init_params`, `train` and `accuracy`. Nothing
in the training code is written by hand. `--epochs` and `--samples` make it smaller (the test suite
runs it that way).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("train_digits.py needs scikit-learn: pip install \".[examples]\" (or pip install scikit-learn)")

from derive.model import make_spec
from derive.run import command_line, generate_and_write

ACTIVATION, LOSS = "relu", "ce"


def load_model(path: Path):
    spec = importlib.util.spec_from_file_location("digits_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", default="128,64", help="units of the hidden layers (default 128,64: two)")
    parser.add_argument("--optimizer", default="adam", help="as derive's --optimizer (default adam)")
    parser.add_argument("--samples", type=int, default=None, help="use only this many images (default: all 1797)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="where derive writes model.py (default: a temporary folder)")
    args = parser.parse_args(argv)

    images, labels = load_digits(return_X_y=True)
    if args.samples is not None:
        keep = np.random.default_rng(args.seed).permutation(len(labels))[: args.samples]
        images, labels = images[keep], labels[keep]
    X_train, X_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.25, stratify=labels, random_state=args.seed
    )
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std[std == 0] = 1.0  # pixels that are blank in every training image

    def columns(X):  # derive's models take one sample per column
        return ((X - mean) / std).T

    def one_hot(y):
        return np.eye(10)[:, y]

    hidden = [h.strip() for h in args.hidden.split(",")]
    spec = make_spec(len(hidden) + 1, ACTIVATION, None, LOSS, ",".join(["64", *hidden, "10"]), "py", optimizer=args.optimizer)
    print(f"$ {command_line(spec)}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out if args.out is not None else Path(scratch)
        outcome, written = generate_and_write(spec, out)
        model = load_model(out / "model.py")
    derived = time.perf_counter() - start
    print(f"derived, verified and wrote model.py in {derived:.1f} s "
          f"(verification {'passed' if outcome.report.passed else 'FAILED'})")
    print(f"training on {X_train.shape[0]} images, testing on {X_test.shape[0]} held-out images")

    rng = np.random.default_rng(args.seed)
    params = model.init_params(model.SIZES, rng)
    start = time.perf_counter()
    model.train(params, columns(X_train), one_hot(y_train), epochs=args.epochs, batch_size=args.batch_size, rng=rng,
                X_val=columns(X_test), Y_val=one_hot(y_test))
    trained = time.perf_counter() - start
    accuracy = model.accuracy(params, columns(X_test), one_hot(y_test))
    print(f"test accuracy {accuracy:.4f} ({round(accuracy * len(y_test))}/{len(y_test)}) after {args.epochs} epochs "
          f"in {trained:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
