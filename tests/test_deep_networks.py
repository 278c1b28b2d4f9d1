"""Deep networks verify for real: a representative part of `benchmarks/bench_depth.py` (every depth to
128 with every catalog activation), the whole job as users run it.

The configurations that failed or checked nothing before: tanh at 64 layers (float32 compared per
parameter failed on layers whose gradients had vanished), 128 layers (a finite-difference error
"below 1e0"), silu at 32 (a layer so deep in the flat part of the activation that float64 rounded
its derivative to 0), gelu_tanh at 64 (an output at z = −100: every gradient 0). Each must pass every
check with the one stated tolerance, and its gradients must really span orders of magnitude.
"""

import pytest

from derive.model import make_spec
from derive.run import generate
from derive.verify import DERIVATIVE_TOLERANCE, decade_bound

CONFIGS = [(128, "tanh"), (64, "silu"), (64, "gelu_tanh"), (32, "sigmoid"), (64, "leaky_relu")]


@pytest.mark.parametrize("layers, act", CONFIGS, ids=[f"L{l}-{a}" for l, a in CONFIGS])
def test_deep_network_verifies_with_the_tolerance_of_a_shallow_one(layers, act):
    outcome = generate(make_spec(layers, act, formats="md,py", detail="full"))  # the full certificate
    failed = {c.name: c.figures for c in outcome.report.checks if c.ran and not c.passed}
    assert outcome.report.passed, failed
    figures = outcome.report.check("derivatives").figures
    assert figures["tolerance"] == decade_bound(DERIVATIVE_TOLERANCE) == "1e-9"
    assert float(figures["largest_error"]) <= 1e-11  # measured: at most 2e-12 up to depth 128
    assert figures["partials"] == sum(n * m + n for m, n in zip(figures["sizes"], figures["sizes"][1:]))
    assert float(figures["smallest_gradient"]) < 1e-3 * float(figures["largest_gradient"])  # vanishing, and checked
    workspace = outcome.report.check("workspace").figures
    assert float(workspace["float32_error"]) <= 1e-4 and workspace["exact"]
    document = outcome.files["derivation.md"].decode()
    start = document.index("## B. Verification")
    certificate = document[start:document.index("\n## ", start + 1)]  # appendix B alone (D answers the cost exercise)  # the lesson's cost section compares with finite differences
    assert "the same at every depth" in certificate and "finite difference" not in certificate
