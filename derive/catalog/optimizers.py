"""Optimizers: torch.optim's definitions, one entry each, as SymPy assignments.

An entry states what one step does to one parameter array θ, in the order torch.optim does it
(`torch/optim/sgd.py`, `adagrad.py`, `rmsprop.py`, `adam.py`; `_single_tensor_*`), with torch's
hyper-parameter names and defaults and its state names. These are definitions, like the formula of
an activation: `derive.training` derives what they imply (the momentum buffer as a weighted sum of
past gradients, Adam's bias correction …), `codegen_training` prints them as NumPy code, and the
tests compare that code with torch.optim step by step.

`resolve_optimizer` parses the command-line text `NAME[:key=value,…]` into an `OptimizerChoice`
(plain data, kept in the spec) with one-line errors for every mistake.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import sympy as sp

from derive.errors import DeriveError
from derive.notation import LEARNING_RATE
from derive.spec import OptimizerChoice, split_top_level
from derive.notation import GRAD, GRADIENT, STEP, THETA, symbol

# --------------------------------------------------------------------------------------------------
# hyper-parameters

# ranges a hyper-parameter may take: (test, text for messages)
RANGES = {
    "nonnegative": (lambda x: x >= 0, "[0, ∞)"),
    "unit": (lambda x: 0 <= x < 1, "[0, 1)"),
    "open_unit": (lambda x: 0 < x < 1, "(0, 1)"),
    "closed_unit": (lambda x: 0 <= x <= 1, "[0, 1]"),
}


@dataclass(frozen=True)
class Hyper:
    """One hyper-parameter: torch's keyword, its default, its kind and allowed range, its symbols.

    kind "real" is a number, "flag" a boolean, "pair" two numbers (torch's `betas`, also accepted
    as `beta1`/`beta2` on the command line).
    """

    name: str
    default: float | bool | tuple[float, float]
    symbols: tuple[sp.Symbol, ...]
    kind: str = "real"
    range: str = "nonnegative"
    torch_default: float | bool | tuple[float, float] | None = None  # when derive's default differs
    init_only: bool = False  # used only when the state is created (Adagrad's initial accumulator)

    @property
    def component_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.symbols) if self.kind == "pair" else (self.name,)


@dataclass(frozen=True)
class StateVar:
    """One state array per parameter, named as in torch's `optimizer.state[p]`."""

    name: str  # torch's state key, also the key in the generated `init_state`
    symbol: sp.Symbol
    initial: sp.Expr = sp.S.Zero  # value when the state is created (may be a hyper-parameter)


@dataclass(frozen=True)
class Assign:
    """target ← value, executed in order; a top-level Piecewise is a case distinction (if/else)."""

    target: sp.Symbol
    value: sp.Expr


@dataclass(frozen=True)
class Optimizer:
    name: str
    title: str
    torch_class: str  # e.g. "torch.optim.Adam"
    hypers: tuple[Hyper, ...]
    state: tuple[StateVar, ...]
    build: Callable[[], tuple[Assign, ...]]  # the assignments; built on first use (only one optimizer runs)
    facts: tuple[str, ...]  # derivations of `derive.training` that apply to this optimizer
    torch_fixed: tuple[tuple[str, object], ...] = ()  # torch keywords this entry fixes

    @property
    def equations(self) -> tuple[Assign, ...]:
        """One step, in torch.optim's order: the catalog's definition of the optimizer."""
        return _built(self.build)

    def hyper(self, name: str) -> Hyper:
        return next(h for h in self.hypers if h.name == name)

    def values(self, choice: OptimizerChoice) -> dict[str, object]:
        """Every hyper-parameter's value: the user's where given, otherwise the default."""
        given = dict(choice.overrides)
        return {h.name: given.get(h.name, h.default) for h in self.hypers}

    def symbol_values(self, choice: OptimizerChoice) -> dict[sp.Symbol, object]:
        out = {}
        for h in self.hypers:
            value = self.values(choice)[h.name]
            for sym, v in zip(h.symbols, value if h.kind == "pair" else (value,)):
                out[sym] = v
        return out

    def torch_kwargs(self, values: dict[str, object]) -> dict[str, object]:
        """Keyword arguments of `torch_class` that define the same optimizer."""
        return {**{k: (tuple(v) if isinstance(v, tuple) else v) for k, v in values.items()}, **dict(self.torch_fixed)}


