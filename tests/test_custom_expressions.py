"""User-written activations and losses, derived end to end and verified like catalog entries.

Each expression goes through the whole job (parse, derive, generate code, verify, render): the
δ-form must match direct `sympy.diff` of the expanded loss, the minibatch formulas the per-sample
ones, and the generated code complex-step derivatives of the network; the code must stay finite at |z| = 1000
(or the overflow must be the function's own). Then the same for every catalog entry.
"""

import pytest
import sympy as sp

from derive.catalog import ACTIVATIONS, LOSSES
from derive.model import make_spec
from derive.notation import Q
from derive.run import generate

# every test here parses user text under CPU-time deadlines: run under load too (tests/conftest.py)
pytestmark = pytest.mark.time_limited

ACTIVATION_EXPRESSIONS = [
    "z*tanh(log(1+exp(z)))",  # mish, typed
    "z/(1+abs(z))",  # softsign, non-smooth formula with a smooth derivative
    "log(1+exp(z))",  # softplus: g′ = 1 − e^(−a) is found
    "z**3/3+z",
    "atan(z)",  # g′ = cos²(a) is found
    "sin(z)+z",
    "z*sigmoid(z)",  # silu
    "exp(-z**2)",
    "erf(z)",  # NumPy has no erf: the generated code's helper
    "max(0.1*z, z)",  # a kink, H(0) = 0
    "z*Heaviside(z)",  # relu through a step: the impulse z δ(z) is dropped
    "sqrt(1+z**2)-1",
    "1/cosh(z)",  # sech: stable form needed at |z| = 1000
    "softplus(z) - log(2)",
    "tanh(z)/2 + z/2",
]

LOSS_EXPRESSIONS = [  # (loss, output activation)
    ("(a-y)**4/4", None),
    ("abs(a-y)", None),
    ("log(cosh(a-y))", None),
    ("(a-y)**2/(1+(a-y)**2)", None),
    ("-y*log(a)-(1-y)*log(1-a)", "sigmoid"),
    ("sqrt(1+(a-y)**2)-1", None),
    ("max(a-y, 0)**2", None),
    ("y*log(y/a)", "softmax"),  # needs y > 0: its targets are taken in (0, 1)
]


def verified(spec, stable=True):
    """Every check passed; with `stable`, the stability check also ran (no overflow at |z| = 1000)."""
    outcome = generate(spec)
    report = outcome.report
    failed = {c.name: c.figures for c in report.checks if c.ran and not c.passed}
    assert report.passed, failed
    symbolic = report.check("symbolic")
    assert symbolic.ran and symbolic.figures["partials"] == spec.layers * 6
    assert report.check("derivatives").figures["partials"] > 0
    assert report.check("stability").ran or not stable, report.check("stability").figures
    return outcome


@pytest.mark.parametrize("expression", ACTIVATION_EXPRESSIONS)
def test_user_activation_is_derived_and_verified(expression):
    outcome = verified(make_spec(2, expression, None, "mse"))
    md = outcome.files["derivation.md"].decode()
    assert f"`{expression}`" in md  # the document names the user's function …
    d = outcome.derivation.activation_derivatives[0]
    assert d.computed == sp.diff(d.activation.expr, sp.Symbol("z", real=True))  # … and SymPy's derivative
    assert "g'(z)" in md or r"\frac{d}{d z} g{\left(z \right)}" in md


@pytest.mark.parametrize("loss, output", LOSS_EXPRESSIONS)
def test_user_loss_is_derived_and_verified(loss, output):
    outcome = verified(make_spec(2, "tanh", output, loss))
    assert outcome.derivation.model.loss.is_custom
    assert f"`{loss}`" in outcome.files["derivation.md"].decode()


def test_readable_forms_of_user_functions():
    from derive.notation import A

    softplus = verified(make_spec(1, "log(1+exp(z))")).derivation.activation_derivatives[0]
    assert sp.expand(softplus.in_terms_of_output - (1 - sp.exp(-A))) == 0
    atan = verified(make_spec(1, "atan(z)")).derivation.activation_derivatives[0]
    assert sp.simplify(atan.in_terms_of_output - sp.cos(A) ** 2) == 0


def test_a_loss_undefined_for_real_targets_gets_unit_targets():
    assert verified(make_spec(1, "tanh", "softmax", "y*log(y/a)")).derivation.model.loss.target == "unit"
    assert verified(make_spec(1, "tanh", None, "(a-y)**4/4")).derivation.model.loss.target == "real"


def test_mixed_user_and_catalog_activations_per_layer():
    outcome = verified(make_spec(3, "z*sigmoid(z),atan(z)", "identity", "huber"))
    md = outcome.files["derivation.md"].decode()
    assert "**Layer 2.**" in md and "How the loss changes with the activations of layer 2:" in md
    assert outcome.derivation.general is None


def test_function_that_overflows_by_itself_is_reported_not_failed():
    """exp(z) at z = 1000 is beyond float64: the stability check says so instead of failing."""
    outcome = verified(make_spec(1, "exp(z)", detail="full"), stable=False)  # the lesson keeps the audit short
    stability = outcome.report.check("stability")
    assert not stability.ran and int(stability.figures["largest_exact"][2:]) > 308
    assert "beyond the float64 range" in outcome.files["derivation.md"].decode()


