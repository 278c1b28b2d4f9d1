"""Network files: `derive net FILE.toml` reads one human-written description of a network.

    input = 4                    # units of the input x
    loss = "mse"                 # a loss of `derive list` or an expression in a and y
    optimizer = "adam:lr=0.01"   # optional, as --optimizer
    l2 = 0.001                   # optional penalties, as --l2 / --l1 / --penalise-bias

    [[layers]]
    kind = "dense"               # a registered layer kind (derive/layers/)
    units = 5                    # the kind's own options
    activation = "tanh"          # optional: applied to the layer's output
    name = "h1"                  # optional: how later layers refer to its output

    [[layers]]
    kind = "add"
    from = "h1"                  # a kind with two inputs reads the previous output and this one
                                 # ("input" names the network's input x)

Every layer reads the output of the one before unless `input` names another. Errors name the file,
the key and the value, and say what is accepted, in one line; nothing else is read or written.
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path

from derive.errors import DeriveError
from derive.spec import (
    DEFAULT_FORMATS,
    DEFAULT_LANGUAGE,
    LayerSpec,
    NetSpec,
    OptimizerChoice,
    parse_penalty,
)

MAX_FILE_BYTES = 100_000
MAX_LAYERS = 128
TOP_KEYS = {"input": "the number of input units", "loss": "the loss", "optimizer": "the optimizer",
            "l2": "an L2 penalty", "l1": "an L1 penalty", "penalise_bias": "true or false",
            "layers": "the [[layers]] tables", "description": "a line of text"}
COMMON_KEYS = ("kind", "name", "input", "from", "activation")
INPUT_NAME = "input"  # `from = "input"` reads the network's input x (the skip around a first block)
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")


class NetFileError(DeriveError):
    """A network file that cannot be read or does not describe a network we can build."""


def read_network(path: str | Path, *, formats: tuple[str, ...] = DEFAULT_FORMATS,
                  lang: str = DEFAULT_LANGUAGE) -> NetSpec:
    """Read and check a network file; raise NetFileError with a one-line message on the first problem."""
    where = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise NetFileError(f"{where}: cannot be read ({error.strerror or error})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise NetFileError(f"{where}: {len(raw)} bytes; a network file may have at most {MAX_FILE_BYTES}")
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise NetFileError(f"{where}: is not UTF-8 text; expected a TOML network file") from None
    except tomllib.TOMLDecodeError as error:
        raise NetFileError(f"{where}: is not valid TOML ({error}); see examples/*.toml") from None
    return parse_network(data, where, text=text, formats=formats, lang=lang)


def parse_network(data: dict, where: str, *, text: str = "", formats: tuple[str, ...] = DEFAULT_FORMATS,
                  lang: str = DEFAULT_LANGUAGE) -> NetSpec:
    """A NetSpec from the TOML data of a network file (`where` names it in messages); a file with
    recurrent layers gives the RNNSpec of `derive rnn` (`netfile_recurrent`)."""
    from derive.netfile_recurrent import is_recurrent, recurrent_spec

    if is_recurrent(data):
        return recurrent_spec(data, where, formats=formats, lang=lang)
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise NetFileError(f"{where}: unknown key {unknown[0]!r}; accepted: {', '.join(TOP_KEYS)}")
    if "input" not in data:
        raise NetFileError(f"{where}: missing key 'input' (the number of input units, e.g. input = 4)")
    input_units = _input_shape(data["input"], f"{where}: input")
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers or not all(isinstance(t, dict) for t in layers):
        raise NetFileError(f"{where}: expected at least one [[layers]] table (kind = \"dense\", units = …)")
    if len(layers) > MAX_LAYERS:
        raise NetFileError(f"{where}: {len(layers)} layers; at most {MAX_LAYERS}")
    names: set[str] = set()
    specs = tuple(_layer(table, f"{where}: layers[{n}]", names) for n, table in enumerate(layers, start=1))
    loss = _text(data.get("loss", "mse"), f"{where}: loss", "a loss name or an expression in a and y")
    optimizer = OptimizerChoice()
    if "optimizer" in data:
        from derive.catalog.optimizers import resolve_optimizer

        text_value = _text(data["optimizer"], f"{where}: optimizer", "NAME[:key=value,…] as for --optimizer")
        optimizer = _relabel(lambda: resolve_optimizer(text_value), f"{where}: optimizer")
    l2 = _relabel(lambda: parse_penalty(_number_text(data.get("l2")), "--l2"), f"{where}: l2")
    l1 = _relabel(lambda: parse_penalty(_number_text(data.get("l1")), "--l1"), f"{where}: l1")
    penalise_bias = data.get("penalise_bias", False)
    if not isinstance(penalise_bias, bool):
        raise NetFileError(f"{where}: penalise_bias = {penalise_bias!r}; expected true or false")
    if penalise_bias and l2 is None and l1 is None:
        raise NetFileError(f"{where}: penalise_bias needs a penalty; add l2 = λ or l1 = λ")
    if "description" in data:
        _text(data["description"], f"{where}: description", "a line of text")
    return NetSpec(where, input_units, specs, loss, formats=formats, lang=lang, optimizer=optimizer,
                   l2=l2, l1=l1, penalise_bias=penalise_bias, text=text)


def _layer(table: dict, where: str, names: set[str]) -> LayerSpec:
    from derive.layers import KINDS

    if "kind" not in table:
        raise NetFileError(f"{where}: missing key 'kind'; accepted kinds: {', '.join(_kind_names())}")
    kind = _text(table["kind"], f"{where}: kind", f"one of {', '.join(_kind_names())}")
    cls = KINDS.get(kind)
    if cls is None or kind == "loss":
        raise NetFileError(f"{where}: unknown kind {kind!r}; accepted: {', '.join(_kind_names())}")
    where = f"{where} (kind {kind!r})"
    accepted = [*COMMON_KEYS[:3], *(("from",) if cls.inputs == 2 else ()),
                *(("activation",) if cls.output_kind == "z" else ()), *cls.options]
    unknown = sorted(set(table) - set(accepted))
    if unknown:
        raise NetFileError(f"{where}: unknown key {unknown[0]!r}; accepted: {', '.join(accepted)}")
    values = []
    for key, option in cls.options.items():
        if key not in table:
            if option.required:
                raise NetFileError(f"{where}: missing key {key!r} ({option.accepted})")
            continue
        try:
            values.append((key, option.read(table[key])))
        except (ValueError, TypeError):
            raise NetFileError(f"{where}: {key} = {_shown(table[key])}; expected {option.accepted}") from None
    name = _reference(table.get("name"), f"{where}: name") if "name" in table else None
    if name is not None:
        if name == INPUT_NAME:
            raise NetFileError(f"{where}: name {name!r} is the network's input x; choose another name")
        if name in names:
            raise NetFileError(f"{where}: name {name!r} is used by an earlier layer; names must differ")
    reads = _reference(table["input"], f"{where}: input") if "input" in table else None
    skip = None
    if cls.inputs == 2:
        if "from" not in table:
            raise NetFileError(f"{where}: missing key 'from' (the name of the earlier layer whose output it reads)")
        skip = _reference(table["from"], f"{where}: from")
    for key, ref in (("input", reads), ("from", skip)):
        if ref is not None and ref not in names and ref != INPUT_NAME:
            known = f"; names given so far: {', '.join(sorted(names))}" if names else "; no earlier layer has a name"
            raise NetFileError(f"{where}: {key} = {ref!r} names no earlier layer{known}")
    if name is not None:
        names.add(name)
    activation = None
    if "activation" in table:
        activation = _text(table["activation"], f"{where}: activation", "an activation name or an expression in z")
    return LayerSpec(kind, tuple(values), name, reads, skip, activation)


INPUT_ROLES = {1: ("n",), 2: ("c", "w"), 3: ("c", "h", "w")}  # units; channels × positions; an image


def _input_shape(value, where: str) -> int | tuple[int, ...]:
    """`input = 4` (a vector of units), `input = [2, 16]` (channels × positions, a sequence or a
    signal) or `input = [1, 8, 8]` (channels × rows × columns, an image)."""
    if isinstance(value, list):
        accepted = "a whole number of units, or a list [channels, positions] or [channels, rows, columns]"
        if not 1 <= len(value) <= 3:
            raise NetFileError(f"{where} = {_shown(value)}; expected {accepted}")
        shape = tuple(_whole(v, where, 1, 100_000) for v in value)
        return shape[0] if len(shape) == 1 else shape
    return _whole(value, where, 1, 100_000)


def _kind_names() -> list[str]:
    from derive.layers import KINDS

    return [k for k in KINDS if k != "loss"]


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value, where: str, accepted: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise NetFileError(f"{where} = {_shown(value)}; expected {accepted} (as a quoted string)")
    return value.strip()


def _reference(value, where: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise NetFileError(f"{where} = {_shown(value)}; expected a name of letters, digits and _ starting with a letter")
    return value


def _whole(value, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise NetFileError(f"{where} = {_shown(value)}; expected a whole number from {low} to {high}")
    return value


def _number_text(value) -> str | None:
    """A TOML number as the decimal text the penalty parser reads (floats by their shortest repr)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return repr(value)
    return str(Decimal(repr(value))) if isinstance(value, float) else str(value)


