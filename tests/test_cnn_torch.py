"""The window operations of the generated code (derive.convops: im2col, col2im, the kernel gradient,
the full correlation, window sums, max pooling) against PyTorch's autograd on random
configurations: stride 1–3, padding 0–2, dilation 1–2, kernels 1–5, 1–4 channels, non-square
inputs and kernels. Layouts: ours (C, H, W, m) with the samples last, PyTorch's (m, C, H, W)."""

from __future__ import annotations

import numpy as np
import pytest

from derive import convops
from conftest import torch_or_skip_module

torch = torch_or_skip_module()


def _configurations(count: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        kh, kw = (int(k) for k in rng.integers(1, 6, size=2))
        sh, sw = (int(s) for s in rng.integers(1, 4, size=2))
        ph, pw = (int(p) for p in rng.integers(0, 3, size=2))
        dh, dw = (int(d) for d in rng.integers(1, 3, size=2))
        C, F, m = (int(x) for x in rng.integers(1, 5, size=3))
        H, W = (int(x) for x in rng.integers(3, 12, size=2))
        if (H + 2 * ph - dh * (kh - 1) - 1) < 0 or (W + 2 * pw - dw * (kw - 1) - 1) < 0:
            continue  # the window does not fit: the tool refuses such a layer
        out.append(dict(kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), C=C, F=F, m=m, H=H, W=W))
    return out


def _tiling(kernel, stride, padding, H, W, dilation=(1, 1), C=2, F=3, m=3):
    return dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation, C=C, F=F, m=m, H=H, W=W)


# col2im's three ways (convops._fold): windows that overlap (accumulating adds), windows that do
# not (each part written once), and windows that tile the padded input exactly (nothing zeroed)
TILINGS = [_tiling((2, 2), (2, 2), (0, 0), 8, 6), _tiling((2, 2), (2, 2), (1, 1), 6, 8),
           _tiling((2, 3), (3, 3), (0, 1), 7, 8), _tiling((2, 2), (3, 3), (0, 0), 7, 9, dilation=(2, 1))]


