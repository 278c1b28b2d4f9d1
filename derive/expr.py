"""Safe parsing of user-written math expressions into SymPy.

Users type activation functions (in ``z``) and losses (in ``a`` and ``y``) on
the command line. This module is the only place where that text becomes a
SymPy object, so it is security code:

* The text never reaches ``eval``, ``exec``, ``compile``, ``sympy.sympify`` or
  ``sympy.parse_expr``: all of them execute Python, so a "formula" such as
  ``__import__('os').system(...)`` would run. We only call ``ast.parse``, which
  builds a syntax tree and executes nothing, and then build SymPy objects
  ourselves from a strict whitelist of node types. Anything not on the list
  (attributes, subscripts, strings, lambdas, comprehensions, any future
  syntax) is refused by default.
* ``ast.parse`` NFKC-normalises identifiers (``ｅｘｐ`` is ``exp``, ``ᵉval`` is
  ``eval``). The whitelist is checked on the normalised name, so a look-alike
  can only ever be a name that is itself allowed.
* Resource limits stop denial of service. SymPy computes with exact integers,
  so ``9**9**9`` would run for hours and ``exp(1000*log(2*z))`` (which SymPy
  rewrites as ``(2*z)**1000``) would build a huge number. Text length, nesting,
  literals and exponents are bounded; every constant subexpression is
  estimated with floats *before* SymPy builds it; every built node is checked
  so that numbers, exponents and expansions stay small; and a deadline stops
  SymPy's own automatic simplification if it still runs too long.
* Infinite, undefined and complex results are refused, so later stages can
  rely on a finite, real-valued formula.
"""

from __future__ import annotations

import ast
import math
import signal
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from types import MappingProxyType
from typing import Callable, Mapping

import sympy

from derive.collector import collector_paused
from derive.errors import DeriveError

MAX_LENGTH = 500            # characters of user text
MAX_DEPTH = 50              # bracket nesting, and depth of the expression tree
MAX_LITERAL = 10**6         # absolute value of a number literal
MAX_DIGITS = 30             # significant digits of a number literal
MAX_EXPONENT = 64           # absolute value of a constant exponent
MAX_MAGNITUDE = 1e100       # constants lie in [1e-100, 1e100] or are 0; numbers in results too
MAX_MINMAX_ARGS = 8         # per expression: SymPy compares max/min arguments pairwise
MAX_EXPANDED_TERMS = 1000   # terms of any subexpression if multiplied out
BUILD_SECONDS = 0.5         # deadline for building the SymPy expression
_ECHO_WIDTH = 60

_TOO_LARGE = "constant value is too large (limit 1e100)"
_TOO_SMALL = "constant value is too small (limit 1e-100)"
_UNDEFINED = "evaluates to an infinite or undefined value"
_DIVISION_BY_ZERO = f"division by zero ({_UNDEFINED})"


class ExpressionError(DeriveError, ValueError):
    """One-line, user-facing message: names the bad text, the position (column),
    why, and what is accepted."""


class _Refusal(Exception):
    """Internal: why the text is refused and where (an AST node or a 1-based column)."""

    def __init__(self, reason: str, where: ast.AST | int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.where = where


class _Timeout(BaseException):
    """Raised by the deadline's signal handler; a BaseException so that SymPy's
    ``except Exception`` clauses cannot swallow it."""


@contextmanager
def _deadline(seconds: float):
    """Interrupt building if SymPy's automatic simplification runs too long.

    The limits bound what we can predict; SymPy still has slow internal paths
    (deciding whether cosh(log(2-z)**64) is positive expands its real and
    imaginary parts). The deadline counts this process's CPU time (SIGPROF), not
    wall time, and the cyclic garbage collector is paused while it runs: neither
    other processes on a busy machine nor a collection of objects the caller made
    earlier may decide that an expression is too costly (a long test run once had
    a valid loss refused that way). Arms only in the main thread and when no other
    profiling timer is in use; elsewhere the limits alone apply.
    """
    if not (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGPROF) == signal.SIG_DFL
            and signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)):
        yield
        return

    def expire(signum, frame):
        raise _Timeout

    with collector_paused():
        signal.signal(signal.SIGPROF, expire)
        signal.setitimer(signal.ITIMER_PROF, seconds, 0.05)   # repeats until disarmed
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, signal.SIG_DFL)


# the same deadline for other code that evaluates what users typed (catalog.custom, verify)
time_limit = _deadline
TimeLimitExceeded = _Timeout


# --- float estimates of constant subexpressions, computed before SymPy builds them ---

