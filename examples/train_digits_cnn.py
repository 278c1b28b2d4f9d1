"""Train a convolutional network that derive generated on scikit-learn's 8×8 handwritten digits.

    pip install ".[examples]"              # scikit-learn; the digits (1797 images of 8×8 pixels) ship with it
    python examples/train_digits_cnn.py    # prints the derivation time, one line per epoch, the accuracy

derive derives the network of `derive cnn` (1×8×8 → conv 16 k3 p1 relu → maxpool 2 → conv 32 k3 p1
relu → maxpool 2 → flatten → dense 10 softmax, cross entropy, Adam), verifies it and writes model.py;
this script only loads the images, scales them, holds out a quarter for testing and calls the
generated `init_params`, `train` and `accuracy`. The images are (C, H, W, m) arrays with the samples
last, as the derivation indexes them (from PyTorch's (m, C, H, W): np.moveaxis(x, 0, -1)).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

try:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("train_digits_cnn.py needs scikit-learn: pip install \".[examples]\" (or pip install scikit-learn)")

from derive.cnn import network_text
from derive.netfile import parse_network
from derive.run import command_line, generate_and_write

LAYERS = "conv 16 k3 p1 relu, maxpool 2, conv 32 k3 p1 relu, maxpool 2, flatten, dense 10 softmax"


def load_model(path: Path):
    spec = importlib.util.spec_from_file_location("digits_cnn_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None, help="Adam's step size (default: its derived default, 0.001)")
    parser.add_argument("--layers", default=LAYERS, help="as derive cnn --layers")
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

    def batch(X):  # (m, 64) pixels 0…16 → (1, 8, 8, m), scaled to [0, 1] and centred
        return np.moveaxis((X / 16.0 - 0.5).reshape(-1, 1, 8, 8), 0, -1)

    def one_hot(y):
        return np.eye(10)[:, y]

    command = f"derive cnn --input 1x8x8 --layers '{args.layers}' --optimizer adam"
    text = network_text("1x8x8", args.layers, "cross_entropy", command.replace(" --optimizer adam", ""))
    text = text.replace('loss = "cross_entropy"', 'loss = "cross_entropy"\noptimizer = "adam"')
    spec = parse_network(tomllib.loads(text), "derive cnn", text=text, formats=("py",))
    print(f"$ {command_line(spec)}  (optimizer adam)")
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
    hyper = {} if args.lr is None else {"lr": args.lr}
    model.train(params, batch(X_train), one_hot(y_train), epochs=args.epochs, batch_size=args.batch_size, rng=rng,
                X_val=batch(X_test), Y_val=one_hot(y_test), **hyper)
    trained = time.perf_counter() - start
    accuracy = model.accuracy(params, batch(X_test), one_hot(y_test))
    print(f"test accuracy {accuracy:.4f} ({round(accuracy * len(y_test))}/{len(y_test)}) after {args.epochs} epochs; "
          f"training time {trained:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
