"""Train a tiny transformer that derive generated to reverse a sequence of digits.

    python examples/train_reverse.py     # about 20 s; prints one line per epoch and the test accuracy

Each sample is a sequence of T = 4 digits; the target is the same digits in reverse order. A token
is the one-hot code of its digit, so the network input is [10, T]. The network: a linear embedding
to 16 features plus a learned positional embedding (attention alone does not know the order of the
tokens), a pre-LayerNorm transformer block (2 heads, a gelu MLP of 32), and a linear
read-out of 10 scores per token (the same for every token, so information moves between positions
only through the attention), flattened to T·10 outputs (unit T·d + j: "token j of the answer is
digit d") and fitted to the one-hot answer with the mean squared error, trained with Adam. derive derives and verifies it and writes model.py; this
script only builds the data, holds out a fifth of all 10⁴ sequences for testing, and calls the
generated `init_params`, `train` and `forward`. Nothing in the training code is written by hand.
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

from derive.netfile import parse_network
from derive.run import generate_and_write

T, DIGITS = 4, 10


def network(width: int, heads: int, hidden: int, optimizer: str) -> dict:
    return {"input": [DIGITS, T], "loss": "mse", "optimizer": optimizer, "layers": [
        {"kind": "linear", "units": width},
        {"kind": "position", "name": "e"},
        {"kind": "layernorm"},
        {"kind": "attention", "heads": heads},
        {"kind": "add", "from": "e", "name": "h"},
        {"kind": "layernorm"},
        {"kind": "linear", "units": hidden, "activation": "gelu"},
        {"kind": "linear", "units": width},
        {"kind": "add", "from": "h"},
        {"kind": "linear", "units": DIGITS},
        {"kind": "flatten"}]}


def encode(sequences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """X (10, T, m): the digit of each token, one-hot; Y (10·T, m): the reversed digits, one-hot
    per token, in the flatten's order (digit-major: unit T·d + j)."""
    m = len(sequences)
    X = np.zeros((DIGITS, T, m))
    for j in range(T):
        X[sequences[:, j], j, np.arange(m)] = 1.0
    Y = np.zeros((T * DIGITS, m))
    for j in range(T):
        Y[T * sequences[:, T - 1 - j] + j, np.arange(m)] = 1.0
    return X, Y


def predicted(module, params, X) -> np.ndarray:
    """The digit with the largest output per token of the answer: (m, T)."""
    cache = module.forward(params, X)
    out = cache[max((k for k in cache if k.startswith("A")), key=lambda k: int(k[1:]))]
    return out.reshape(DIGITS, T, -1).argmax(axis=0).T


def load_model(path: Path):
    spec = importlib.util.spec_from_file_location("reverse_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=None, help="use only this many sequences (default: all 10^4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="where derive writes model.py (default: a temporary folder)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    every = np.array(np.unravel_index(np.arange(DIGITS ** T), (DIGITS,) * T)).T  # all 10^4 sequences
    every = every[rng.permutation(len(every))][: args.samples]
    cut = len(every) * 4 // 5
    X_train, Y_train = encode(every[:cut])
    X_test, Y_test = encode(every[cut:])

    spec = parse_network(network(16, 2, 32, "adam:lr=0.01"), "train_reverse.toml", text="")
    spec = replace(spec, formats=("py",))
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.out or Path(scratch) / "reverse"
        start = time.perf_counter()
        outcome, _ = generate_and_write(spec, folder)
        verdict = "passed" if outcome.report.passed else "FAILED"
        print(f"derived model.py in {time.perf_counter() - start:.1f} s (verification {verdict})")
        if not outcome.report.passed:
            return 1
        module = load_model(folder / "model.py")
    params = module.init_params(module.SIZES, rng)
    start = time.perf_counter()
    module.train(params, X_train, Y_train, epochs=args.epochs, batch_size=args.batch_size, rng=rng,
                 X_val=X_test, Y_val=Y_test)
    elapsed = time.perf_counter() - start
    guess = predicted(module, params, X_test)
    truth = every[cut:, ::-1]
    tokens = float(np.mean(guess == truth))
    whole = float(np.mean(np.all(guess == truth, axis=1)))
    print(f"trained {args.epochs} epochs on {cut} sequences in {elapsed:.1f} s; on {len(truth)} held-out sequences: "
          f"{tokens:.1%} of the digits and {whole:.1%} of the whole sequences reversed correctly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