def _bounded(value: float) -> float:
    if math.isnan(value):
        raise _Refusal(_UNDEFINED)
    if abs(value) > MAX_MAGNITUDE:
        raise _Refusal(_TOO_LARGE)
    if 0 < abs(value) < 1 / MAX_MAGNITUDE:
        raise _Refusal(_TOO_SMALL)
    return value


def _exp(x: float) -> float:
    if abs(x) > math.log(MAX_MAGNITUDE):     # before math.exp, which underflows to 0.0 silently
        raise _Refusal(_TOO_LARGE if x > 0 else _TOO_SMALL)
    return math.exp(x)


def _log(x: float) -> float:
    if x <= 0:
        raise _Refusal(f"log of zero or a negative number ({_UNDEFINED})")
    return math.log(x)


def _sqrt(x: float) -> float:
    if x < 0:
        raise _Refusal("square root of a negative number is not a real number")
    return math.sqrt(x)


def _heaviside(x: float) -> float:
    return 1.0 if x > 0 else 0.0 if x < 0 else 0.5   # SymPy's Heaviside(0) is 1/2


def _power(base: float, exponent: float, integer_exponent: bool) -> float:
    """base**exponent, sized in log space first so a huge result is refused, never computed."""
    if base == 0:
        if exponent < 0:
            raise _Refusal(_DIVISION_BY_ZERO)
        return 1.0 if exponent == 0 else 0.0
    if base < 0 and not integer_exponent:
        raise _Refusal("a negative number to a non-integer power is not a real number")
    magnitude = exponent * math.log10(abs(base))
    if abs(magnitude) > math.log10(MAX_MAGNITUDE):
        raise _Refusal(_TOO_LARGE if magnitude > 0 else _TOO_SMALL)
    return math.pow(base, round(exponent) if integer_exponent else exponent)


@dataclass(frozen=True)
class AllowedFunction:
    """A function users may call: how SymPy builds it and how floats estimate it on constants."""

    build: Callable[..., sympy.Expr]
    estimate: Callable[..., float]
    variadic: bool = False      # max/min take two or more arguments, all others exactly one


ALLOWED_FUNCTIONS: Mapping[str, AllowedFunction] = MappingProxyType({
    "exp": AllowedFunction(sympy.exp, _exp),
    "log": AllowedFunction(sympy.log, _log),
    "sqrt": AllowedFunction(sympy.sqrt, _sqrt),
    "abs": AllowedFunction(sympy.Abs, abs),
    "sin": AllowedFunction(sympy.sin, math.sin),
    "cos": AllowedFunction(sympy.cos, math.cos),
    "tanh": AllowedFunction(sympy.tanh, math.tanh),
    "sinh": AllowedFunction(sympy.sinh, math.sinh),
    "cosh": AllowedFunction(sympy.cosh, math.cosh),
    "atan": AllowedFunction(sympy.atan, math.atan),
    "erf": AllowedFunction(sympy.erf, math.erf),
    "max": AllowedFunction(sympy.Max, max, variadic=True),
    "min": AllowedFunction(sympy.Min, min, variadic=True),
    "Heaviside": AllowedFunction(sympy.Heaviside, _heaviside),
    # SymPy has no sigmoid or softplus: build them from exp and log.
    "sigmoid": AllowedFunction(lambda x: 1 / (1 + sympy.exp(-x)), lambda x: 1 / (1 + _exp(-x))),
    "softplus": AllowedFunction(lambda x: sympy.log(1 + sympy.exp(x)),
                                lambda x: math.log(1 + _exp(x))),
})

