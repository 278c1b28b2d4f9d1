"""The matrix forms of a network of plain kinds skip the convolution recognisers (`convforms`); this
holds only if those recognisers never find anything there, which the test checks by running them."""

import tomllib
from pathlib import Path

import pytest

import derive.convforms as convforms
from derive import windowsizes
from derive.derivation import assemble, derive_minibatch, derive_sample
from derive.model import build_model, make_spec
from derive.netfile import parse_network

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _network(name: str):
    return build_model(parse_network(tomllib.loads((EXAMPLES / name).read_text()), name)).network


def test_only_a_network_of_plain_kinds_skips_the_window_forms():
    assert windowsizes.window_forms_possible()  # no network known: a formula on its own
    for network, possible in [(build_model(make_spec(2, "relu", "softmax", "ce")).network, False),
                              (_network("residual_mlp.toml"), False),
                              (_network("cnn_lenet_like.toml"), True),
                              (_network("layernorm_mlp.toml"), True)]:
        with windowsizes.network_sizes(network):
            assert windowsizes.window_forms_possible() is possible


@pytest.mark.parametrize("args", [(3, "sigmoid", None, "mse"), (2, "tanh", "log_softmax", "nll")])
def test_the_window_recognisers_find_nothing_where_they_are_skipped(monkeypatch, args):
    found = []
    recognise, unflatten_form = convforms.recognise, convforms.unflatten_form

    def tried(fn):
        def run(expr, free, to_matrix_form):
            result = fn(expr, free, to_matrix_form)
            found.append(result)
            return result
        return run

    # every formula goes through the recognisers, as before the guard
    monkeypatch.setattr(windowsizes, "window_forms_possible", lambda: True)
    monkeypatch.setattr(convforms, "recognise", tried(recognise))
    monkeypatch.setattr(convforms, "unflatten_form", tried(unflatten_form))
    model = build_model(make_spec(*args))
    assemble(model, derive_sample(model), derive_minibatch(model))
    assert len(found) > 20 and all(result is None for result in found)
