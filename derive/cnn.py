"""`derive cnn`: a convolutional network from a short description, turned into the network file
that `derive net` reads (so both build the same graph and the documents quote that file).

    derive cnn --input 1x8x8 --layers "conv 4 k3 p1 relu, maxpool 2, conv 8 k3 p1 relu, maxpool 2, flatten, dense 10 softmax"

Stages are separated by commas; each is a word and its settings:

    conv F k3 [s2] [p1] [d2] [ACT]   F output channels, kernel 3 (k3x2: 3 rows, 2 columns), stride,
                                     zero padding, dilation, an activation (relu, tanh, …)
    conv1d F k3 [s2] [p1] [d2] [ACT] the same over one axis (input CxW)
    maxpool 2 [s2] [p1] [d2]         max over 2×2 windows (stride: the window unless given), padding
                                     (−∞ as PyTorch: never the maximum; at most half the window), dilation
    avgpool 2 [s2] [p1]              mean over the windows, zero padding counted
    gap                              global average pooling: one number per channel
    flatten                          channels, rows and columns as one vector (PyTorch's order)
    dense N [ACT]                    N units
"""

from __future__ import annotations

import re

from derive.errors import DeriveError

DEFAULT_INPUT = "1x8x8"
DEFAULT_LAYERS = "conv 4 k3 p1 relu, maxpool 2, conv 8 k3 p1 relu, maxpool 2, flatten, dense 10 softmax"
DEFAULT_LOSS = "cross_entropy"

_SETTING = re.compile(r"([kspd])(\d+)(?:x(\d+))?")
_WORDS = {"conv": "conv2d", "conv1d": "conv1d", "maxpool": "max_pool2d", "avgpool": "avg_pool2d",
          "gap": "global_avg_pool", "flatten": "flatten", "dense": "dense"}
_KEYS = {"k": "kernel", "s": "stride", "p": "padding", "d": "dilation"}
_ALLOWED = {"conv2d": "kspd", "conv1d": "kspd", "max_pool2d": "kspd", "avg_pool2d": "ksp", "global_avg_pool": "",
            "flatten": "", "dense": ""}


def parse_input(text: str) -> list[int]:
    """"1x8x8" (channels × rows × columns) or "2x16" (channels × positions)."""
    parts = text.lower().replace("×", "x").split("x")
    if not 2 <= len(parts) <= 3 or not all(p.strip().isdigit() and 0 < int(p) <= 4096 for p in parts):
        raise DeriveError(f"invalid value for --input: {text!r}; expected CxHxW (e.g. 1x8x8) or CxW (e.g. 2x16)")
    return [int(p) for p in parts]


def parse_layers(text: str) -> list[dict]:
    """The stages of --layers as the [[layers]] tables of a network file."""
    stages = [s.strip() for s in text.split(",")]
    if not text.strip() or any(not s for s in stages):
        raise DeriveError(f"invalid value for --layers: {text!r}; expected stages separated by commas, "
                          f"e.g. {DEFAULT_LAYERS!r}")
    return [_stage(stage, n) for n, stage in enumerate(stages, start=1)]


def _stage(stage: str, n: int) -> dict:
    words = stage.split()
    where = f"invalid value for --layers: stage {n} ({stage!r})"
    kind = _WORDS.get(words[0].lower())
    if kind is None:
        raise DeriveError(f"{where}: unknown stage {words[0]!r}; accepted: {', '.join(_WORDS)}")
    table: dict = {"kind": kind}
    rest = words[1:]
    if kind in ("conv2d", "conv1d", "dense"):
        if not rest or not rest[0].isdigit():
            what = "output channels" if kind != "dense" else "units"
            raise DeriveError(f"{where}: expected the number of {what} after {words[0]!r}")
        table["channels" if kind != "dense" else "units"] = int(rest.pop(0))
    elif kind in ("max_pool2d", "avg_pool2d"):
        if not rest or not rest[0].isdigit():
            raise DeriveError(f"{where}: expected the window size after {words[0]!r} (e.g. {words[0]} 2)")
        table["kernel"] = int(rest.pop(0))
    for word in rest:
        setting = _SETTING.fullmatch(word.lower())
        if setting is not None and setting.group(1) in _ALLOWED[kind]:
            first, second = int(setting.group(2)), setting.group(3)
            table[_KEYS[setting.group(1)]] = [first, int(second)] if second is not None else first
        elif kind in ("conv2d", "conv1d", "dense") and "activation" not in table and setting is None:
            table["activation"] = word
        else:
            allowed = ", ".join(f"{c}N" for c in _ALLOWED[kind]) or "nothing more"
            raise DeriveError(f"{where}: {word!r} is not understood here; a {words[0]} stage takes {allowed}"
                              + (" and an activation" if kind in ("conv2d", "conv1d", "dense") else ""))
    if kind in ("conv2d", "conv1d") and "kernel" not in table:
        raise DeriveError(f"{where}: a convolution needs its kernel size, e.g. k3")
    return table


def network_text(input_shape: str, layers: str, loss: str, command: str) -> str:
    """The network file `derive net` would read for this description."""
    shape = parse_input(input_shape)
    tables = parse_layers(layers)
    lines = [f"# {command}", f"input = {shape}", f"loss = {_string(loss)}"]
    for table in tables:
        lines += ["", "[[layers]]"]
        lines += [f"{key} = {_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def _value(value) -> str:
    if isinstance(value, str):
        return _string(value)
    return str(value)


def _string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
