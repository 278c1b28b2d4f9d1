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


def test_exp_identities_are_decided_as_cancel_decides_them():
    """exp_identity_holds tries the numerator over one denominator first and falls back to `cancel`:
    the verdicts are cancel's, for identities that hold and for ones off by a sign or a tiny constant."""
    import sympy as sp

    from derive.rewrite import exp_identity_holds

    z = sp.Symbol("z", real=True)
    w = sp.Symbol("w", positive=True)
    pairs = [(sp.tanh(z / 2), (1 - sp.exp(-z)) / (1 + sp.exp(-z)), True),
             (1 / (1 + sp.exp(z)), (1 - sp.tanh(z / 2)) / 2, True),
             (1 / (1 + sp.exp(z)), (1 + sp.tanh(z / 2)) / 2, True),
             (sp.sinh(z) / sp.cosh(z), sp.tanh(z), True),
             (sp.tanh(z), sp.tanh(z) + sp.Rational(1, 10**30), True),
             ((1 - 1 / (1 + sp.exp(-z))) / (1 + sp.exp(-z)), sp.exp(-z) / (1 + sp.exp(-z))**2, False),
             (1 / (1 + sp.exp(-z)), sp.exp(z) / (1 + sp.exp(z)), False)]
    for lhs, rhs, rewrite in pairs:
        difference = (lhs - rhs).rewrite(sp.exp) if rewrite else lhs - rhs
        difference = difference.subs(sp.exp(z / 2), w).subs(sp.exp(-z / 2), 1 / w).subs(sp.exp(z), w**2)
        assert exp_identity_holds(lhs, rhs, z, rewrite) == (not difference.has(z) and sp.cancel(difference) == 0)
    assert [exp_identity_holds(lhs, rhs, z, rewrite) for lhs, rhs, rewrite in pairs] == \
        [True, True, False, True, False, True, True]
