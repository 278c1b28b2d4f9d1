"""The three forms of a convolution's input error (derive.convproof): the derived scatter form, the
full correlation of the stride-dilated error with the rotated kernel, and the im2col/col2im form,
proved equal entry by entry; and the proof fails for the mistakes the documents warn about."""

from __future__ import annotations

import pytest
import sympy as sp

from derive.convproof import _compare_index_forms, conv_nodes, full_correlation_form, prove
from derive.model import build_model
from derive.netfile import parse_network
from derive.notation import Q
from derive.windowsizes import consistent_sizes

CASES = [
    dict(kernel=3, stride=1, padding=0, dilation=1),
    dict(kernel=3, stride=2, padding=1, dilation=1),
    dict(kernel=[3, 2], stride=[3, 2], padding=[2, 0], dilation=[2, 1]),
    dict(kernel=2, stride=2, padding=1, dilation=2),
    dict(kernel=[1, 3], stride=1, padding=[0, 1], dilation=[1, 2]),
]


def _network(case, channels=2):
    return build_model(parse_network({"input": [2, 7, 6], "loss": "mse", "layers": [
        {"kind": "conv2d", "channels": channels, **case, "activation": "tanh"},
        {"kind": "flatten"}, {"kind": "dense", "units": 2, "activation": "identity"}]}, "forms.toml")).network


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_three_forms_are_proved_equal(case):
    network = _network(case)
    (node,) = conv_nodes(network)
    forms = prove(node, network)
    assert forms.full_proved and forms.im2col_proved and forms.entries > 0
    assert "Col2imConv" in str(forms.im2col)
    if max(node.kind.dilation) > 1:  # the offset (u + P − s·i)/d must be whole: derived as a bracket
        assert forms.scatter.has(sp.Mod)


def test_the_proof_fails_without_the_rotation_or_the_dilation():
    """The mistakes of the 'what goes wrong' notes: an unrotated kernel, an error not spread out by
    the stride. Each is caught entry by entry."""
    from derive.indexing import assume_sizes
    from derive.windowsizes import network_sizes

    network = _network(dict(kernel=3, stride=2, padding=1, dilation=1))
    (node,) = conv_nodes(network)
    forms = prove(node, network)
    K = Q("K", node.layer).base
    full = full_correlation_form(node)
    unrotated = full.replace(lambda e: isinstance(e, sp.Indexed) and e.base == K,
                             lambda e: K[(e.indices[0], e.indices[1], 2 - e.indices[2], 2 - e.indices[3])])
    undilated = full.replace(lambda e: isinstance(e, sp.Mod), lambda e: sp.S.Zero)  # every position reached
    env = consistent_sizes(network, {}, 2)
    with assume_sizes(network.size_facts), network_sizes(network):
        assert _compare_index_forms(forms.scatter, full, forms.free, node, env, 0)[0]
        assert not _compare_index_forms(forms.scatter, unrotated, forms.free, node, env, 0)[0]
        assert not _compare_index_forms(forms.scatter, undilated, forms.free, node, env, 0)[0]


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_the_sizes_of_the_proof_catch_the_mistakes(case):
    """`prove` compares at the node's own small sizes (outputs of 2, 3 and k + 1 positions per axis,
    every leftover of a stride, unequal channel counts): an unrotated kernel, an error not spread out
    by the stride and swapped channels each fail there."""
    from derive.convproof import proof_sizes
    from derive.indexing import assume_sizes
    from derive.windowsizes import network_sizes

    network = _network(case)
    (node,) = conv_nodes(network)
    forms = prove(node, network)
    kh, kw = node.kind.kernel
    K = Q("K", node.layer).base
    full = full_correlation_form(node)
    wrong = {
        "unrotated": full.replace(lambda e: isinstance(e, sp.Indexed) and e.base == K,
                                  lambda e: K[(e.indices[0], e.indices[1], kh - 1 - e.indices[2], kw - 1 - e.indices[3])]),
        "channels swapped": full.replace(lambda e: isinstance(e, sp.Indexed) and e.base == K,
                                         lambda e: K[(e.indices[1], e.indices[0], *e.indices[2:])]),
    }
    if max(node.kind.stride) > 1:
        wrong["undilated"] = full.replace(lambda e: isinstance(e, sp.Mod), lambda e: sp.S.Zero)
    envs = proof_sizes(node, network)
    assert len(envs) >= 3 and all(env[node.in_axes[0][0].size] != env[node.out_axes[0].size] for env in envs)
    with assume_sizes(network.size_facts), network_sizes(network):
        for n, env in enumerate(envs):
            assert _compare_index_forms(forms.scatter, full, forms.free, node, env, n)[0]
        for name, form in wrong.items():
            if name == "unrotated" and (kh, kw) == (1, 1):
                continue
            assert any(_differs(forms, form, node, env, n) for n, env in enumerate(envs)), name


def _differs(forms, form, node, env, seed) -> bool:
    try:
        return not _compare_index_forms(forms.scatter, form, forms.free, node, env, seed)[0]
    except KeyError:  # it reads a kernel entry that does not exist (F ≠ C): caught as well
        return True
