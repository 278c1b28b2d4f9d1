"""The user's choices as frozen dataclasses, validated with one-line errors. No SymPy here.

A spec says *what* to derive; names of activations and losses are resolved against the catalog by
`model.build_model`. Everything the CLI accepts is checked here or there before anything is written.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from derive.errors import DeriveError

MAX_LAYERS = 128
MAX_PENALTY = Decimal(1000)
MAX_UNITS = 100_000
FORMATS = ("md", "tex", "py", "json", "pdf", "html", "ipynb")
# written when --format is not given: the quick text formats; pdf (needs TeX), html and ipynb (needs
# the notebook extra) are written on request
DEFAULT_FORMATS = ("md", "tex", "py", "json")
# document languages: one message catalog each in derive/locale/<code>.toml
LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"
# how much of the derivation a document prints (see derive.detail): the verification is the same for all
DETAILS = ("summary", "lesson", "full")
DEFAULT_DETAIL = "lesson"
DEFAULT_INPUT_SIZE = 4
DEFAULT_HIDDEN_SIZE = 5
DEFAULT_OUTPUT_SIZE = 3


@dataclass(frozen=True)
class OptimizerChoice:
    """--optimizer NAME[:key=value,…]: a name of the optimizer catalog and the hyper-parameters the
    user set to values other than the defaults (validated by `catalog.optimizers.resolve_optimizer`)."""

    name: str = "sgd"
    overrides: tuple[tuple[str, object], ...] = ()

    def slug(self) -> str:
        """'' for the default optimizer, else '-adam', '-adam-lr0.01', '-adam-betas0.8_0.99'."""
        if self.name == "sgd" and not self.overrides:
            return ""
        parts = [self.name]
        for key, value in self.overrides:
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, tuple):
                text = "_".join(repr(float(v)) for v in value)
            else:
                text = repr(float(value))
            parts.append(f"{key}{text}")
        return "-" + "-".join(parts)


@dataclass(frozen=True)
class MLPSpec:
    """A multilayer perceptron: L weight layers, an activation per layer, a loss, layer sizes."""

    layers: int
    activations: tuple[str, ...]  # one per weight layer 1…L; the last is the output activation
    loss: str
    sizes: tuple[int, ...]  # n_0 … n_L
    formats: tuple[str, ...] = DEFAULT_FORMATS
    lang: str = DEFAULT_LANGUAGE  # language of the documents' prose; formulas are the same in every one
    optimizer: OptimizerChoice = OptimizerChoice()
    l2: str | None = None  # λ₂ of the penalty (λ₂/2) Σ W², as canonical decimal text
    l1: str | None = None  # λ₁ of the penalty λ₁ Σ |W|
    penalise_bias: bool = False  # the penalties also cover the biases
    detail: str = DEFAULT_DETAIL  # how much the documents print: summary, lesson or full

    @property
    def regularised(self) -> bool:
        return self.l2 is not None or self.l1 is not None

    @property
    def hidden_activations(self) -> tuple[str, ...]:
        return self.activations[:-1]

    @property
    def output_activation(self) -> str:
        return self.activations[-1]

    def slug(self) -> str:
        """Folder name under outputs/: mlp-L3-sigmoid-sigmoid-mse.

        At most MAX_SLUG characters: a part longer than MAX_SLUG_PART (the sizes of a deep network,
        many different activations) is named by a short hash of its text ('sizes_1f2e3d4c'), and a
        name still too long keeps its beginning and ends in a hash of the whole.
        """
        hidden = "-".join(dict.fromkeys(map(slug_part, self.hidden_activations))) if self.hidden_activations else "none"
        parts = ["mlp", f"L{self.layers}", _short(hidden, "acts"), slug_part(self.output_activation), slug_part(self.loss)]
        if self.sizes != default_sizes(self.layers):
            parts.append(_short("x".join(map(str, self.sizes)), "sizes"))
        parts += [f"{name}_{value}" for name, value in (("l2", self.l2), ("l1", self.l1)) if value is not None]
        if self.penalise_bias:
            parts.append("bias")
        if self.lang != DEFAULT_LANGUAGE:
            parts.append(self.lang)
        if self.detail != DEFAULT_DETAIL:
            parts.append(self.detail)
        text = "-".join(parts) + self.optimizer.slug()
        if len(text) > MAX_SLUG:  # whole parts up to the limit, then a hash of the whole name
            head = text[: MAX_SLUG - 12]
            text = head[: head.rfind("-") + 1] + _digest(text, 12)
        return text


MAX_SLUG = 120  # characters of a default folder name (file systems allow 255 bytes)
MAX_SLUG_PART = 40


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _short(part: str, label: str) -> str:
    """`part`, or `label_` and a hash of it when it is longer than MAX_SLUG_PART."""
    return part if len(part) <= MAX_SLUG_PART else f"{label}_{_digest(part, 8)}"


@dataclass(frozen=True)
class LayerSpec:
    """One `[[layers]]` table of a network file, read and checked (see `derive.netfile`)."""

    kind: str  # a registered layer kind
    options: tuple[tuple[str, object], ...] = ()  # the kind's own options, read by the kind
    name: str | None = None  # what later layers call its output (`input = "h1"`, `from = "h1"`)
    input: str | None = None  # the layer it reads; None: the previous one
    skip: str | None = None  # `from`: the second output a two-input kind (add) reads
    activation: str | None = None  # applied to its output (a layer whose output is a pre-activation)


@dataclass(frozen=True)
class NetSpec:
    """A network described by a file (`derive net FILE.toml`): its layers in order, the loss and
    training choices, and what to write."""

    path: str  # the file as given on the command line (for messages and the command shown)
    input_units: int | tuple[int, ...]  # a vector's units, or [channels, positions] / [channels, rows, columns]
    layers: tuple[LayerSpec, ...]
    loss: str = "mse"
    formats: tuple[str, ...] = DEFAULT_FORMATS
    lang: str = DEFAULT_LANGUAGE
    optimizer: OptimizerChoice = OptimizerChoice()
    l2: str | None = None
    l1: str | None = None
    penalise_bias: bool = False
    text: str = ""  # the file's content, quoted in the documents
    detail: str = DEFAULT_DETAIL  # how much the documents print (a chain of dense layers: all three levels)

    @property
    def regularised(self) -> bool:
        return self.l2 is not None or self.l1 is not None

    def slug(self) -> str:
        """Folder name under outputs/: net-residual_mlp (from the file name)."""
        stem = re.sub(r"[^a-z0-9_.-]+", "_", self.path.replace("\\", "/").rsplit("/", 1)[-1].lower())
        stem = stem.removesuffix(".toml") or "network"
        parts = ["net", stem[:60]]
        if self.lang != DEFAULT_LANGUAGE:
            parts.append(self.lang)
        if self.detail != DEFAULT_DETAIL:
            parts.append(self.detail)
        return "-".join(parts) + self.optimizer.slug()


_SLUG_SAFE = re.compile(r"[a-z0-9_.:]+")


def slug_part(text: str) -> str:
    """A catalog choice as a folder-name part ('leaky_relu:0.2' → 'leaky_relu_0.2'); a user-written
    expression as 'custom_' and a short hash of its text (deterministic, safe on every file system)."""
    if _SLUG_SAFE.fullmatch(text):
        return text.replace(":", "_")
    return "custom_" + _digest(text, 8)


def parse_layers(text: str | int) -> int:
    """--layers: a whole number from 1 to MAX_LAYERS."""
    raw = str(text).strip()
    try:
        value = int(raw)
    except ValueError:
        raise DeriveError(
            f"invalid value for --layers: {raw!r} is not a whole number; expected 1 to {MAX_LAYERS} weight layers"
        ) from None
    if not 1 <= value <= MAX_LAYERS:
        raise DeriveError(f"invalid value for --layers: {value}; expected 1 to {MAX_LAYERS} weight layers")
    return value


def default_sizes(layers: int) -> tuple[int, ...]:
    return (DEFAULT_INPUT_SIZE,) + (DEFAULT_HIDDEN_SIZE,) * (layers - 1) + (DEFAULT_OUTPUT_SIZE,)


def parse_sizes(text: str | None, layers: int) -> tuple[int, ...]:
    """--sizes n0,n1,…,nL: L+1 positive whole numbers."""
    if text is None:
        return default_sizes(layers)
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != layers + 1:
        raise DeriveError(
            f"invalid value for --sizes: {text!r} has {len(parts)} number{'s' if len(parts) != 1 else ''}; "
            f"--layers {layers} needs {layers + 1} (n0,n1,…,n{layers})"
        )
    sizes = []
    for p in parts:
        if not p.isdigit() or not 1 <= int(p) <= MAX_UNITS:
            raise DeriveError(f"invalid value for --sizes: {p!r} in {text!r}; expected whole numbers from 1 to {MAX_UNITS}")
        sizes.append(int(p))
    return tuple(sizes)


def parse_formats(text: str | None, accepted: tuple[str, ...] = FORMATS,
                  default: tuple[str, ...] = DEFAULT_FORMATS) -> tuple[str, ...]:
    """--format md,tex,…: a non-empty comma-separated subset of the accepted formats, in canonical order."""
    if text is None:
        return default
    names = [p.strip().lower() for p in str(text).split(",")]
    if not any(names) or any(not n for n in names):
        raise DeriveError(f"invalid value for --format: {text!r} is empty; accepted: {', '.join(accepted)}")
    for n in names:
        if n not in accepted:
            raise DeriveError(f"invalid value for --format: unknown format {n!r}; accepted: {', '.join(accepted)}")
    return tuple(f for f in accepted if f in names)


def parse_detail(text: str | None) -> str:
    """--detail: how much of the derivation the documents print."""
    return _choice("--detail", text, DETAILS, DEFAULT_DETAIL)


def _choice(option: str, text: str | None, accepted: tuple[str, ...], default: str) -> str:
    """One of a fixed set of words (any case, spaces around ignored), or the default when not given."""
    if text is None:
        return default
    name = str(text).strip().lower()
    if name not in accepted:
        raise DeriveError(f"invalid value for {option}: {text!r}; accepted: {', '.join(accepted)}")
    return name


def parse_lang(text: str | None) -> str:
    """--lang: one of the languages that have a message catalog."""
    return _choice("--lang", text, LANGUAGES, DEFAULT_LANGUAGE)


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses, so `max(0,z),tanh` is two items."""
    items, depth, current = [], 0, []
    for ch in str(text):
        if ch == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
            continue
        depth += {"(": 1, ")": -1}.get(ch, 0)
        current.append(ch)
    items.append("".join(current).strip())
    return items


