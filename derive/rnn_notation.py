"""The notation of a recurrent document: every symbol it uses, with its one meaning.

The recurrent documents need rows the MLP's table has not (the step indices τ and r, the length T,
the cell state, the gates, the per-gate parameters) and word some rows differently (x is a
sequence, C the loss of a sequence), so they have their own rows here; the machinery is the MLP's
(`present_notation.split_rows`): a row appears only when its symbol occurs, in the main table when
the forward pass or the derivation first uses it, else in a short table at the top of the section
that does. One symbol, one meaning: PyTorch's gate letters would collide with the unit index i, the
activation g, the step r and the pre-activation z, so the gates print as Γ (Ng's notation), the
candidates as c̃ and h̃, and the parameters' labels upright (W_ih, W_if: names, not indices).
"""

from __future__ import annotations

from derive import document as blocks
from derive.present_notation import _LABELLESS, _MATH, ROWS, _table, split_rows

# the MLP table's symbol and pattern, by key, for the rows whose symbol is the same here (their meaning
# is worded for a sequence under [rnn_notation])
_SHARED = {key.split(".", 1)[1]: (symbol, pattern) for symbol, key, pattern in ROWS}


def _letter(ch: str) -> str:
    """A single letter as a symbol: not part of a command or of a longer word, and without an upright
    label of its own (z_{\\mathrm{i}} is another symbol than z)."""
    return rf"(?<![\\A-Za-z]){ch}(?![A-Za-z])(?!_\{{\\mathrm)"


def _labelled(letter: str, labels: str) -> str:
    return rf"{letter}_\{{\\mathrm\{{[{labels}]+\}}\}}"


def _upright(letter: str, labels: list[str]) -> str:
    return ",\\ ".join(rf"{letter}_{{\mathrm{{{label}}}}}" for label in labels)


def _shared(key: str) -> tuple[str, str, str]:
    """The MLP table's row `key` with this table's catalog key."""
    symbol, pattern = _SHARED[key]
    return symbol, key, pattern


def rows(cell: str) -> list[tuple[str, str, str]]:
    """(symbol as the table shows it, catalog key under [rnn_notation], pattern that finds it), in
    the order of the table, for the cell 'rnn', 'lstm' or 'gru'."""
    out = [("x", "x", _letter("x")), ("y", "y", _letter("y")),
           ("a^{(l)},\\ h", "state", _letter("a") + "|" + _letter("h"))]
    if cell == "lstm":
        from derive.layers.lstm import GATES as gates
        out += [("c^{(l)}", "cell", _letter("c")),
                ("\\tilde{c}^{(l)}", "candidate_lstm", r"\\tilde\{c\}"),
                (r"\Gamma_{\mathrm{i}},\ \Gamma_{\mathrm{f}},\ \Gamma_{\mathrm{o}}", "gates_lstm", r"\\Gamma")]
    elif cell == "gru":
        from derive.layers.gru import GATES as gates
        out += [("\\tilde{h}^{(l)}", "candidate_gru", r"\\tilde\{h\}"),
                (r"\Gamma_{\mathrm{r}},\ \Gamma_{\mathrm{z}}", "gates_gru", r"\\Gamma")]
    out.append(("z^{(l)}", "z", _letter("z")))
    if cell == "rnn":
        out += [(_upright("W", ["ih", "hh"]), "W_recurrent", _labelled("W", "ih")),
                (_upright("b", ["ih", "hh"]), "b_recurrent", _labelled("b", "ih"))]
    else:
        out += [(_upright("z", list(gates)), "z_gates", _labelled("z", gates)),
                (_upright("W", ["i" + g for g in gates]), "W_input", rf"W_\{{\\mathrm\{{i[{gates}]\}}\}}"),
                (_upright("W", ["h" + g for g in gates]), "W_hidden", rf"W_\{{\\mathrm\{{h[{gates}]\}}\}}"),
                (_upright("b", ["i" + g for g in gates]), "b_input", rf"b_\{{\\mathrm\{{i[{gates}]\}}\}}"),
                (_upright("b", ["h" + g for g in gates]), "b_hidden", rf"b_\{{\\mathrm\{{h[{gates}]\}}\}}")]
    out += [
        ("W^{(l)},\\ b^{(l)}", "head", _letter("W") + "|" + _letter("b")),
        ("g,\\ g'", "g", _letter("g")),
        ("\\sigma", "sigma", r"\\sigma(?!_)"),
        ("l", "l", _letter("l")),
        ("\\tau,\\ r", "steps", r"\\tau|" + _letter("r")),
        ("T", "T", _letter("T")),
        ("i, j, k, p, q", "indices", r"_\{?[ijkpq]|_\{[^}]*,[ijkpq]"),
        _shared("C"),
        _shared("delta"),
        ("[P]", "iverson", r"\\left\[|\[\\tau|\[r"),
        _shared("hadamard"),
        _shared("ones"),
        _shared("transpose"),
        ("J", "J", _letter("J")),
        _shared("diag"),
        ("u", "u", _letter("u")),
        ("\\gamma", "gamma", r"\\gamma"),
        ("d", "d", _letter("d")),
        ("H", "H", _letter("H")),
        ("n", "n", _letter("n")),
        ("m", "m", _letter("m")),
        ("K", "K", _letter("K")),
        _shared("Cbar"),
        _shared("Ctilde"),
        _shared("theta"),
        _shared("nabla"),
        _shared("eta"),
        ("t", "t", _letter("t")),
        ("G", "gtilde", _letter("G")),
        _shared("lambda"),
        _shared("moments"),
    ]
    return out


# the last section whose symbols the notation section lists: the forward pass and the derivation
MAIN_UNTIL = "parameters"


def rnn_notation_blocks(text, cell: str, used: dict[str, str], pinned: dict[str, list] | None = None
                        ) -> tuple[list, dict[str, list]]:
    """The notation section (its sentence and table) and, per later section, the short table of the
    symbols it introduces. `used` maps each section to the LaTeX it contains, in document order;
    `pinned` adds rows (LaTeX, meaning) to the section named (the optimizer's hyper-parameters)."""
    found = [((text.math(symbol), text(f"rnn_notation.{key}")), pattern,
              _LABELLESS.sub(" ", "\n".join(_MATH.findall(text.raw(f"rnn_notation.{key}")))))
             for symbol, key, pattern in rows(cell)]
    main, local = split_rows(used, found, {key: [(text.math(symbol), meaning) for symbol, meaning in extra]
                                             for key, extra in (pinned or {}).items()}, until=MAIN_UNTIL)
    section = [blocks.Paragraph(text("rnn_notation.intro") + " " + text(
        "rnn_notation.labels" if cell == "rnn" else "rnn_notation.gates")), _table(text, main, long=True)]
    return section, {key: [blocks.Paragraph(text("notation.here")), _table(text, rows_)] for key, rows_ in local.items()}
