"""The picture of the worked example's network (review 23, defect 10): two units in every layer, the
stated weight on every edge, the bias and the forward values at every unit, the input at the left and
the target and the loss at the right, and the edges that the paths of section 12 pass in orange.

A student checking the example by hand keeps the numbers of several displays in mind at once; drawn
on the network they stand where the formulas use them (z⁽ˡ⁾_j = Σ_k W⁽ˡ⁾_{jk} a⁽ˡ⁻¹⁾_k + b⁽ˡ⁾_j reads off
the edges into unit j). `layout` only places the labels it is given; `picture_block` takes every number
from the WorkedExample, printed as the example prints it, so the figure and the text cannot differ.
"""

from __future__ import annotations

from derive.pictures import (EDGE_COLOUR, MARGIN, PAD_FILL, PATH_COLOUR, Box, Circle, Label, Line, Picture, Text,
                             _small_width, _words, svg, tikz)

GAP = 125  # between columns
ROW_GAP = 100  # between the two units of a column
RADIUS = 13
LINE = 14  # between the lines of numbers at a unit
# Where on its edge a weight stands (review 25, defect 8). The two crossing edges of a layer meet halfway,
# so each of their weights stands near the unit it feeds, where the other edge is half a row away; the
# straight edges cross nothing and keep theirs left of those, so no two labels share a column.
ALONG_STRAIGHT = 0.4
ALONG_CROSSING = 0.75
FILE = "example.svg"


def layout(columns: list[list[list[Label]]], weights: dict, targets: list[Label], loss: Label,
           highlighted: set, headers: list[str]) -> Picture:
    """`columns[l][j]`: the lines of numbers at unit j of layer l (above the top unit, below the
    bottom one, where no edge runs); `weights[(l, j, k)]`: the label of the edge from unit k of layer
    l − 1 to unit j of layer l (from 0); `targets[j]` beside output j and `loss` between them;
    `highlighted`: the edges (l, j, k) drawn in orange; `headers[l]`: the column's name."""
    lines_above = max(len(column[0]) for column in columns)
    top = MARGIN + 20 + LINE * lines_above + 8 + RADIUS  # the centre of the top units
    rows = [top, top + ROW_GAP]
    xs = [MARGIN + 35 + n * GAP for n in range(len(columns))]
    right = xs[-1] + RADIUS + 10 + max(_small_width(label.plain) for label in [*targets, loss])
    width = right + MARGIN
    height = rows[1] + RADIUS + 8 + LINE * max(len(column[-1]) for column in columns) + 16
    pic = Picture(width=width, height=height)
    for (l, j, k), label in sorted(weights.items()):
        (x1, y1), (x2, y2) = (xs[l - 1] + RADIUS, rows[k]), (xs[l] - RADIUS, rows[j])
        on_path = (l, j, k) in highlighted
        pic.lines.append(Line(x1, y1, x2, y2, PATH_COLOUR if on_path else EDGE_COLOUR, width=2.0 if on_path else 0.9))
        along = ALONG_STRAIGHT if j == k else ALONG_CROSSING
        x, y = x1 + along * (x2 - x1), y1 + along * (y2 - y1)
        half = _small_width(label.plain) / 2 + 2
        pic.boxes.append(Box(x - half, y - 7, 2 * half, 13, PAD_FILL, rounded=False, outline=False))
        pic.texts.append(Text(x, y + 4, label, size="small", colour=PATH_COLOUR if on_path else "#000000"))
    for l, (x, column) in enumerate(zip(xs, columns)):
        pic.texts.append(Text(x, MARGIN + 8, _words(headers[l])))
        for j, (y, numbers) in enumerate(zip(rows, column)):
            pic.circles.append(Circle(x, y, RADIUS))
            if j == 0:  # above the top unit, the last line nearest it
                ys = [y - RADIUS - 6 - LINE * (len(numbers) - 1 - n) for n in range(len(numbers))]
            else:
                ys = [y + RADIUS + 14 + LINE * n for n in range(len(numbers))]
            for label, ty in zip(numbers, ys):
                pic.texts.append(Text(x, ty, label, size="small"))
    for y, label in zip(rows, targets):
        pic.texts.append(Text(xs[-1] + RADIUS + 8, y + 4, label, anchor="start", size="small"))
    pic.texts.append(Text(xs[-1] + RADIUS + 8, (rows[0] + rows[1]) / 2 + 4, loss, anchor="start", size="small"))
    return pic


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _plain(tex: str) -> str:
    """A number as the example prints it in LaTeX, for the SVG: −0.85, 1.795·10⁻³."""
    import re

    tex = re.sub(r"\s*\\(cdot|times)\s*10\^\{(-?\d+)\}",
                 lambda m: ("·" if m.group(1) == "cdot" else "×") + "10" + m.group(2).translate(_SUPERSCRIPT), tex)
    return tex.replace("-", "−")