def _relabel(read, where: str):
    """Run a parser of a command-line option; its message is reworded to name the file's key."""
    try:
        return read()
    except DeriveError as error:
        message = re.sub(r"^invalid value for [-\w]+: ", "", str(error))
        raise NetFileError(f"{where}: {message}") from None


def network_text(spec) -> str:
    """The network file of an MLP spec (`derive mlp … --print-network`): `derive net` on it builds
    the same graph."""
    lines = [f"# {_mlp_command(spec)}", f"input = {spec.sizes[0]}", f"loss = {_toml_string(spec.loss)}"]
    from derive.catalog.optimizers import choice_text

    if spec.optimizer != OptimizerChoice():
        lines.append(f"optimizer = {_toml_string(choice_text(spec.optimizer))}")
    for key, value in (("l2", spec.l2), ("l1", spec.l1)):
        if value is not None:
            lines.append(f"{key} = {value}")
    if spec.penalise_bias:
        lines.append("penalise_bias = true")
    for layer, activation in enumerate(spec.activations, start=1):
        lines += ["", "[[layers]]", 'kind = "dense"', f"units = {spec.sizes[layer]}",
                  f"activation = {_toml_string(activation)}"]
    return "\n".join(lines) + "\n"


def _mlp_command(spec) -> str:
    from derive.run import command_line

    return command_line(spec)


def _toml_string(text: str) -> str:
    """A TOML basic string (quotes and backslashes escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
