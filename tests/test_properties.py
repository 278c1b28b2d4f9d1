from derive.run import model_source
"""Property-based tests: random well-formed expressions and random network shapes, derived and checked.

Hypothesis writes activations in z and losses in a and y from a small grammar (the functions users
type most), and random architectures (depth, widths, a different activation per layer, penalties).
For each, the derived gradients must equal direct `sympy.diff` of the expanded loss, the minibatch
formulas the mean of the per-sample ones, and the generated code complex-step derivatives of the network.
Example counts are kept small (the whole suite must stay fast); deadline=None because one example
runs the whole engine.
"""

import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from derive.catalog import ACTIVATIONS
from derive.derivation import derive
from derive.errors import DeriveError
from derive.model import build_model, make_spec
from derive.verify import derivative_check, load_module, minibatch_check, symbolic_check

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

CONSTANTS = st.sampled_from(["0.5", "2", "1.5", "3", "0.25"])
UNARY = st.sampled_from(["tanh", "atan", "sin", "sigmoid", "softplus", "cos"])


def _expressions(variable: str):
    leaves = st.one_of(st.just(variable), st.just(variable), st.tuples(CONSTANTS, st.just(variable)).map("*".join),
                       CONSTANTS)

    def extend(children):
        return st.one_of(
            st.tuples(UNARY, children).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(children, st.sampled_from(["+", "-", "*"]), children).map(lambda t: f"({t[0]}{t[1]}{t[2]})"),
        )

    return st.recursive(leaves, extend, max_leaves=6)


# compositions of the shape users write (swish-, mish-, gelu-like): f(g(c z)) ± c' h(z) z
COMPOSED = st.builds(lambda f, g, c, op, d, h: f"{f}({g}({c}*z)) {op} {d}*{h}(z)*z",
                     UNARY, UNARY, CONSTANTS, st.sampled_from(["+", "-"]), CONSTANTS, UNARY)
ACTIVATION_TEXT = st.one_of(_expressions("z").map(lambda text: text if "z" in text else f"{text}+z"), COMPOSED)
LOSS_TERMS = st.sampled_from(["(a-y)**2", "(a-y)**4", "log(cosh(a-y))", "sqrt(1+(a-y)**2)", "tanh(a)*y",
                              "a**2", "sin(a-y)", "atan(a-y)**2"])
LOSS_TEXT = st.lists(st.tuples(CONSTANTS, LOSS_TERMS), min_size=1, max_size=3, unique_by=lambda t: t[1]).map(
    lambda terms: " + ".join(f"{c}*{t}" for c, t in terms))


def checked(spec):
    d = derive(build_model(spec))
    source = model_source(d, title="property", command="property")
    checks = [symbolic_check(d), minibatch_check(d), derivative_check(d.model, load_module(source))]
    failed = [(c.name, c.figures) for c in checks if c.ran and not c.passed]
    assert not failed, (spec, failed)
    assert checks[0].ran or spec.layers > 4
    return d


@settings(max_examples=20, **SETTINGS)
@given(activation=ACTIVATION_TEXT, loss=LOSS_TEXT, layers=st.integers(1, 2))
def test_random_user_expressions_are_derived_correctly(activation, loss, layers):
    try:
        spec = make_spec(layers, activation, None, loss)
    except DeriveError as error:  # e.g. z - z: refused, correctly, for not depending on z
        assert "does not depend on z" in str(error)
        assume(False)
    d = checked(spec)
    g = d.activation_derivatives[0]
    assert g.computed == sp.diff(g.activation.expr, sp.Symbol("z", real=True))


CATALOG = [name for name, a in ACTIVATIONS.items() if not a.output_only and name not in ("gelu", "gelu_tanh")]


@settings(max_examples=15, **SETTINGS)
@given(
    data=st.data(),
    layers=st.integers(1, 3),
    penalty=st.sampled_from([{}, {"l2": "0.05"}, {"l1": "0.02"}, {"l2": "0.1", "l1": "0.01", "penalise_bias": True}]),
    loss=st.sampled_from(["mse", "ce", "bce", "mae", "huber:0.5", "nll", "kl", "(a-y)**4/4"]),
)
def test_random_architectures_are_derived_correctly(data, layers, penalty, loss):
    sizes = data.draw(st.lists(st.integers(1, 4), min_size=layers + 1, max_size=layers + 1))
    hidden = data.draw(st.lists(st.sampled_from(CATALOG + ["z*sigmoid(z)", "atan(z)"]), min_size=max(layers - 1, 1),
                                max_size=max(layers - 1, 1)))
    if loss in ("ce", "nll", "kl"):
        sizes[-1] = max(sizes[-1], 2)  # a softmax needs two outputs
    act = ",".join(hidden) if layers > 1 else hidden[0]
    checked(make_spec(layers, act, None, loss, ",".join(map(str, sizes)), **penalty))
