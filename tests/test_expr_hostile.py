"""derive.expr against hostile and malformed input: every payload is refused quickly,
with a one-line message giving the reason, and parsing never executes anything."""

from __future__ import annotations

import ast
import importlib
import time
from contextlib import ExitStack, contextmanager
from unittest import mock

import pytest
import sympy
import sympy.parsing.sympy_parser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derive.expr import ExpressionError, parse_expression

# every test here parses user text under CPU-time deadlines: run under load too (tests/conftest.py)
pytestmark = pytest.mark.time_limited

z = sympy.Symbol("z", real=True)
ACTIVATION = {"z": z}

# (payload, a word of the reason the message must contain)
HOSTILE = [
    # code execution and introspection
    ("__import__('os').system('touch PWNED')", "attribute access"),
    ("__import__('os')", "unknown function '__import__'"),
    ("open('x','w').write('1')", "attribute access"),
    ("open('PWNED', 'w')", "unknown function 'open'"),
    ("eval('1')", "unknown function 'eval'"),
    ("exec('import os')", "unknown function 'exec'"),
    ("globals()", "unknown function 'globals'"),
    ("getattr(z, 'x')", "unknown function 'getattr'"),
    ("__builtins__", "unknown variable '__builtins__'"),
    ("z.__class__.__mro__", "attribute access"),
    ("().__class__", "attribute access"),
    ("[].__class__.__base__.__subclasses__()", "attribute access"),
    ("exp.__globals__", "attribute access"),
    ("z.real", "attribute access"),
    ("(lambda: 0)()", "lambda"),
    ("lambda: 1", "lambda"),
    ("[c for c in ()]", "comprehensions"),
    ("(c for c in ())", "comprehensions"),
    ("z[0]", "subscripts"),
    ("z(1)", "not a function"),
    ("exp(z)(1)", "only named functions"),
    # other Python syntax
    ("'abc'", "strings"),
    ("b'x'", "bytes"),
    ("f'{z}'", "f-strings"),
    ("1j", "complex numbers"),
    ("None", "not a number"),
    ("True", "not a number"),
    ("...", "not a number"),
    ("x", "unknown variable 'x'"),
    ("z if z else 1", "conditional"),
    ("z and 1", "boolean"),
    ("z or 1", "boolean"),
    ("z < 1", "comparisons"),
    ("z is 1", "comparisons"),
    ("z @ z", "operator @"),
    ("z // 2", "operator //"),
    ("z % 2", "operator %"),
    ("z ^ 2", "use ** for powers"),
    ("z << 2", "operator <<"),
    ("~z", "operator ~"),
    ("not z", "'not'"),
    ("(z := 1)", "assignment"),
    ("await z", "await"),
    ("*z", "syntax error"),
    ("{z}", "sets"),
    ("{z: 1}", "dicts"),
    ("[z]", "lists"),
    ("(z, z)", "tuples"),
    ("z,", "tuples"),
    ("max(*[z])", "starred"),
    ("exp(z, 1)", "exactly 1 argument"),
    ("exp()", "exactly 1 argument"),
    ("max(z)", "at least 2 arguments"),
    ("log(z, base=2)", "keyword arguments"),
    ("exp(**{})", "keyword arguments"),
    # malformed text
    ("(", "syntax error"),
    ("z +", "syntax error"),
    ("z; import os", "syntax error"),
    ("yield z", "syntax error"),
    ("", "empty"),
    ("   ", "empty"),
    ("z\nimport os", "non-printable"),
    ("z\t+ 1", "non-printable"),
    ("z\x00", "non-printable"),
    ("z\u202e+1", "non-printable"),          # right-to-left override (Trojan Source)
    ("z\u200b", "non-printable"),            # zero-width space
    ("\u00a0z", "non-printable"),            # no-break space
    (None, "expected a string"),
    (42, "expected a string"),
    (b"z", "expected a string"),
    (["z"], "expected a string"),
    # look-alikes: ast.parse normalises identifiers (NFKC), the whitelist sees the result
    ("ｅｘｅｃ('1')", "unknown function 'exec'"),
    ("ᵉval('1')", "unknown function 'eval'"),
    ("ｚ.__class__", "attribute access"),
    ("_\uff3fimport__('os')", "unknown function '__import__'"),
    # resource exhaustion
    ("(" * 10000, "too long"),
    ("1" * 501, "too long"),
    ("1" * 500, "too large"),
    ("(" * 60 + "z" + ")" * 60, "nested too deeply"),
    ("-" * 400 + "z", "nested too deeply"),
    ("+".join(["z"] * 60), "nested too deeply"),
    ("9**9**9", "exponent"),
    ("9**9**9**9", "exponent"),
    ("10**10**10", "exponent"),
    ("2**(2**100)", "exponent"),
    ("10**-1000", "exponent"),
    ("z**1000", "exponent"),
    ("z**-65", "exponent"),
    ("(z**64)**64", "exponent"),
    ("z**64*z**64", "exponent"),
    ("e**(1000*log(z))", "exponent"),
    ("exp(1000*log(2*z))", "log"),
    ("2**(10**6*10**6*log(3*z)/log(2))", "log"),
    ("(10**6)**64", "too large"),
    ("1e6**64", "too large"),
    ("((z*1e6)**64)**64", "too large"),
    ("1e400", "too large"),
    ("1e308*10", "too large"),
    ("1e" + "9" * 400, "too large"),
    ("1e-200", "too small"),
    ("0.1234567890123456789012345678901", "significant digits"),
    # exp of a constant: estimated with floats like any constant; refused above 1e100
    ("exp(exp(exp(exp(exp(exp(1000))))))", "too large"),
    ("exp(1000)", "too large"),
    ("exp(-1000)", "too small"),
    ("sigmoid(-1000)", "too large"),
    ("cosh(1000)", "too large"),
    ("sinh(sinh(sinh(10)))", "too large"),
    ("max(z, z, z, z, z, z, z, z, z)", "too many max/min"),
    ("(z+z**2+z**3+z**4+z**5)**64", "multiplied out"),
    # undefined or complex values
    ("1/0", "division by zero"),
    ("z/(1-1)", "division by zero"),
    ("1/(0.1+0.2-0.3)", "division by zero"),
    ("0**-1", "division by zero"),
    ("log(0)", "undefined"),
    ("log(-1)", "undefined"),
    ("sqrt(-1)", "not a real number"),
    ("(-1)**0.5", "not a real number"),
    ("(-8)**(1/3)", "not a real number"),
    ("(-2)**z", "negative base"),
    ("sqrt(-z**2)", "complex"),
    ("max(log(-atan(0.5)**(2*z)), z)", "real-valued"),
]
PAYLOADS = [payload for payload, _ in HOSTILE]
VALID = ["z*tanh(log(1+exp(z)))", "max(0,z)", "0.01*z", "sigmoid(z)", "erf(z/sqrt(2))",
         "softplus(z) - log(2)", "Heaviside(z)*z", "(z+1)**64"]