# --------------------------------------------------------------------------------------------------
# symbols (code names are torch's)

MOMENTUM = symbol("momentum", r"\mu", coefficient=True, nonnegative=True)
DAMPENING = symbol("dampening", r"\tau", coefficient=True, nonnegative=True)
WEIGHT_DECAY = symbol("weight_decay", r"\lambda", coefficient=True, nonnegative=True)
EPS = symbol("eps", r"\epsilon", coefficient=True, nonnegative=True)
ALPHA = symbol("alpha", r"\alpha", coefficient=True, nonnegative=True)
BETA1 = symbol("beta1", r"\beta_{1}", coefficient=True, nonnegative=True)
BETA2 = symbol("beta2", r"\beta_{2}", coefficient=True, nonnegative=True)
LR_DECAY = symbol("lr_decay", r"\gamma", coefficient=True, nonnegative=True)
INITIAL_ACCUMULATOR = symbol("initial_accumulator_value", r"G_{0}", nonnegative=True)
CENTERED = symbol("centered", r"\mathrm{centered}")
AMSGRAD = symbol("amsgrad", r"\mathrm{amsgrad}")

BUFFER = symbol("buf", "u", "buf", real=True)  # b is a bias
SUM = symbol("state_sum", "G", "state_sum", nonnegative=True)
SQUARE_AVG = symbol("square_avg", "v", "square_avg", nonnegative=True)
GRAD_AVG = symbol("grad_avg", r"\bar{g}", "grad_avg", real=True)
EXP_AVG = symbol("exp_avg", "m", "exp_avg", real=True)
EXP_AVG_SQ = symbol("exp_avg_sq", "v", "exp_avg_sq", nonnegative=True)
MAX_EXP_AVG_SQ = symbol("max_exp_avg_sq", r"v^{\max}", "max_exp_avg_sq", nonnegative=True)
DENOMINATOR = symbol("avg", "d", "avg", positive=True)
M_HAT = symbol("m_hat", r"\hat{m}", "m_hat", real=True)
V_HAT = symbol("v_hat", r"\hat{v}", "v_hat", nonnegative=True)

LR = Hyper("lr", 1e-3, (LEARNING_RATE,))
# torch.optim.SGD's default step, 0.001, barely moves these networks: on scikit-learn's 8×8 digits
# (5 epochs, minibatches of 32, 3 seeds) the sigmoid MLP, the relu + softmax MLP and the default CNN
# stay near chance (9 %, 16 %, 17 % test accuracy). At 0.1 they reach 50 %, 96 % and 74 % (the
# sigmoid 89 % after 20 epochs); at 1 the relu + softmax MLP diverges. Momentum 0.9 multiplies the
# step by about 10, so its default is 0.01 (47 %, 95 % on the two MLPs).
LR_SGD = Hyper("lr", 0.1, (LEARNING_RATE,), torch_default=1e-3)
LR_MOMENTUM = Hyper("lr", 0.01, (LEARNING_RATE,), torch_default=1e-3)
WD = Hyper("weight_decay", 0.0, (WEIGHT_DECAY,))
EPS_ADAM = Hyper("eps", 1e-8, (EPS,))
BETAS = Hyper("betas", (0.9, 0.999), (BETA1, BETA2), kind="pair", range="unit")
AMS = Hyper("amsgrad", False, (AMSGRAD,), kind="flag")

t, eta, g, theta, grad = STEP, LEARNING_RATE, GRADIENT, THETA, GRAD
L2 = Assign(g, grad + WEIGHT_DECAY * theta)  # torch's weight_decay: g ← ∇C̄ + λθ


