"""Named irrational constants of catalog functions (the SELU scale λ and slope α).

They are SymPy number symbols, like π: formulas show the name, and every evaluation asks for the
value at the precision it needs (50 digits in the symbolic check, float64 in generated code), so no
rounded copy of the constant ever enters a formula. The decimal expansions are those published with
SELU (Klambauer et al., 2017) and used by PyTorch and TensorFlow.
"""

from __future__ import annotations

import mpmath
import sympy as sp
from sympy.core.numbers import NumberSymbol
from sympy.core.singleton import Singleton


class _NamedConstant(NumberSymbol, metaclass=Singleton):
    """A positive real constant given by a long decimal expansion."""

    is_real = True
    is_positive = True
    is_number = True
    __slots__ = ()
    decimal: str = ""
    latex_name: str = ""
    text_name: str = ""
    description: str = ""

    def _as_mpf_val(self, prec):
        return mpmath.mpf(self.decimal, prec=prec + 10)._mpf_

    def approximation_interval(self, number_cls):
        return None

    def _latex(self, printer):
        return self.latex_name

    def _sympystr(self, printer):
        return self.text_name


class SeluScale(_NamedConstant):
    decimal = "1.0507009873554804934193349852946"
    latex_name = r"\lambda_{\mathrm{selu}}"
    text_name = "lambda_selu"
    description = "the SELU scale"


class SeluAlpha(_NamedConstant):
    decimal = "1.6732632423543772848170429916717"
    latex_name = r"\alpha_{\mathrm{selu}}"
    text_name = "alpha_selu"
    description = "the SELU slope of the exponential branch"


SELU_SCALE = sp.S.SeluScale
SELU_ALPHA = sp.S.SeluAlpha
NAMED_CONSTANTS = (SELU_SCALE, SELU_ALPHA)


def named_constants(expr: sp.Basic) -> list[_NamedConstant]:
    """The named constants an expression uses, in a fixed order."""
    return [c for c in NAMED_CONSTANTS if expr.has(c)]
