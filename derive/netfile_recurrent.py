"""Recurrent layers in network files: the configurations `derive rnn` supports, read from a file.

    input = 3                    # numbers per step of the input sequence
    loss = "mse"
    optimizer = "adam:lr=0.01"   # optional, as --optimizer

    [[layers]]
    kind = "lstm"                # rnn (Elman), lstm or gru: one to three layers of one kind and size
    units = 8                    # hidden units
    output = "all"               # on the last recurrent layer: the head reads the last step (last,
                                 # the default), every step (all, the loss summed) or every step with
                                 # the loss averaged over the steps (mean)
    steps = 6                    # on the last recurrent layer: the sequence length of the checks

    [[layers]]
    kind = "dense"               # the head: a dense layer, an element-wise activation
    units = 2
    activation = "identity"

The file becomes the spec `derive rnn` would build for the same choices (the graph, derivation,
code and checks are that command's); anything else — other kinds around the recurrent layers,
layers of different sizes or kinds, names and skips, penalties — is refused in one line that names
the layer or key and says what is accepted, as every network-file error does.
"""

from __future__ import annotations

from derive.errors import DeriveError

RECURRENT_KINDS = ("rnn", "lstm", "gru")
TOP_KEYS = ("input", "loss", "optimizer", "layers", "description")
ACCEPTED = ("one to three recurrent layers (kind rnn, lstm or gru) of one kind and one number of units, "
            "then one dense layer")


def is_recurrent(data: dict) -> bool:
    """Whether a network file's layers include a recurrent kind (then this module reads it)."""
    layers = data.get("layers")
    return isinstance(layers, list) and any(isinstance(t, dict) and t.get("kind") in RECURRENT_KINDS
                                            for t in layers)


def recurrent_spec(data: dict, where: str, *, formats: tuple[str, ...], lang: str):
    """The RNNSpec of a network file with recurrent layers; NetFileError on the first problem."""
    from derive.netfile import NetFileError, _text, _whole
    from derive.rnn import FORMATS, make_rnn_spec

    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise NetFileError(f"{where}: key {unknown[0]!r} is not available with recurrent layers; accepted: "
                           f"{', '.join(TOP_KEYS)}")
    if "input" not in data:
        raise NetFileError(f"{where}: missing key 'input' (the numbers per step of the sequence, e.g. input = 3)")
    if isinstance(data["input"], list):
        raise NetFileError(f"{where}: input = {data['input']!r}; with recurrent layers expected a whole number "
                           "(the numbers per step of the sequence)")
    inputs = _whole(data["input"], f"{where}: input", 1, 4096)
    layers = data["layers"]
    if not all(isinstance(t, dict) for t in layers):
        raise NetFileError(f"{where}: expected [[layers]] tables (kind = \"lstm\", units = …)")
    cells = []
    for n, table in enumerate(layers, start=1):
        if table.get("kind") not in RECURRENT_KINDS:
            break
        cells.append((n, table))
    head = layers[len(cells):]
    at = f"{where}: layers[{len(cells) + 1}]"
    if not cells:
        raise NetFileError(f"{where}: layers[1] has kind {layers[0].get('kind')!r} before a recurrent layer; "
                           f"accepted: {ACCEPTED}")
    if len(cells) > 3:
        raise NetFileError(f"{where}: layers[4] is a fourth recurrent layer; accepted: {ACCEPTED}")
    if len(head) != 1 or head[0].get("kind") != "dense":
        found = "nothing" if not head else f"kind {head[0].get('kind')!r}" + (f" and {len(head) - 1} more" if len(head) > 1 else "")
        raise NetFileError(f"{at}: {found} after the recurrent layers; accepted: {ACCEPTED}")
    kind, units = cells[0][1]["kind"], None
    choices: dict = {}
    for n, table in cells:
        here = f"{where}: layers[{n}] (kind {table['kind']!r})"
        last = n == len(cells)
        accepted = ["kind", "units", "activation"] + (["output", "steps"] if last else [])
        extra = sorted(set(table) - set(accepted))
        if extra:
            reason = "; output and steps go on the last recurrent layer" if extra[0] in ("output", "steps") else ""
            raise NetFileError(f"{here}: unknown key {extra[0]!r}; accepted: {', '.join(accepted)}{reason}")
        if table["kind"] != kind:
            raise NetFileError(f"{here}: kind {table['kind']!r} after kind {kind!r}; accepted: {ACCEPTED}")
        if "units" not in table:
            raise NetFileError(f"{here}: missing key 'units' (the hidden units, e.g. units = 4)")
        size = _whole(table["units"], f"{here}: units", 1, 4096)
        if units is not None and size != units:
            raise NetFileError(f"{here}: units = {size} after units = {units}; accepted: {ACCEPTED}")
        units = size
        if "activation" in table:
            act = _text(table["activation"], f"{here}: activation", "tanh or relu")
            if choices.setdefault("act", act) != act:
                raise NetFileError(f"{here}: activation {act!r} after {choices['act']!r}; the layers share one")
        if last:
            for key in ("output", "steps"):
                if key in table:
                    choices[key] = table[key]
    dense = head[0]
    here = f"{at} (kind 'dense')"
    extra = sorted(set(dense) - {"kind", "units", "activation"})
    if extra:
        raise NetFileError(f"{here}: unknown key {extra[0]!r}; accepted: kind, units, activation")
    if "units" not in dense:
        raise NetFileError(f"{here}: missing key 'units' (the outputs per step, e.g. units = 2)")
    head_units = _whole(dense["units"], f"{here}: units", 1, 4096)
    out_act = _text(dense["activation"], f"{here}: activation", "an element-wise activation") \
        if "activation" in dense else "identity"
    loss = _text(data.get("loss", "mse"), f"{where}: loss", "a loss name or an expression in a and y")
    optimizer = _text(data["optimizer"], f"{where}: optimizer", "NAME[:key=value,…] as for --optimizer") \
        if "optimizer" in data else None
    if "description" in data:
        _text(data["description"], f"{where}: description", "a line of text")
    wrong = [f for f in formats if f not in FORMATS]
    if wrong:
        raise NetFileError(f"invalid value for --format: {wrong[0]!r} is not written for recurrent networks; "
                           f"accepted: {', '.join(FORMATS)}")
    try:
        return make_rnn_spec(kind, inputs, units, len(cells), choices.get("steps", 5), choices.get("output", "last"),
                             head_units, choices.get("act", "tanh"), out_act, loss, ",".join(formats), lang,
                             optimizer, source=where)
    except DeriveError as error:  # the option's message, with the file's key instead of the option
        keys = {"--act": "activation of the recurrent layers", "--out-act": "activation of the dense layer",
                "--steps": "steps", "--output": "output", "--loss": "loss", "--optimizer": "optimizer",
                "--cell": "kind", "--input": "input", "--hidden": "units", "--units": "units of the dense layer"}
        message = str(error)
        for option, key in keys.items():
            message = message.replace(f"for {option}:", f"for {key}:").replace(f"{option} ", f"{key} ")
        raise NetFileError(f"{where}: {message}") from None


__all__ = ["RECURRENT_KINDS", "is_recurrent", "recurrent_spec"]