def _ids(values):
    return [repr(value)[:40] for value in values]


@pytest.mark.parametrize("payload, reason", HOSTILE, ids=_ids(PAYLOADS))
def test_hostile_input_is_refused_quickly_with_a_one_line_reason(payload, reason):
    start = time.process_time()  # CPU time of this process: a busy machine does not count
    with pytest.raises(ExpressionError) as caught:
        parse_expression(payload, ACTIVATION, what="activation")
    cpu = time.process_time() - start
    message = str(caught.value)
    assert cpu < 1.0, f"refusal took {cpu:.2f} s of CPU time"
    assert len(message.splitlines()) == 1 and "\n" not in message and "\r" not in message
    assert message.startswith("invalid activation")
    assert reason in message
    assert "; accepted: numbers, variable z," in message


@contextmanager
def watched_calls():
    """Wrap every function that would execute user text; parsing may call none of them
    (compile only through ast.parse, i.e. with PyCF_ONLY_AST). A context manager rather
    than a fixture, so that pytest's own imports (which exec module code) stay outside."""
    targets = ["builtins.eval", "builtins.exec", "builtins.compile", "sympy.sympify",
               "sympy.core.sympify.sympify", "sympy.parse_expr",
               "sympy.parsing.sympy_parser.parse_expr", "os.system", "os.popen", "subprocess.Popen"]
    with ExitStack() as stack:
        watched = {}
        for target in targets:
            # import_module: the attribute sympy.core.sympify is the function, not the module
            module_name, _, name = target.rpartition(".")
            module = importlib.import_module(module_name)
            watched[target] = stack.enter_context(
                mock.patch.object(module, name, wraps=getattr(module, name)))
        yield watched


def _compile_flags(call) -> int:
    args, kwargs = call
    return args[3] if len(args) > 3 else kwargs.get("flags", 0)


@pytest.mark.parametrize("payload", PAYLOADS + VALID, ids=_ids(PAYLOADS + VALID))
def test_parsing_executes_nothing_and_touches_no_files(payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with watched_calls() as calls:
        try:
            parse_expression(payload, ACTIVATION)
        except ExpressionError:
            pass
    assert list(tmp_path.iterdir()) == []
    assert not (tmp_path / "PWNED").exists()
    for name, watched in calls.items():
        if name == "builtins.compile":
            assert all(_compile_flags(call) & ast.PyCF_ONLY_AST for call in watched.call_args_list)
        elif "sympify" in name:
            # SymPy may sympify its own objects; a string argument would be user text.
            assert not any(isinstance(arg, str) for call in watched.call_args_list
                           for arg in (*call.args, *call.kwargs.values()))
        else:
            assert not watched.called, f"{name} was called"


def test_valid_input_goes_through_ast_parse_only():
    with watched_calls() as calls:
        parse_expression("z*tanh(log(1+exp(z)))", ACTIVATION)
    compiles = calls["builtins.compile"].call_args_list
    assert compiles and all(_compile_flags(call) & ast.PyCF_ONLY_AST for call in compiles)


# Arbitrary text and token soup: the only possible outcomes are a SymPy expression or an
# ExpressionError with a one-line message, within a second of CPU time.
TOKENS = ["z", "x", "e", "pi", "exp", "log", "max", "sigmoid", "__import__", "__class__", "os",
          "(", ")", "[", "]", ",", ".", "+", "-", "*", "/", "**", "//", "%", "^", "=", ":", ";",
          "lambda", "if", "else", "for", "in", "not", "'s'", "0", "1", "64", "1e6", "0.5", " "]


def _check_outcome(text):
    start = time.process_time()
    try:
        result = parse_expression(text, ACTIVATION)
    except ExpressionError as error:
        assert len(str(error).splitlines()) == 1
    else:
        assert isinstance(result, sympy.Expr)
        assert result.free_symbols <= {z}
    assert time.process_time() - start < 1.0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_token_soup_is_parsed_or_refused_cleanly(text):
    _check_outcome(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_is_parsed_or_refused_cleanly(text):
    _check_outcome(text)