_CONSTANTS = {"pi": (sympy.pi, math.pi), "e": (sympy.E, math.e)}
_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
_REFUSED_OPERATORS = {ast.MatMult: "@", ast.FloorDiv: "//", ast.Mod: "%", ast.LShift: "<<",
                      ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&"}
_REFUSED_SYNTAX = {
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "subscripts (indexing) are not allowed",
    ast.Lambda: "lambda is not allowed",
    **dict.fromkeys((ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp),
                    "comprehensions and generators are not allowed"),
    ast.JoinedStr: "f-strings are not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "boolean operators (and, or) are not allowed",
    ast.IfExp: "conditional expressions (if/else) are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Starred: "starred arguments (*) are not allowed",
    ast.Tuple: "tuples are not allowed",
    ast.List: "lists are not allowed",
    ast.Dict: "dicts are not allowed",
    ast.Set: "sets are not allowed",
    ast.Await: "await is not allowed",
}


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _literal(node: ast.Constant, source: str) -> Fraction:
    """The exact value of a number literal, from its decimal text (never a binary float)."""
    value = node.value
    if isinstance(value, (str, bytes, complex)):
        kind = {str: "strings are", bytes: "bytes are", complex: "complex numbers are"}[type(value)]
        raise _Refusal(f"{kind} not allowed", node)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Refusal(f"{value!r} is not a number", node)
    text = ast.get_source_segment(source, node)
    shown = _shorten(text, 20)
    try:
        number = Decimal(value) if isinstance(value, int) else Decimal(text.replace("_", ""))
    except InvalidOperation:       # an exponent beyond what Decimal represents
        raise _Refusal(f"number {shown} is too large (limit 1e6)", node) from None
    # Bound the decimal exponent before Fraction() expands it into an integer.
    if abs(number) > MAX_LITERAL:
        raise _Refusal(f"number {shown} is too large (limit 1e6)", node)
    if number and number.adjusted() < -100:
        raise _Refusal(f"number {shown} is too small (limit 1e-100)", node)
    if len("".join(map(str, number.as_tuple().digits)).strip("0")) > MAX_DIGITS:
        raise _Refusal(f"number {shown} has more than {MAX_DIGITS} significant digits", node)
    return Fraction(number)


# --- invariants of every built node, so that the next SymPy operation stays cheap ---

def _has_numeric_factor(expr: sympy.Expr) -> bool:
    return not expr.is_Add and any(factor.is_number and factor not in (1, -1)
                                   for factor in sympy.Mul.make_args(expr))


def _check_log_coefficients(expr: sympy.Expr) -> None:
    """Refuse c*log(x) with |c| > 64 where x has a numeric factor.

    SymPy rewrites exp(c*log(x)) as x**c (also e**... and b**(c*log(x)/log(b)))
    and logcombine, used by simplify, turns c*log(x) into log(x**c): with a
    huge c it would raise the numbers in x to that power. Where x has no
    numeric factor, x**c stays symbolic and the exponent limit catches it.
    """
    for sub in sympy.preorder_traversal(expr):
        if sub.is_Mul and any(isinstance(factor, sympy.log) and _has_numeric_factor(factor.args[0])
                              for factor in sub.args):
            coefficient = sympy.Mul(*[factor for factor in sub.args if factor.is_comparable])
            if abs(float(coefficient)) > MAX_EXPONENT:
                raise _Refusal(f"a log of a number is multiplied by more than {MAX_EXPONENT} "
                               f"(exponent too large once SymPy combines them)")


def _expanded_terms(expr: sympy.Expr) -> int:
    """Upper bound on the terms of expr multiplied out, saturating just above the limit.

    SymPy expands subexpressions internally (re() of erf(x) expands x), and
    (a+b+c+d+e)**64 alone has 814385 terms.
    """
    if expr.is_Add:
        terms = sum(map(_expanded_terms, expr.args))
    elif expr.is_Mul:
        terms = math.prod(map(_expanded_terms, expr.args))
    elif expr.is_Pow and expr.exp.is_Rational:      # multinomial count of (k terms)**n
        n, k = abs(expr.exp.p) // expr.exp.q, _expanded_terms(expr.base)
        terms = math.comb(n + k - 1, n)
    else:
        terms = 1
    return min(terms, MAX_EXPANDED_TERMS + 1)


def _check_built(expr: sympy.Expr) -> None:
    if expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        raise _Refusal(_UNDEFINED)
    if expr.has(sympy.I):
        raise _Refusal("evaluates to a complex value")
    if any(max(abs(number.p), number.q) > MAX_MAGNITUDE for number in expr.atoms(sympy.Rational)):
        raise _Refusal("numbers in the result grow too large (limit 1e100)")
    for power in expr.atoms(sympy.Pow):
        if power.exp.is_Number and abs(power.exp) > MAX_EXPONENT:
            raise _Refusal(f"exponent {power.exp} is too large (limit {MAX_EXPONENT})")
    _check_log_coefficients(expr)
    if _expanded_terms(expr) > MAX_EXPANDED_TERMS:
        raise _Refusal(f"too large when multiplied out (more than {MAX_EXPANDED_TERMS} terms)")


class _Parser:
    """Checks, then builds, one parsed expression."""

    def __init__(self, source: str, indent: int, variables: Mapping[str, sympy.Symbol]):
        self.source = source          # the text without its leading spaces
        self.indent = indent          # how many there were, for columns
        self.variables = variables
        self.minmax_args = 0

    def column(self, where: ast.AST | int | None) -> int | None:
        """1-based character column in the user's text (AST offsets count UTF-8 bytes)."""
        if where is None or isinstance(where, int):
            return where
        if isinstance(where, (ast.Attribute, ast.Subscript)):
            return self.offset_column(where.value.end_col_offset)   # point at the '.' or '['
        return self.offset_column(where.col_offset)

    def offset_column(self, offset: int) -> int:
        return self.indent + len(self.source.encode()[:offset].decode(errors="ignore")) + 1

    def check(self, root: ast.expr) -> None:
        """Whitelist and depth check of the whole tree before any SymPy object is built
        (iterative, so no recursion limit is involved)."""
        stack = [(root, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise _Refusal(f"nested too deeply (more than {MAX_DEPTH} levels)", node)
            stack.extend((child, depth + 1) for child in reversed(self.check_node(node)))

    def check_node(self, node: ast.AST) -> list[ast.expr]:
        """Refuse anything off the whitelist; return the node's sub-expressions."""
        if isinstance(node, ast.Constant):
            _literal(node, self.source)
            return []
        if isinstance(node, ast.Name):
            if node.id not in self.variables and node.id not in _CONSTANTS:
                raise _Refusal(f"unknown variable {node.id!r} (allowed: {_listed('variable', self.variables)})", node)
            return []
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                raise _Refusal("'not' is not allowed", node)
            if isinstance(node.op, ast.Invert):
                raise _Refusal("operator ~ is not allowed", node)
            return [node.operand]
        if isinstance(node, ast.BinOp):
            if not isinstance(node.op, _OPERATORS):
                symbol = _REFUSED_OPERATORS[type(node.op)]
                hint = " (use ** for powers)" if symbol == "^" else ""
                offset = self.source.encode().find(symbol.encode(), node.left.end_col_offset)
                raise _Refusal(f"operator {symbol} is not allowed{hint}",
                               self.offset_column(offset))
            return [node.left, node.right]
        if isinstance(node, ast.Call):
            return self.check_call(node)
        raise _Refusal(_REFUSED_SYNTAX.get(type(node), f"{type(node).__name__} is not allowed"),
                       node)

    def check_call(self, node: ast.Call) -> list[ast.expr]:
        func = node.func
        if not isinstance(func, ast.Name):
            raise _Refusal(_REFUSED_SYNTAX.get(type(func), "only named functions can be called"),
                           func)
        if func.id not in ALLOWED_FUNCTIONS:
            known = func.id in self.variables or func.id in _CONSTANTS
            raise _Refusal(f"{func.id!r} is not a function" if known
                           else f"unknown function {func.id!r}", func)
        if node.keywords:
            raise _Refusal("keyword arguments are not allowed", node.keywords[0])
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise _Refusal(_REFUSED_SYNTAX[ast.Starred], arg)
        count = len(node.args)
        if not ALLOWED_FUNCTIONS[func.id].variadic:
            if count != 1:
                raise _Refusal(f"{func.id} takes exactly 1 argument (got {count})", node)
        elif count < 2:
            raise _Refusal(f"{func.id} takes at least 2 arguments (got {count})", node)
        else:
            self.minmax_args += count
            if self.minmax_args > MAX_MINMAX_ARGS:
                raise _Refusal(f"too many max/min arguments (limit {MAX_MINMAX_ARGS} "
                               f"per expression)", node)
        return node.args

    def build(self, node: ast.expr) -> tuple[sympy.Expr, float | None]:
        """A checked node's SymPy expression and, if it is constant, its float estimate."""
        try:
            expr, value = self.build_node(node)
            _check_built(expr)
        except _Refusal as refusal:
            if refusal.where is None:
                refusal.where = node
            raise
        if value is not None and expr.is_Rational:
            value = float(expr)     # exact beats the estimate, e.g. 1e-17 + 1 - 1 or sin(pi)
        return expr, value

    def build_node(self, node: ast.expr) -> tuple[sympy.Expr, float | None]:
        if isinstance(node, ast.Constant):
            number = _literal(node, self.source)
            return sympy.Rational(number.numerator, number.denominator), float(number)
        if isinstance(node, ast.Name):
            if node.id in self.variables:
                return self.variables[node.id], None
            return _CONSTANTS[node.id]
        if isinstance(node, ast.UnaryOp):
            operand, value = self.build(node.operand)
            if isinstance(node.op, ast.USub):
                return -operand, None if value is None else -value
            return operand, value
        if isinstance(node, ast.BinOp):
            return _binary(node.op, *self.build(node.left), *self.build(node.right))
        function = ALLOWED_FUNCTIONS[node.func.id]
        args, values = zip(*map(self.build, node.args))
        value = None
        if None not in values:
            try:
                value = _bounded(function.estimate(*values))
            except OverflowError:
                raise _Refusal(_TOO_LARGE) from None
        try:
            return function.build(*args), value
        except ValueError:      # e.g. Max of an argument SymPy knows is not real
            raise _Refusal(f"{node.func.id} needs real-valued arguments") from None


def _binary(op: ast.operator, left: sympy.Expr, lvalue: float | None,
            right: sympy.Expr, rvalue: float | None) -> tuple[sympy.Expr, float | None]:
    """Apply + - * / ** after estimating a constant result and checking the limits."""
    constant = lvalue is not None and rvalue is not None
    if isinstance(op, ast.Add):
        return left + right, _bounded(lvalue + rvalue) if constant else None
    if isinstance(op, ast.Sub):
        return left - right, _bounded(lvalue - rvalue) if constant else None
    if isinstance(op, ast.Mult):
        return left * right, _bounded(lvalue * rvalue) if constant else None
    if isinstance(op, ast.Div):
        if rvalue == 0:
            raise _Refusal(_DIVISION_BY_ZERO)
        return left / right, _bounded(lvalue / rvalue) if constant else None
    value = None
    if rvalue is not None:
        if abs(rvalue) > MAX_EXPONENT:
            raise _Refusal(f"exponent {rvalue:g} is too large (limit {MAX_EXPONENT})")
        if lvalue is not None:
            value = _power(lvalue, rvalue, bool(right.is_integer))
    elif lvalue is not None and lvalue < 0:
        raise _Refusal("a negative base needs a constant integer exponent (not a real number)")
    return left**right, value


def _check_text(text: str) -> None:
    """Cheap checks on the raw text before the parser sees it, length first."""
    if len(text) > MAX_LENGTH:
        raise _Refusal(f"text is too long ({len(text)} characters, limit {MAX_LENGTH})")
    for column, char in enumerate(text, 1):
        # Also refuses newlines, tabs, NUL and invisible bidi/zero-width characters.
        if not char.isprintable():
            raise _Refusal(f"non-printable character U+{ord(char):04X} is not allowed", column)
    if not text.strip():
        raise _Refusal("the text is empty")
    depth = 0
    for column, char in enumerate(text, 1):
        depth += (char in "([{") - (char in ")]}")
        if depth > MAX_DEPTH:
            raise _Refusal(f"brackets nested too deeply (more than {MAX_DEPTH} levels)", column)


def _listed(noun: str, names) -> str:
    """'variable z', 'variables a, y', 'no constants': a noun agreeing with its list."""
    names = list(names)
    if not names:
        return f"no {noun}s"
    return f"{noun}{'s' if len(names) > 1 else ''} {', '.join(names)}"


def _accepted(variables: Mapping[str, sympy.Symbol]) -> str:
    constants = [name for name in _CONSTANTS if name not in variables]
    return (f"numbers, {_listed('variable', variables)}, operators + - * / **, "
            f"{_listed('function', ALLOWED_FUNCTIONS)}, {_listed('constant', constants)}")


def parse_expression(text: str, variables: Mapping[str, sympy.Symbol], *,
                     what: str = "expression") -> sympy.Expr:
    """Parse `text` into a SymPy expression over the given variables only.

    `what` names the thing in errors, e.g. "activation" or "loss". Raises
    ExpressionError for anything outside the whitelist or the limits.
    """
    accepted = _accepted(variables)
    if not isinstance(text, str):
        raise ExpressionError(f"invalid {what}: expected a string, got {type(text).__name__}; "
                              f"accepted: {accepted}")
    source = text.lstrip(" ")      # ast.parse would take leading spaces for an indent
    parser = _Parser(source, len(text) - len(source), variables)
    try:
        _check_text(text)
        try:
            with warnings.catch_warnings():      # warnings about user text are not ours to print
                warnings.simplefilter("ignore")
                tree = ast.parse(source, mode="eval")
        except SyntaxError as error:
            offset = error.offset if error.offset and error.offset > 0 else len(source) + 1
            raise _Refusal(f"syntax error: {error.msg}", parser.indent + offset) from None
        except (RecursionError, MemoryError):
            raise _Refusal("the expression is too complex to parse") from None
        parser.check(tree.body)
        try:
            with _deadline(BUILD_SECONDS):
                expr, _ = parser.build(tree.body)
        except _Timeout:
            sympy.core.cache.clear_cache()   # drop objects whose assumptions were cut short
            raise _Refusal(f"too complex: building it took longer than {BUILD_SECONDS} s") from None
    except _Refusal as refusal:
        column = parser.column(refusal.where)
        where = f" (column {column})" if column else ""
        raise ExpressionError(f"invalid {what} {_shorten(text, _ECHO_WIDTH)!r}: {refusal.reason}"
                              f"{where}; accepted: {accepted}") from None
    return expr