@cache
def _built(build: Callable[[], tuple[Assign, ...]]) -> tuple[Assign, ...]:
    return build()


def _sgd() -> tuple[Assign, ...]:
    return (L2, Assign(theta, theta - eta * g))


def _momentum() -> tuple[Assign, ...]:
    return (L2, Assign(BUFFER, sp.Piecewise((g, sp.Eq(t, 1)), (MOMENTUM * BUFFER + (1 - DAMPENING) * g, True))),
            Assign(theta, theta - eta * BUFFER))


def _nesterov() -> tuple[Assign, ...]:
    return (L2, Assign(BUFFER, sp.Piecewise((g, sp.Eq(t, 1)), (MOMENTUM * BUFFER + g, True))),
            Assign(theta, theta - eta * (g + MOMENTUM * BUFFER)))


def _adagrad() -> tuple[Assign, ...]:
    return (L2, Assign(SUM, SUM + g**2),
            Assign(theta, theta - eta / (1 + (t - 1) * LR_DECAY) * g / (sp.sqrt(SUM) + EPS)))


def _rmsprop() -> tuple[Assign, ...]:
    return (L2, Assign(SQUARE_AVG, ALPHA * SQUARE_AVG + (1 - ALPHA) * g**2),
            Assign(GRAD_AVG, sp.Piecewise((ALPHA * GRAD_AVG + (1 - ALPHA) * g, CENTERED), (GRAD_AVG, True))),
            Assign(DENOMINATOR, sp.Piecewise((sp.sqrt(SQUARE_AVG - GRAD_AVG**2) + EPS, CENTERED),
                                             (sp.sqrt(SQUARE_AVG) + EPS, True))),
            Assign(BUFFER, MOMENTUM * BUFFER + g / DENOMINATOR),
            Assign(theta, theta - eta * BUFFER))


def _adam() -> tuple[Assign, ...]:
    return (L2,) + _adam_moments()


def _adamw() -> tuple[Assign, ...]:
    return (Assign(theta, theta * (1 - eta * WEIGHT_DECAY)), Assign(g, grad)) + _adam_moments()


def _adam_moments() -> tuple[Assign, ...]:
    return (
        Assign(EXP_AVG, BETA1 * EXP_AVG + (1 - BETA1) * g),
        Assign(EXP_AVG_SQ, BETA2 * EXP_AVG_SQ + (1 - BETA2) * g**2),
        Assign(MAX_EXP_AVG_SQ, sp.Piecewise((sp.Max(MAX_EXP_AVG_SQ, EXP_AVG_SQ), AMSGRAD), (MAX_EXP_AVG_SQ, True))),
        Assign(M_HAT, EXP_AVG / (1 - BETA1**t)),
        Assign(V_HAT, sp.Piecewise((MAX_EXP_AVG_SQ / (1 - BETA2**t), AMSGRAD), (EXP_AVG_SQ / (1 - BETA2**t), True))),
        Assign(theta, theta - eta * M_HAT / (sp.sqrt(V_HAT) + EPS)),
    )


_ADAM_STATE = (StateVar("exp_avg", EXP_AVG), StateVar("exp_avg_sq", EXP_AVG_SQ), StateVar("max_exp_avg_sq", MAX_EXP_AVG_SQ))

