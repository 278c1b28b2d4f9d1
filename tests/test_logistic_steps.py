"""The sigmoid's hand derivation g' = g(1 - g) is checked line by line with an exact identity test in
t = e^{-z}; that test must tell a true identity from a false one."""

import sympy as sp

from derive.present import _equal_in_exp

z = sp.Symbol("z")
g = 1 / (1 + sp.exp(-z))


def test_true_identities_of_the_logistic_function_hold():
    assert _equal_in_exp(sp.diff(g, z), g * (1 - g), z)
    assert _equal_in_exp(sp.exp(z) / (1 + sp.exp(z)), g, z)  # the same function written with e^{z}


def test_a_wrong_line_is_caught():
    assert not _equal_in_exp(g * (1 + g), sp.diff(g, z), z)
    assert not _equal_in_exp(sp.exp(-z) / (1 + sp.exp(-z)), sp.diff(g, z), z)  # the square dropped


def test_a_function_outside_exp_is_not_claimed_equal():
    assert not _equal_in_exp(sp.tanh(z), g, z)
    assert not _equal_in_exp((1 + sp.tanh(z / 2)) / 2, g, z)  # true, but not provable in t alone: no steps
