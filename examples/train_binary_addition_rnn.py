"""Train the generated code of `derive rnn` to add two binary numbers digit by digit.

    python examples/train_binary_addition_rnn.py

The network is `derive rnn --input 2 --hidden 16 --output all --units 1 --loss bce --steps 8`: an
Elman cell reads one bit of each number per step, least significant first, and a sigmoid head
predicts that bit of the sum; the carry has to be kept in the state. Sums of 7-bit numbers fit in 8
bits. The 16 384 pairs (a, b) are split once: 80 % to draw training minibatches from, 20 % held out.
Training is plain gradient descent (`sgd_step`) with the gradient norm clipped at 5
(`clip_gradients`), minibatches of 32. The result is the share of held-out pairs whose 8 sum bits
are all right.
"""

from __future__ import annotations

import sys
import time

import numpy as np

BITS = 8


def derived_model():
    """model.py as `derive rnn` writes it (derived and verified in this process), loaded as a module."""
    from derive.rnn import make_rnn_spec
    from derive.rnn_run import generate
    from derive.rnn_verify import load_module

    outcome = generate(make_rnn_spec(inputs=2, hidden=16, output="all", units=1, loss="bce", steps=BITS, formats="py"))
    assert outcome.passed, [c.figures for c in outcome.checks]
    return load_module(outcome.files["model.py"].decode())


def sequences(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """X (T, 2, m): the bits of a and b, least significant first; Y (T, 1, m): those of a + b."""
    def bits(v):
        return ((v[None, :] >> np.arange(BITS)[:, None]) & 1).astype(float)

    return np.stack([bits(a), bits(b)], axis=1), bits(a + b)[:, None, :]


def run(iterations: int = 3000, seed: int = 0, verbose: bool = True) -> float:
    model = derived_model()
    rng = np.random.default_rng(seed)
    pairs = np.array([(a, b) for a in range(2 ** (BITS - 1)) for b in range(2 ** (BITS - 1))])
    order = rng.permutation(len(pairs))
    cut = int(0.8 * len(pairs))
    train, test = pairs[order[:cut]], pairs[order[cut:]]
    params = model.init_params(rng, inputs=2, hidden=16, units=1)
    start = time.perf_counter()
    for it in range(iterations):
        chosen = train[rng.integers(0, len(train), 32)]
        X, Y = sequences(chosen[:, 0], chosen[:, 1])
        grads = model.gradients(params, X, Y)
        model.clip_gradients(grads, 5.0)
        model.sgd_step(params, grads, 0.5)
        if verbose and it % 500 == 0:
            print(f"step {it:5d}: loss {model.loss(params, X, Y):.4f}")
    X, Y = sequences(test[:, 0], test[:, 1])
    predicted = model.forward(params, X)["A2"] > 0.5
    accuracy = float(np.mean(np.all(predicted == (Y > 0.5), axis=(0, 1))))
    if verbose:
        print(f"{accuracy:.1%} of the {len(test)} held-out sums entirely right after {iterations} steps "
              f"({time.perf_counter() - start:.1f} s of training)")
    return accuracy


if __name__ == "__main__":
    sys.exit(0 if run() >= 0.99 else 1)
