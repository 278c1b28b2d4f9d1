"""The generated code's erf (NumPy has none): vectorised, and within 2 units in the last place of
Python's math.erf (the C library's) over a dense grid, the ends of every expansion interval, tiny and
huge arguments; NaN, ±inf, −0 and the shape and dtype of what it returns; a gelu network's model.py
uses it and passes every check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from derive.codegen import ERF_INTERVALS, ERF_STEP, erf_helper
from derive.model import make_spec
from derive.run import generate


@pytest.fixture(scope="module")
def erf():
    namespace = {}
    exec("import numpy as np\n" + "\n".join(erf_helper()), namespace)
    return namespace["_erf"]


def ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Units in the last place between two float64 arrays of the same signs (bit patterns are ordered)."""
    assert np.array_equal(np.signbit(got), np.signbit(want))
    return np.abs(got.view(np.int64) - want.view(np.int64))


def points() -> np.ndarray:
    ends = np.arange(ERF_INTERVALS + 1) / ERF_STEP  # where the centre changes
    around = np.concatenate([ends, np.nextafter(ends, 0), np.nextafter(ends, 7)])
    tiny = np.logspace(-310, 0, 4001)
    grid = np.linspace(-7, 7, 1_400_001)
    return np.concatenate([grid, around, -around, tiny, -tiny, [1e308, -1e308, 5e-324]])


def test_within_2_ulp_of_math_erf(erf):
    x = points()
    want = np.array([math.erf(v) for v in x])
    assert ulps(erf(x), want).max() <= 2


def test_special_values_shapes_and_dtypes(erf):
    got = erf(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0]))
    assert np.isnan(got[0]) and list(got[1:3]) == [1.0, -1.0]
    assert got[3] == 0 and not np.signbit(got[3]) and np.signbit(got[4])
    assert erf(0.5).shape == () and float(erf(0.5)) == pytest.approx(math.erf(0.5), rel=1e-15)
    assert erf(np.zeros((2, 3, 4), np.float32)).shape == (2, 3, 4)
    assert erf(np.zeros(3, np.float32)).dtype == np.float32 and erf(np.zeros(3, np.int64)).dtype == np.float64


def test_float32_computes_in_float32_within_float32_rounding(erf):
    x = np.linspace(-7, 7, 200_001).astype(np.float32)
    want = np.array([math.erf(v) for v in x.astype(np.float64)])
    got = erf(x)
    assert got.dtype == np.float32
    assert np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-30)) < 4 * np.finfo(np.float32).eps


def test_writes_into_out_even_over_its_argument(erf):
    x = np.linspace(-3, 3, 1001)
    want = erf(x)
    out = np.empty_like(x)
    assert erf(x, out=out) is out and np.array_equal(out, want)
    assert erf(x, out=x) is x and np.array_equal(x, want)


def test_a_gelu_network_uses_it_and_passes_every_check():
    out = generate(make_spec(2, "gelu", formats="py"))
    source = out.files["model.py"].decode()
    assert out.report.passed
    assert "_erf(" in source and "vectorize" not in source


def test_a_recurrent_network_with_a_gelu_head_runs_its_workspace(tmp_path):
    # the recurrent Workspace has no work-array dicts: its _erf calls allocate their own (no ws.erf_work)
    from click.testing import CliRunner

    from derive.cli import main

    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["rnn", "--out-act", "gelu", "--format", "py", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "verification passed" in result.output
    source = (out / "model.py").read_text() + (out / "model_inplace.py").read_text()
    assert "_erf(" in source and "erf_work" not in source