OPTIMIZERS: dict[str, Optimizer] = {
    o.name: o
    for o in (
        Optimizer(
            "sgd", "stochastic gradient descent", "torch.optim.SGD",
            (LR_SGD, WD), (), _sgd,
            ("weight_decay",),
        ),
        Optimizer(
            "momentum", "stochastic gradient descent with momentum", "torch.optim.SGD",
            (LR_MOMENTUM, Hyper("momentum", 0.9, (MOMENTUM,), range="open_unit", torch_default=0.0),
             Hyper("dampening", 0.0, (DAMPENING,), range="closed_unit"), WD),
            (StateVar("momentum_buffer", BUFFER),), _momentum,
            ("weight_decay", "momentum_sum"),
        ),
        Optimizer(
            "nesterov", "stochastic gradient descent with Nesterov momentum", "torch.optim.SGD",
            (LR_MOMENTUM, Hyper("momentum", 0.9, (MOMENTUM,), range="open_unit", torch_default=0.0), WD),
            (StateVar("momentum_buffer", BUFFER),), _nesterov,
            ("weight_decay", "momentum_sum", "nesterov_direction"),
            torch_fixed=(("nesterov", True),),
        ),
        Optimizer(
            "adagrad", "Adagrad", "torch.optim.Adagrad",
            (Hyper("lr", 1e-2, (LEARNING_RATE,)), Hyper("lr_decay", 0.0, (LR_DECAY,)), WD,
             Hyper("initial_accumulator_value", 0.0, (INITIAL_ACCUMULATOR,), init_only=True),
             Hyper("eps", 1e-10, (EPS,))),
            (StateVar("sum", SUM, INITIAL_ACCUMULATOR),), _adagrad,
            ("weight_decay", "adagrad_sum"),
        ),
        Optimizer(
            "rmsprop", "RMSprop", "torch.optim.RMSprop",
            (Hyper("lr", 1e-2, (LEARNING_RATE,)), Hyper("alpha", 0.99, (ALPHA,), range="unit"),
             Hyper("eps", 1e-8, (EPS,)), WD, Hyper("momentum", 0.0, (MOMENTUM,), range="unit"),
             Hyper("centered", False, (CENTERED,), kind="flag")),
            (StateVar("square_avg", SQUARE_AVG), StateVar("grad_avg", GRAD_AVG), StateVar("momentum_buffer", BUFFER)),
            _rmsprop,
            ("weight_decay", "rmsprop_average"),
        ),
        Optimizer(
            "adam", "Adam", "torch.optim.Adam",
            (LR, BETAS, EPS_ADAM, WD, AMS), _ADAM_STATE, _adam,
            ("weight_decay", "adam_bias_correction", "adam_first_step"),
        ),
        Optimizer(
            "adamw", "AdamW (Adam with decoupled weight decay)", "torch.optim.AdamW",
            (LR, BETAS, EPS_ADAM, Hyper("weight_decay", 1e-2, (WEIGHT_DECAY,)), AMS), _ADAM_STATE, _adamw,
            ("decoupled_weight_decay", "adam_bias_correction", "adam_first_step"),
        ),
    )
}

DEFAULT_OPTIMIZER = "sgd"


# --------------------------------------------------------------------------------------------------
# the command-line text NAME[:key=value,…]

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_OPTION = "--optimizer"


def _error(message: str) -> DeriveError:
    return DeriveError(f"invalid value for {_OPTION}: {message}")


def _accepted_keys(opt: Optimizer) -> str:
    names = []
    for h in opt.hypers:
        names.append(f"{h.name} (or {', '.join(h.component_names)})" if h.kind == "pair" else h.name)
    return ", ".join(names)


def _number(key: str, raw: str) -> float:
    text = raw.strip()
    if not _NUMBER.fullmatch(text):
        raise _error(f"{key}={raw!r} is not a number; expected a decimal number such as 0.01 or 1e-3")
    value = float(text)
    if not math.isfinite(value):
        raise _error(f"{key}={raw!r} is not a finite number")
    return value + 0.0  # -0.0 → 0.0


