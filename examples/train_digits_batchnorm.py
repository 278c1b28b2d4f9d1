"""Train an MLP with batch normalisation that derive generated on scikit-learn's handwritten digits.

    pip install ".[examples]"                    # scikit-learn; the digits (1797 images of 8×8 pixels)
    python examples/train_digits_batchnorm.py    # prints one line per epoch and the test accuracy

derive derives the network 64 → 64 → batch normalisation, relu → 10, softmax with cross entropy
(Adam), verifies it (batch normalisation couples the samples: the minibatch derivation, checked on
an expanded minibatch) and writes model.py. The script only loads the data, standardises it, holds
out a quarter of it, and calls the generated `init_params`, `init_running`, `train` (which updates
the running statistics before every step) and `predict` (evaluation mode: the running statistics).
`--epochs` and `--samples` make it smaller (the test suite runs it that way).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

try:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("train_digits_batchnorm.py needs scikit-learn: pip install \".[examples]\" (or pip install scikit-learn)")

from derive.netfile import parse_network
from derive.run import generate_and_write


def network(hidden: int, optimizer: str) -> dict:
    return {"input": 64, "loss": "ce", "optimizer": optimizer, "layers": [
        {"kind": "dense", "units": hidden},
        {"kind": "batchnorm", "activation": "relu"},
        {"kind": "dense", "units": 10, "activation": "softmax"}]}


def load_model(path: Path):
    spec = importlib.util.spec_from_file_location("digits_batchnorm_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
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
    std[std == 0] = 1.0

    def columns(X):  # derive's models take one sample per column
        return ((X - mean) / std).T

    def one_hot(y):
        return np.eye(10)[:, y]

    spec = replace(parse_network(network(args.hidden, args.optimizer), "digits_batchnorm.toml"), formats=("py",))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out if args.out is not None else Path(scratch)
        outcome, _ = generate_and_write(spec, out)
        model = load_model(out / "model.py")
    print(f"derived, verified and wrote model.py in {time.perf_counter() - start:.1f} s "
          f"(verification {'passed' if outcome.report.passed else 'FAILED'})")
    print(f"training on {X_train.shape[0]} images, testing on {X_test.shape[0]} held-out images")

    rng = np.random.default_rng(args.seed)
    params = model.init_params(model.SIZES, rng)
    running = model.init_running(model.SIZES)
    start = time.perf_counter()
    model.train(params, columns(X_train), one_hot(y_train), epochs=args.epochs, batch_size=args.batch_size, rng=rng,
                running=running)
    trained = time.perf_counter() - start
    predicted = model.predict(params, running, columns(X_test)).argmax(axis=0)  # evaluation mode
    accuracy = float(np.mean(predicted == y_test))
    print(f"test accuracy in evaluation mode (running statistics) {accuracy:.4f} "
          f"({int(np.sum(predicted == y_test))}/{len(y_test)}) after {args.epochs} epochs in {trained:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