def parse_activation_list(text: str, layers: int) -> tuple[str, ...]:
    """--act: one activation for every hidden layer, or one per hidden layer separated by commas.

    Returns one entry per hidden layer (none when L = 1) plus, last, the activation that
    --out-act defaults to for a loss without a preferred output activation.
    """
    names = split_top_level(text)
    if any(not n for n in names):
        raise DeriveError(f"invalid value for --act: {text!r} contains an empty item")
    hidden = layers - 1
    if len(names) == 1:
        return tuple(names) * hidden + (names[0],)
    if len(names) != hidden:
        raise DeriveError(
            f"invalid value for --act: {text!r} gives {len(names)} activations "
            f"but --layers {layers} has {hidden} hidden layer{'s' if hidden != 1 else ''}"
        )
    return tuple(names) + (names[-1],)


def parse_penalty(text: str | None, option: str) -> str | None:
    """--l2 λ / --l1 λ: a number with 0 < λ ≤ 1000, returned as canonical decimal text ('0.01')."""
    if text is None:
        return None
    raw = str(text).strip()
    accepted = f"a number with 0 < λ ≤ {MAX_PENALTY} (omit {option} for no penalty)"
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise DeriveError(f"invalid value for {option}: {raw!r} is not a number; expected {accepted}") from None
    if not value.is_finite() or not 0 < value <= MAX_PENALTY:
        raise DeriveError(f"invalid value for {option}: {raw}; expected {accepted}")
    if len(value.as_tuple().digits) > 30 or value.adjusted() < -30:
        raise DeriveError(f"invalid value for {option}: {raw!r} has too many digits; expected {accepted}")
    text = format(value.normalize(), "f")
    return text
