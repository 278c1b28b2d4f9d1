"""derive.slashed: a fraction in running text written with a slash, parenthesised where needed."""

import pytest

from derive.slashed import slashed, slashed_inline


@pytest.mark.parametrize("tex, expected", [
    (r"\frac{1}{1 + e^{-z}}", r"1/(1 + e^{-z})"),  # a sum in the denominator
    (r"\frac{\partial C}{\partial a^{(L)}} \odot g'(z^{(L)})", r"\partial C/\partial a^{(L)} \odot g'(z^{(L)})"),
    (r"\frac{e^{z/2} - e^{-z/2}}{e^{z/2} + e^{-z/2}}", r"(e^{z/2} - e^{-z/2})/(e^{z/2} + e^{-z/2})"),
    (r"\frac{1}{4} \cdot \frac{1}{4} = \frac{1}{16}", r"1/4 \cdot 1/4 = 1/16"),
    (r"\tanh\frac{z}{2}", r"\tanh(z/2)"),  # a function's argument stays whole
    (r"\frac{1}{m} \delta", r"(1/m) \delta"),  # and so does a factor
    (r"\frac{32}{n_{1} + n_{2}}", r"32/(n_{1} + n_{2})"),
    (r"\frac{-1}{2 n}", r"-1/(2 n)"),  # a product in the denominator
    (r"\frac{\tanh{\left(\frac{z}{2} \right)}}{2} + \frac{1}{2}", r"\tanh{\left(z/2 \right)}/2 + 1/2"),
    (r"\cdot\frac{a}{b}", r"\cdot a/b"),
    (r"\tfrac12 + x", r"\tfrac12 + x"),  # only \frac
])
def test_fractions_are_slashed_as_a_reader_writes_them(tex, expected):
    assert slashed(tex) == expected


def test_a_display_style_formula_keeps_its_fractions():
    assert slashed_inline(r"$\displaystyle \frac{1}{m}$") == r"$\displaystyle \frac{1}{m}$"
    assert slashed_inline(r"$\frac{1}{m}$") == "$1/m$"