def _fold_way(c) -> str:
    spans = [d * (k - 1) + 1 for k, d in zip(c["kernel"], c["dilation"])]
    if any(s < span for s, span in zip(c["stride"], spans)):
        return "overlapping"
    sizes = [(n + 2 * p - span) // s + 1 for n, p, span, s in zip((c["H"], c["W"]), c["padding"], spans, c["stride"])]
    tiled = all(d == 1 and s == k and s * o == n + 2 * p for k, s, d, o, n, p in
                zip(c["kernel"], c["stride"], c["dilation"], sizes, (c["H"], c["W"]), c["padding"]))
    return "tiling" if tiled else "disjoint"


CONV = _configurations(40, 0) + TILINGS


def _nchw(x):  # ours (C, H, W, m) → PyTorch's (m, C, H, W)
    return torch.tensor(np.moveaxis(x, -1, 0), dtype=torch.float64, requires_grad=True)


def _ours(t):  # PyTorch's (m, C, H, W) → ours
    return np.moveaxis(t.detach().numpy(), 0, -1)


@pytest.mark.parametrize("cfg", CONV, ids=[f"k{c['kernel']}s{c['stride']}p{c['padding']}d{c['dilation']}" for c in CONV])
def test_convolution_and_its_gradients_match_torch(cfg):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((cfg["C"], cfg["H"], cfg["W"], cfg["m"]))
    K = rng.standard_normal((cfg["F"], cfg["C"], *cfg["kernel"]))
    geometry = (cfg["kernel"], cfg["stride"], cfg["padding"], cfg["dilation"])
    Z = convops.conv(X, K, *geometry)
    x, k = _nchw(X), torch.tensor(K, requires_grad=True)
    z = torch.nn.functional.conv2d(x, k, stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"])
    np.testing.assert_allclose(Z, _ours(z), rtol=1e-12, atol=1e-12)
    D = rng.standard_normal(Z.shape)
    (z * torch.tensor(np.moveaxis(D, -1, 0))).sum().backward()
    spatial = (cfg["H"], cfg["W"])
    np.testing.assert_allclose(convops.conv_input_grad(D, K, *geometry, spatial), _ours(x.grad), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(convops.full_correlation(D, K, *geometry, spatial), _ours(x.grad), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(convops.conv_kernel_grad(D, X, *geometry), k.grad.numpy(), rtol=1e-12, atol=1e-12)


# overlapping, padded windows (stride < kernel) named outright: k3 s1 p1, k3 s2 p1, k2 s1 p1 (dilated
# for max pooling), the windows of the network whose proof failed in issue 10
OVERLAPPING = [_tiling((3, 3), (1, 1), (1, 1), 5, 5), _tiling((3, 3), (2, 2), (1, 1), 7, 6),
               _tiling((2, 2), (1, 1), (1, 1), 6, 7)]
# windows one entry wide, 1×2 and 2×1 (a network file may ask for them; a 1×1 max pool it may not):
# tiling, overlapping and padded, strided across the narrow axis, dilated along the long one
NARROW = [_tiling((1, 2), (1, 2), (0, 0), 5, 6), _tiling((2, 1), (2, 1), (0, 0), 6, 5),
          _tiling((1, 2), (1, 1), (0, 1), 4, 7), _tiling((2, 1), (1, 1), (1, 0), 6, 3),
          _tiling((1, 2), (2, 1), (0, 1), 7, 6, dilation=(1, 2)), _tiling((2, 1), (1, 3), (1, 0), 5, 8, dilation=(2, 1))]
POOL = [c for c in _configurations(80, 2) if all(2 * p <= k for p, k in zip(c["padding"], c["kernel"]))][:32] + \
    [c for c in TILINGS if c["dilation"] == (1, 1)] + OVERLAPPING + [c for c in NARROW if c["dilation"] == (1, 1)]


@pytest.mark.parametrize("cfg", POOL, ids=[f"k{c['kernel']}s{c['stride']}p{c['padding']}" for c in POOL])
def test_average_pooling_matches_torch(cfg):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((cfg["C"], cfg["H"], cfg["W"], cfg["m"]))
    geometry = (cfg["kernel"], cfg["stride"], cfg["padding"], (1, 1))
    window = cfg["kernel"][0] * cfg["kernel"][1]
    A = convops.window_sum(X, *geometry) / window  # the derivation's (1/(kh·kw)) Σ over the window
    x = _nchw(X)
    a = torch.nn.functional.avg_pool2d(x, cfg["kernel"], stride=cfg["stride"], padding=cfg["padding"])
    np.testing.assert_allclose(A, _ours(a), rtol=1e-12, atol=1e-12)
    D = rng.standard_normal(A.shape)
    (a * torch.tensor(np.moveaxis(D, -1, 0))).sum().backward()
    G = convops.window_spread(D, *geometry, (cfg["H"], cfg["W"])) / window
    np.testing.assert_allclose(G, _ours(x.grad), rtol=1e-12, atol=1e-12)


def _max_padding(c) -> dict:
    """The configuration with its padding cut to what max pooling takes (PyTorch: at most half the
    kernel), kept only if every window still holds an entry of the input."""
    padding = tuple(min(p, k // 2) for p, k in zip(c["padding"], c["kernel"]))
    c = dict(c, padding=padding)
    for n, k, s, p, d in zip((c["H"], c["W"]), c["kernel"], c["stride"], padding, c["dilation"]):
        o = (n + 2 * p - d * (k - 1) - 1) // s + 1
        if o < 1 or any(not any(0 <= s * i + d * q - p < n for q in range(k)) for i in range(o)):
            return None
    return c


MAX = [m for m in (_max_padding(c) for c in _configurations(160, 4)) if m is not None][:40] + \
    [dict(c, padding=(0, 0)) for c in TILINGS] + OVERLAPPING[:2] + [dict(OVERLAPPING[2], dilation=(2, 2))] + NARROW


@pytest.mark.parametrize("cfg", MAX, ids=[f"k{c['kernel']}s{c['stride']}p{c['padding']}d{c['dilation']}" for c in MAX])
def test_max_pooling_matches_torch_including_ties(cfg):
    """Inputs drawn from a few values, so that windows hold equal maxima: PyTorch gives the error to
    the first of them in row-major order, and so does the derived routing. Padding is PyTorch's −∞:
    the inputs are mostly negative, so a padded position would win if it counted as 0."""
    rng = np.random.default_rng(5)
    kernel, stride, padding, dilation = cfg["kernel"], cfg["stride"], cfg["padding"], cfg["dilation"]
    X = rng.integers(-4, 1, size=(cfg["C"], cfg["H"], cfg["W"], cfg["m"])).astype(float)
    geometry = (kernel, stride, padding, dilation)
    A = convops.max_pool(X, *geometry)
    x = _nchw(X)
    a = torch.nn.functional.max_pool2d(x, kernel, stride=stride, padding=padding, dilation=dilation)
    np.testing.assert_array_equal(A, _ours(a))
    D = rng.standard_normal(A.shape)
    (a * torch.tensor(np.moveaxis(D, -1, 0))).sum().backward()
    np.testing.assert_allclose(convops.max_pool_grad(D, X, *geometry, (cfg["H"], cfg["W"])), _ours(x.grad),
                               rtol=1e-12, atol=1e-12)


def test_the_configurations_cover_the_ranges_asked_for():
    values = lambda key: {v for c in CONV for v in c[key]}  # noqa: E731
    assert values("stride") == {1, 2, 3} and values("padding") == {0, 1, 2} and values("dilation") == {1, 2}
    assert values("kernel") == {1, 2, 3, 4, 5}
    assert {c["C"] for c in CONV} == {1, 2, 3, 4}
    assert any(c["H"] != c["W"] for c in CONV) and any(c["kernel"][0] != c["kernel"][1] for c in CONV)
    assert len(CONV) >= 30 and len(POOL) >= 30 and len(MAX) >= 30
    assert {d for c in MAX for d in c["dilation"]} == {1, 2}
    assert {p for c in MAX for p in c["padding"]} == {0, 1, 2} and len(MAX) >= 40
    for configurations in (CONV, POOL, MAX):
        assert {_fold_way(c) for c in configurations} == {"overlapping", "disjoint", "tiling"}
    for configurations in (POOL, MAX):  # the narrow windows, each way round, tiling and overlapping
        narrow = [c for c in configurations if sorted(c["kernel"]) == [1, 2]]
        assert {c["kernel"] for c in narrow} == {(1, 2), (2, 1)}
        assert {_fold_way(c) for c in narrow} >= {"overlapping", "tiling"}
        assert any(p > 0 for c in narrow for p in c["padding"])


def test_float32_stays_float32():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    K = rng.standard_normal((3, 2, 3, 2)).astype(np.float32)
    geometry = ((3, 2), (2, 1), (1, 0), (1, 2))
    Z = convops.conv(X, K, *geometry)
    D = np.ones_like(Z)
    assert Z.dtype == np.float32
    assert convops.conv_input_grad(D, K, *geometry, (7, 6)).dtype == np.float32
    assert convops.conv_kernel_grad(D, X, *geometry).dtype == np.float32
    assert convops.window_sum(X, (2, 2), (2, 2), (0, 0), (1, 1)).dtype == np.float32
    assert convops.max_pool_grad(np.ones((2, 3, 3, 3), np.float32), X, (2, 2), (2, 2), (0, 0), (1, 1), (7, 6)).dtype == np.float32