def _flag(key: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise _error(f"{key}={raw!r} is not a boolean; expected true or false")


def _check_range(opt: Optimizer, key: str, value: float, range_name: str, raw: str) -> None:
    test, text = RANGES[range_name]
    if test(value):
        return
    if key == "lr" and value < 0:
        raise _error(f"lr={raw} is a negative learning rate; expected lr >= 0")
    raise _error(f"{key}={raw} is outside {text}; {opt.name} accepts {key} in {text}")


def resolve_optimizer(text: str | None) -> OptimizerChoice:
    """Parse `NAME[:key=value,…]`; values equal to the defaults are dropped (one spelling per choice)."""
    if text is None:
        return OptimizerChoice(DEFAULT_OPTIMIZER)
    raw = str(text).strip()
    name, colon, rest = raw.partition(":")
    key = name.strip().lower()
    if key not in OPTIMIZERS:
        shown = name.strip() if name.strip() else raw
        raise _error(f"unknown optimizer {shown!r}; accepted: {', '.join(OPTIMIZERS)}")
    opt = OPTIMIZERS[key]
    given: dict[str, object] = {}
    if colon:
        if not rest.strip():
            raise _error(f"{raw!r} has nothing after ':'; expected {key}:key=value,… with keys {_accepted_keys(opt)}")
        for item in split_top_level(rest):
            _parse_item(opt, item, raw, given)
    values = []
    for h in opt.hypers:
        if h.kind == "pair":
            parts = [given.get(c) for c in h.component_names]
            if all(p is None for p in parts):
                continue
            value = tuple(p if p is not None else d for p, d in zip(parts, h.default))
        elif h.name in given:
            value = given[h.name]
        else:
            continue
        if value != h.default:
            values.append((h.name, value))
    return OptimizerChoice(key, tuple(values))


def _parse_item(opt: Optimizer, item: str, raw: str, given: dict) -> None:
    """One key=value; `given` maps a hyper-parameter (or a component of a pair) to its value."""
    if not item.strip():
        raise _error(f"{raw!r} contains an empty item")
    name, eq, value = item.partition("=")
    name = name.strip().lower()
    if not eq:
        raise _error(f"{item.strip()!r} in {raw!r} is not key=value; keys for {opt.name}: {_accepted_keys(opt)}")
    by_component = {c: h for h in opt.hypers if h.kind == "pair" for c in h.component_names}
    hyper = next((h for h in opt.hypers if h.name == name), None) or by_component.get(name)
    if hyper is None:
        elsewhere = [o.name for o in OPTIMIZERS.values() if any(name in (h.name, *h.component_names) for h in o.hypers)]
        hint = f" ({name} belongs to {', '.join(elsewhere)})" if elsewhere else ""
        raise _error(f"unknown hyper-parameter {name!r} for {opt.name}; accepted: {_accepted_keys(opt)}{hint}")
    slots = hyper.component_names if (hyper.kind == "pair" and name == hyper.name) else (name,)
    if any(slot in given for slot in slots):
        raise _error(f"{name!r} is given more than once in {raw!r}")
    if hyper.kind == "flag":
        given[name] = _flag(name, value)
    elif hyper.kind == "pair" and name == hyper.name:
        inner = value.strip()
        parts = inner[1:-1].split(",") if inner.startswith("(") and inner.endswith(")") else []
        if len(parts) != 2:
            raise _error(f"{name}={value.strip()!r} is not a pair; expected {name}=(0.9,0.999) "
                         f"or {' and '.join(hyper.component_names)} separately")
        for component, part in zip(hyper.component_names, parts):
            number = _number(component, part)
            _check_range(opt, component, number, hyper.range, part.strip())
            given[component] = number
    else:
        number = _number(name, value)
        _check_range(opt, name, number, hyper.range, value.strip())
        given[name] = number


def optimizer_of(choice: OptimizerChoice) -> Optimizer:
    return OPTIMIZERS[choice.name]


def format_value(value: object) -> str:
    """Hyper-parameter values as the command line and the documents write them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "(" + ",".join(format_value(v) for v in value) + ")"
    return repr(float(value))


def choice_text(choice: OptimizerChoice) -> str:
    """The shortest --optimizer text that gives this choice (pairs as their components: no shell quoting)."""
    opt = optimizer_of(choice)
    items = []
    for name, value in choice.overrides:
        hyper = opt.hyper(name)
        if hyper.kind == "pair":
            items += [f"{c}={format_value(v)}" for c, v, d in zip(hyper.component_names, value, hyper.default) if v != d]
        else:
            items.append(f"{name}={format_value(value)}")
    return choice.name + (":" + ",".join(items) if items else "")
