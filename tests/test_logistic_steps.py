"""The sigmoid's hand derivation g' = g(1 - g) is checked line by line with an exact identity test in
e^{z/2} (`rewrite.exp_identity_holds`); that test must tell a true identity from a false one."""

from functools import partial

import sympy as sp

from derive.rewrite import exp_identity_holds

z = sp.Symbol("z")
g = 1 / (1 + sp.exp(-z))
in_exp = partial(exp_identity_holds, rewrite=False)  # as the steps are checked: only what is written in e^{±z}


def test_true_identities_of_the_logistic_function_hold():
    assert in_exp(sp.diff(g, z), g * (1 - g), z)
    assert in_exp(sp.exp(z) / (1 + sp.exp(z)), g, z)  # the same function written with e^{z}


def test_a_wrong_line_is_caught():
    assert not in_exp(g * (1 + g), sp.diff(g, z), z)
    assert not in_exp(sp.exp(-z) / (1 + sp.exp(-z)), sp.diff(g, z), z)  # the square dropped


def test_a_function_outside_exp_is_not_claimed_equal():
    assert not in_exp(sp.tanh(z), g, z)
    assert not in_exp((1 + sp.tanh(z / 2)) / 2, g, z)  # true, but not written in e^{-z}: no steps
    assert exp_identity_holds((1 + sp.tanh(z / 2)) / 2, g, z)  # rewritten in exponentials it is proved