def _label(name_tex: str, name_plain: str, number: str) -> Label:
    return Label(f"${name_tex} = {number}$", f"{name_plain} = {_plain(number)}")


_SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def picture_block(lesson, derivation, text):
    """Figure of the worked example as a document block (SVG, or TikZ for LaTeX), or None where the
    network is not a chain of dense layers two units wide (only those are drawn as columns of units)."""
    from derive import document as blocks
    from derive.lesson.worked_example import entries
    from derive.notation import Q
    from derive.present_lesson import _number, _stated

    from derive.lesson.path_example import _chain_layers

    example, model = lesson.example, derivation.model
    if example is None or _chain_layers(model) is None:
        return None
    L = model.depth

    def values(kind, layer, table="values"):
        return [v for _, v in entries(example, Q(kind, layer) if layer is not None else Q(kind), table)]

    columns = [[[_label(f"x_{{{j + 1}}}", "x" + str(j + 1).translate(_SUBSCRIPT), _stated(v))]
                for j, v in enumerate(values("a", 0))]]
    for l in range(1, L + 1):
        column = []
        for b, z, a in zip(values("b", l), values("z", l), values("a", l)):
            column.append([_label("b", "b", _stated(b)), _label("z", "z", _number(z)), _label("a", "a", _number(a))])
        columns.append(column)
    weights = {}
    for l in range(1, L + 1):
        for (j, k), v in entries(example, Q("W", l)):
            weights[(l, j, k)] = Label(f"${_stated(v)}$", _plain(_stated(v)))
    targets = [_label(f"y_{{{j + 1}}}", "y" + str(j + 1).translate(_SUBSCRIPT), _stated(v)) for j, v in enumerate(values("y", None))]
    loss = _label("C", "C", _number(example.loss))
    highlighted = set()
    if lesson.paths is not None:  # the edges the paths of W⁽¹⁾_{j₁k} pass: into j₁, out of it, and all later ones
        j1, k = (i - 1 for i in lesson.paths.weight)
        highlighted = {(1, j1, k)} | {(2, j, j1) for j in range(2)} | {(l, j, i) for l in range(3, L + 1)
                                                                        for j in range(2) for i in range(2)}
    headers = [text.raw("picture.input")] + [text.raw("picture.layer").format(layer=l) for l in range(1, L + 1)]
    pic = layout(columns, weights, targets, loss, highlighted, headers)
    alt = text.raw("example.figure_alt")
    weight = f"W^{{(1)}}_{{{lesson.paths.weight[0]}{lesson.paths.weight[1]}}}" if lesson.paths is not None else ""
    separator = text.raw("language.sentence_separator")
    caption = text("example.figure_caption") + (separator + text("example.figure_paths", weight=weight)
                                                if highlighted else "")
    return blocks.Picture(caption=caption, alt=alt, file=FILE,
                          svg=svg(pic, alt, ids="example-") if text.fmt != "tex" else None,
                          tikz=tikz(pic) if text.fmt == "tex" else None, label="fig:example")
