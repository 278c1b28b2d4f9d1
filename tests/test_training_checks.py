"""The checks of the generated training code catch wrong code: each test corrupts one line of the
generated model.py and asserts that the check meant to catch it fails."""

from __future__ import annotations

import re

import pytest

from derive.catalog.optimizers import resolve_optimizer
from derive.initialisation import derive_initialisation
from derive.run import model_source
from derive.training import derive_training
from derive.verify import load_module
from derive.verify_training import initial_weights_check, optimizer_check, training_loop_check

from conftest import derivation_for


def source_for(optimizer: str, act: str = "relu"):
    d = derivation_for(2, act, "ce")
    training = derive_training(resolve_optimizer(optimizer))
    init = derive_initialisation(d.model)
    return d, training, init, model_source(d, title="t", command="t", training=training, initialisation=init)


@pytest.mark.parametrize("optimizer, line, wrong", [
    ("sgd", "p[...] = -lr*g + p", "p[...] = -lr*g*1.000001 + p"),
    ("momentum", "buf[...] = buf*momentum + g*(1 - dampening)", "buf[...] = buf*momentum + g"),
    ("adam", "m_hat = exp_avg/(1 - beta1**t)", "m_hat = exp_avg"),
    ("rmsprop", "avg = eps + np.sqrt(square_avg)", "avg = eps + square_avg"),
])
def test_optimizer_check_catches_a_wrong_update_line(optimizer, line, wrong):
    d, training, init, source = source_for(optimizer)
    assert optimizer_check(training, load_module(source)).passed
    assert line in source, source
    assert not optimizer_check(training, load_module(source.replace(line, wrong))).passed


def test_initial_weights_check_catches_a_wrong_scale():
    d, training, init, source = source_for("sgd")
    assert initial_weights_check(d.model, init, load_module(source)).passed
    broken = re.sub(r"np\.sqrt\(2/n_1\)", "np.sqrt(2.5/n_1)", source)
    assert broken != source
    assert not initial_weights_check(d.model, init, load_module(broken)).passed


def test_training_loop_check_catches_a_diverging_update():
    d, training, init, source = source_for("sgd")
    assert training_loop_check(d.model, load_module(source)).passed
    broken = source.replace("p[...] = -lr*g + p", "p[...] = p * float('nan')")
    assert broken != source
    assert not training_loop_check(d.model, load_module(broken)).passed
