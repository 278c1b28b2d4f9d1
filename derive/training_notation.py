"""Names of the quantities of training, in one place: LaTeX for documents, names for code.

The backward pass has `notation` (W⁽ˡ⁾, δ⁽ˡ⁾, …). Training adds its own quantities: the parameter θ
and its gradient, the optimizer's hyper-parameters (η, β₁, …) and state (the momentum buffer, Adam's
moments, …), and the moments of the initialisation derivation (Var, E). Each is a SymPy symbol
registered here with its LaTeX and its code name, so that the printers of `present_training` and
`codegen_training` never build a name by hand. Code names are torch.optim's names (`lr`,
`exp_avg`, `momentum_buffer` …) so that generated code reads like the library it matches.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

_LATEX: dict[str, str] = {}
_CODE: dict[str, str] = {}
COEFFICIENTS: set[str] = {"eta"}  # scalars printed before the quantities they scale (η ∇C, λ θ)


def symbol(name: str, latex: str, code: str | None = None, *, coefficient: bool = False, **assumptions) -> sp.Symbol:
    """A registered symbol; `name` is the SymPy name (unique within training), `code` defaults to it.
    A `coefficient` (a hyper-parameter) is printed in front of the other factors of a product."""
    if name in _LATEX and _LATEX[name] != latex:
        raise ValueError(f"training symbol {name!r} registered twice with different LaTeX")
    _LATEX[name] = latex
    _CODE[name] = code if code is not None else name
    if coefficient:
        COEFFICIENTS.add(name)
    return sp.Symbol(name, **assumptions)


def latex_name(name: str) -> str | None:
    return _LATEX.get(name)


def code_name(name: str) -> str | None:
    return _CODE.get(name)


@cache
def timed(sym: sp.Symbol) -> sp.IndexedBase:
    """The same quantity as a sequence over the steps t (θ_t, m_t, …), for the documents."""
    return sp.IndexedBase(sym.name)


# the step counter and the quantities every optimizer shares
STEP = sp.Symbol("t", integer=True, positive=True)
PAST = sp.Symbol("k", integer=True, positive=True)  # summation index over past steps
THETA = symbol("theta", r"\theta", "p", real=True)  # one parameter array (W⁽ˡ⁾ or b⁽ˡ⁾)
THETA_NEXT = symbol("theta_next", r"\theta'", real=True)
GRAD = symbol("grad", r"\nabla \bar{C}", "grad", real=True)  # ∂C̄/∂θ of the current minibatch
GRADIENT = symbol("g", "g", real=True)  # the gradient the optimizer uses (after weight decay)
FULL_GRAD = symbol("full_grad", r"\nabla C", real=True)  # gradient of the mean cost over all data
COST_NOW = symbol("cost_now", r"C(\theta)", real=True)
MODEL = symbol("model", r"M(\theta')", real=True)  # the proximal model minimised by one step
GRAD_ENTRY = symbol("grad_entry", r"\left(\nabla C\right)", real=True)  # entries ∂C/∂θᵢ, indexed
COST_ANY = symbol("cost_any", "C", real=True)  # any differentiable cost C(θ) (the proximal derivation)
COST_L2 = symbol("cost_l2", r"\tilde{C}", real=True)  # the cost with an L2 penalty
GRAD_SAMPLE = symbol("grad_sample", r"\nabla C", real=True)  # gradient of the loss of one sample


class Expectation(sp.Function):
    """E[x]: an expectation, kept unevaluated; the derivations apply its rules (linearity …) as steps."""

    nargs = 1

    def _derive_latex(self, printer, exp=None, **_):
        tex = rf"\mathbb{{E}}\left[{printer._print(self.args[0])}\right]"
        return rf"{tex}^{{{exp}}}" if exp else tex


class Variance(sp.Function):
    """Var(x), kept unevaluated like `Expectation`."""

    nargs = 1

    def _derive_latex(self, printer, exp=None, **_):
        tex = rf"\operatorname{{Var}}\left({printer._print(self.args[0])}\right)"
        return rf"{tex}^{{{exp}}}" if exp else tex