# --------------------------------------------------------------------------------------------------
# every catalog entry, end to end


HIDDEN = [name for name, a in ACTIVATIONS.items() if not a.output_only and name not in ("identity", "sigmoid", "tanh", "relu")]


@pytest.mark.parametrize("activation", HIDDEN + ["leaky_relu:0.2", "elu:0.5"])
def test_every_catalog_activation_end_to_end(activation):
    verified(make_spec(2, activation, None, "mse"))


@pytest.mark.parametrize("loss", [name for name in LOSSES if name not in ("mse", "ce", "bce")] + ["huber:0.25"])
def test_every_catalog_loss_end_to_end(loss):
    verified(make_spec(2, "tanh", None, loss))


def test_log_softmax_with_nll_gives_exp_a_minus_y():
    from derive.notation import LayerRef, Q, index

    d = verified(make_spec(2, "relu", None, "nll")).derivation
    q = index("q", LayerRef(2))
    assert sp.expand(d.sample.results[Q("delta", 2)].rhs - (sp.exp(Q("a", 2).base[q]) - Q("y").base[q])) == 0


def test_values_beyond_float64_at_the_test_point_lower_the_bound_and_say_so():
    """exp(300 z) is beyond float64 at z = 3: the derivative check lowers the bound on the
    pre-activations until the values are representable, and the document says so."""
    outcome = verified(make_spec(2, "exp(300*z)", detail="full"), stable=False)  # the full certificate
    assert outcome.report.check("derivatives").figures["bound"] < 3
    assert "so the bound was lowered to" in outcome.files["derivation.md"].decode()


def test_a_steep_function_composed_through_layers_is_checked_within_the_bound():
    """exp(exp(z)) feeding a second layer reaches 1e9 and more: the second layer's weights are scaled
    down to keep its pre-activations within the bound, so nothing overflows and every gradient, from
    the smallest to the largest, is compared at its own scale. Shifted to g(0) = 0, so that the start
    is the linearised rule's: with g(0) = e the derived start divides the weights by E[g(z)²] (about
    10⁵), and the largest gradient stays near 10⁵."""
    figures = verified(make_spec(2, "exp(exp(z)) - exp(1)"), stable=False).report.check("derivatives").figures
    assert figures["bound"] == 3 and float(figures["largest_gradient"]) > 1e15


def test_ill_conditioned_point_is_compared_with_more_working_digits(monkeypatch):
    """cosh(z)**64 loses digits at the symbolic point when evaluated at a fixed precision (the
    compiled mpmath path, forced here; SymPy's evalf raises its own precision): both sides agree
    once they are redone with more working digits."""
    import derive.verify_symbolic

    monkeypatch.setattr(derive.verify_symbolic, "SMALL_COST_OPS", 0)
    outcome = verified(make_spec(2, "cosh(z)**64"), stable=False)
    symbolic = outcome.report.check("symbolic").figures
    assert symbolic["working_digits"] > symbolic["digits"]


def test_network_too_large_to_evaluate_exactly_fails_verification_with_the_reason(tmp_path):
    from derive.errors import VerificationFailed
    from derive.run import generate_and_write

    with pytest.raises(VerificationFailed, match="could not be evaluated exactly"):
        generate_and_write(make_spec(3, "cosh(z)**64"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_function_too_large_to_evaluate_is_refused_quickly(monkeypatch):
    """The evaluation deadline (CPU time) fires: the process spends about that much on it, however
    busy the machine."""
    import time
    from contextlib import contextmanager

    import derive.catalog.custom as custom
    from derive.errors import DeriveError
    from derive.expr import TimeLimitExceeded

    fired, limit = [], custom.time_limit

    @contextmanager
    def watched(seconds):
        try:
            with limit(seconds):
                yield
        except TimeLimitExceeded:
            fired.append(seconds)
            raise

    monkeypatch.setattr(custom, "time_limit", watched)
    start = time.process_time()
    with pytest.raises(DeriveError, match="cannot be evaluated on sample points"):
        make_spec(2, "exp(exp(exp(exp(z))))")
    assert fired == [custom.EVALUATION_SECONDS]
    assert time.process_time() - start < 2 * custom.EVALUATION_SECONDS + 0.5  # + parsing, itself limited to 0.5 s


def test_large_coefficients_skip_the_inverse_search_and_overflowing_fits():
    """exp(300 z): the polynomial fit of g′ in powers of a overflowed (a traceback), and SymPy's
    `solve` of a = exp(300 z) checks 300 complex roots (minutes). Both are skipped, quickly, and the
    document keeps g′ in terms of z."""
    import time

    from derive.derivation import derive
    from derive.model import build_model
    from derive.notation import Z

    start = time.process_time()
    d = derive(build_model(make_spec(1, "exp(300*z)"))).activation_derivatives[0]
    assert d.computed == 300 * sp.exp(300 * Z) and d.in_terms_of_output is None
    assert time.process_time() - start < 30  # CPU seconds: the root checks took minutes
