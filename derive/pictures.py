"""Pictures of the network: one neutral layout, drawn as SVG (Markdown, HTML, notebook) or TikZ (LaTeX, PDF).

`layout` turns the model into shapes in abstract units (1 unit = 1 SVG pixel; TikZ scales it): a
column of units per layer, lines for the weights between layers, blue arrows for the forward pass
(layer l computes z⁽ˡ⁾, a⁽ˡ⁾) above the columns, red arrows for the backward pass (δ⁽ˡ⁾ flows back
to layer l − 1) below them, and the loss at the right. Large layers show their first and last units
around a vertical ellipsis; deep networks show their first and last layers around a horizontal one.
The emitters only translate shapes, so both pictures always show the same thing.

Labels that are quantities carry both spellings from `notation` (LaTeX for TikZ, Unicode for SVG);
words come from the message catalog, already in the document's language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from derive.notation import Q

# geometry (abstract units)
COLUMN_GAP = 140
UNIT_GAP = 34
RADIUS = 12
MAX_UNITS_DRAWN = 7  # a layer with more units shows HEAD first units, an ellipsis and TAIL last ones
HEAD, TAIL = 3, 2
MAX_COLUMNS = 7  # a deeper network shows its first FIRST_LAYERS and last LAST_LAYERS layers
FIRST_LAYERS, LAST_LAYERS = 3, 2
MARGIN = 40

WINDOW_FILL = "#c9daf2"  # the entries one output reads (window pictures)
PAD_FILL = "#ffffff"  # zero padding
ERROR_FILL = "#f2cdc9"  # the output entry whose error flows back
FORWARD_COLOUR = "#1f5fbf"
BACKWARD_COLOUR = "#c0392b"
EDGE_COLOUR = "#b8b8b8"
PATH_COLOUR = "#e07b00"  # one path from a weight of layer 1 to the loss (the paths section)
WEIGHT_COLOUR = "#000000"  # the one weight drawn with its name, W_jk, to show how its indices read


@dataclass(frozen=True)
class Label:
    """Text in two spellings: `tex` for TikZ (may contain $…$), `plain` for SVG (Unicode)."""

    tex: str
    plain: str


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    label: Label
    anchor: str = "middle"  # start, middle, end
    size: str = "normal"  # normal, small
    colour: str = "#000000"


@dataclass(frozen=True)
class Circle:
    x: float
    y: float
    r: float


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    colour: str = EDGE_COLOUR
    arrow: bool = False
    dashed: bool = False
    width: float = 0.6


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float
    fill: str = "#fdf6e3"  # a highlighted cell of a window picture: WINDOW_FILL
    dashed: bool = False
    rounded: bool = True
    outline: bool = True  # False: a plain patch, such as the white ground under a number set on a line


@dataclass
class Picture:
    width: float
    height: float
    circles: list[Circle] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    dots: list[tuple[float, float, bool]] = field(default_factory=list)  # centre, vertical?
    boxes_first: bool = False  # cells under the arrows (a window picture), rather than boxes over lines
    weight: tuple[int, int, int] | None = None  # the weight named in the picture: (layer, j, k), from 1


def quantity(kind: str, layer: int) -> Label:
    q = Q(kind, layer)
    return Label(f"${q.latex()}$", q.text())


def _join(*labels: Label, sep: str = ", ") -> Label:
    return Label(sep.join(l.tex for l in labels), sep.join(l.plain for l in labels))


_PLAIN_SYMBOLS = {r"\delta": "δ"}  # the symbols the picture's words write in $…$


def _words(text: str) -> Label:
    """Catalog words for the picture: in TikZ their $…$ set as mathematics, italic as in the text
    ($n = 4$, forward: $z$, $a$); in SVG as plain Unicode."""
    from derive.present import prose

    plain = text.replace("$", "")
    for tex, symbol in _PLAIN_SYMBOLS.items():
        plain = plain.replace(tex, symbol)
    return Label(prose(text, "tex"), plain)


LOSS_LINE = 110  # the loss box breaks its title into lines of at most this width (small lettering)


def _small_width(text: str) -> float:
    """About how wide `text` is in the small lettering of the SVG (12 px sans-serif): wide characters
    (Chinese) a full em, others a little over half of one."""
    return sum(12 if ord(ch) > 0x2E80 else 6.8 for ch in text)


def _loss_lines(loss: str) -> list[str]:
    """The loss's title broken at spaces into lines of at most LOSS_LINE (a longer word keeps a line)."""
    lines: list[str] = []
    for word in loss.split():
        if lines and _small_width(lines[-1] + " " + word) <= LOSS_LINE:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [loss]


def _loss_box(pic: Picture, left: float, centre_y: float, loss: str) -> float:
    """The box of the loss C with its title below C, its left edge at `left`, as wide and tall as the
    title needs (at least 60 × 44); returns the x of its centre."""
    lines = _loss_lines(loss)
    width = max(60.0, max(_small_width(line) for line in lines) + 14)
    x = left + width / 2
    pic.boxes.append(Box(left, centre_y - 22, width, 44 + 14 * (len(lines) - 1)))
    pic.texts.append(Text(x, centre_y - 2, Label("$C$", "C")))
    for k, line in enumerate(lines):
        pic.texts.append(Text(x, centre_y + 14 + 14 * k, _words(line), size="small"))
    return x


def _loss_width(loss: str) -> float:
    return max(60.0, max(_small_width(line) for line in _loss_lines(loss)) + 14)


def _drawn_units(n: int) -> tuple[list[int], bool]:
    """Slots (top to bottom) that hold a circle, and whether an ellipsis sits after slot HEAD - 1."""
    if n <= MAX_UNITS_DRAWN:
        return list(range(n)), False
    return list(range(HEAD)) + list(range(HEAD + 1, HEAD + 1 + TAIL)), True


def _shown_layers(depth: int) -> list[int | None]:
    """Layer numbers to draw as columns, None where a horizontal ellipsis stands for the rest."""
    layers = list(range(depth + 1))
    if len(layers) <= MAX_COLUMNS:
        return layers
    return layers[:FIRST_LAYERS] + [None] + layers[-LAST_LAYERS:]


def layout(sizes: tuple[int, ...], activations: tuple[str, ...], loss: str, words: dict[str, str]) -> Picture:
    """The picture of an MLP with units `sizes` (n0 … nL), activation names per layer 1 … L, the loss's
    title (in the document's language) and `words` (input, layer, loss, units, forward, backward,
    more_layers) in the document's language."""
    depth = len(sizes) - 1
    shown = _shown_layers(depth)
    slots = max(len(_drawn_units(sizes[l])[0]) + _drawn_units(sizes[l])[1] for l in shown if l is not None)
    column_height = (slots - 1) * UNIT_GAP
    forward_y = MARGIN + 4  # forward arrows, then headers, then the units
    top = forward_y + 84
    centre_y = top + column_height / 2
    xs = [MARGIN + 30 + k * COLUMN_GAP for k in range(len(shown))]
    loss_x = xs[-1] + COLUMN_GAP * 0.8  # the arrows end at the loss box's left edge, loss_x - 30
    bottom = top + column_height
    width = loss_x - 30 + _loss_width(loss) + 30 + MARGIN
    height = bottom + 140
    pic = Picture(width=width, height=height)

    units: dict[int, list[tuple[float, float]]] = {}
    for x, l in zip(xs, shown):
        if l is None:
            pic.dots.append((x, centre_y, False))
            pic.texts.append(Text(x, centre_y + 26, _words(words["more_layers"].format(count=depth + 1 - (len(shown) - 1))), size="small"))
            continue
        drawn, ellipsis = _drawn_units(sizes[l])
        count = len(drawn) + ellipsis
        y0 = centre_y - (count - 1) * UNIT_GAP / 2
        units[l] = [(x, y0 + s * UNIT_GAP) for s in drawn]
        for cx, cy in units[l]:
            pic.circles.append(Circle(cx, cy, RADIUS))
        if ellipsis:
            pic.dots.append((x, y0 + HEAD * UNIT_GAP, True))
        header = words["input"] if l == 0 else words["layer"].format(layer=l)
        pic.texts.append(Text(x, top - 48, _words(header)))
        name = quantity("a", l) if l else Label(f"${Q('x').latex()}$", Q("x").text())
        pic.texts.append(Text(x, top - 28, name, size="small"))
        pic.texts.append(Text(x, bottom + 30, _size_label(l, sizes[l]), size="small"))
        if l:
            pic.texts.append(Text(x, bottom + 46, _words(activations[l - 1]), size="small"))

    # weights between consecutive drawn layers
    for (x1, l1), (x2, l2) in zip(zip(xs, shown), zip(xs[1:], shown[1:])):
        if l1 is None or l2 is None:
            continue
        for ax, ay in units[l1]:
            for bx, by in units[l2]:
                pic.lines.append(Line(ax + RADIUS, ay, bx - RADIUS, by))

    # one path from a weight of layer 1 to the loss, through the first unit of every layer, when every
    # layer is drawn (a path through a hidden column of dots would not be one path)
    if depth > 1 and None not in shown:
        path = [units[l][0] for l in shown]
        for (ax, ay), (bx, by) in zip(path, path[1:]):
            pic.lines.append(Line(ax + RADIUS, ay, bx - RADIUS, by, PATH_COLOUR, width=2.2))
        # its units named as the sum over paths names them: k in the input, j₁, j₂, … after it (review 23,
        # defect 13), above and right of each circle, where no edge of the circle runs
        for l, (cx, cy) in zip(shown, path):
            name = Label("$k$", "k") if l == 0 else Label(f"$j_{{{l}}}$", "j" + str(l).translate(_SUBSCRIPT))
            pic.texts.append(Text(cx + RADIUS - 1, cy - RADIUS - 2, name, anchor="start", size="small", colour=PATH_COLOUR))

    _name_one_weight(pic, sizes, units, depth)

    # forward (above) and backward (below) flow between consecutive columns
    backward_y = bottom + 72
    for (x1, l1), (x2, l2) in zip(zip(xs, shown), zip(xs[1:], shown[1:])):
        gap = l1 is None or l2 is None
        pic.lines.append(Line(x1 + 22, forward_y, x2 - 22, forward_y, FORWARD_COLOUR, arrow=True, dashed=gap, width=1.4))
        pic.lines.append(Line(x2 - 22, backward_y, x1 + 22, backward_y, BACKWARD_COLOUR, arrow=True, dashed=gap, width=1.4))
        if not gap:
            mid = (x1 + x2) / 2
            pic.texts.append(Text(mid, forward_y - 8, _join(quantity("z", l2), quantity("a", l2)), size="small", colour=FORWARD_COLOUR))
            pic.texts.append(Text(mid, backward_y + 18, quantity("delta", l2), size="small", colour=BACKWARD_COLOUR))

    # the loss
    box_x = _loss_box(pic, loss_x - 30, centre_y, loss)
    pic.texts.append(Text(box_x, top - 48, _words(words["loss"])))
    last_x = xs[-1]
    pic.lines.append(Line(last_x + 22, centre_y - 8, loss_x - 32, centre_y - 8, FORWARD_COLOUR, arrow=True, width=1.4))
    pic.lines.append(Line(loss_x - 32, centre_y + 8, last_x + 22, centre_y + 8, BACKWARD_COLOUR, arrow=True, width=1.4))
    grad = Q("a", depth)
    pic.texts.append(Text((last_x + loss_x) / 2 - 4, centre_y + 30, Label(rf"$\partial C/\partial {grad.latex()}$", f"∂C/∂{grad.text()}"),
                          size="small", colour=BACKWARD_COLOUR))

    _legend(pic, words["forward"], words["backward"], 200)
    return pic


_SUBSCRIPT = str.maketrans("0123456789,", "₀₁₂₃₄₅₆₇₈₉,")


def _size_label(layer: int, units: int) -> Label:
    """n₀ = 4, n₁ = 5, …: the size of a layer under its column, named as the notation names it (review 23,
    defect 13: not n = 4 for every layer)."""
    return Label(f"$n_{{{layer}}} = {units}$", "n" + str(layer).translate(_SUBSCRIPT) + f" = {units}")


def _name_one_weight(pic: Picture, sizes: tuple[int, ...], units: dict, depth: int) -> None:
    """One edge drawn in black and named, as Nielsen's figure names w³₂₄: a weight of layer 2 (of
    layer 1 in a network of one layer) from the next-to-last unit k of the layer before to the last
    unit j of its layer (the last unit when the next-to-last would be unit j), so that j ≠ k shows which
    index is which. Its name stands below the lowest unit of the two columns, under every other line."""
    layer = 2 if depth >= 2 else 1
    receiving, sending = units[layer], units[layer - 1]
    j, n = sizes[layer], sizes[layer - 1]
    k = n - 1 if n > 1 and n - 1 != j else n  # the last two units of a column are always drawn
    (ax, ay), (bx, by) = sending[-1] if k == n else sending[-2], receiving[-1]
    pic.lines.append(Line(ax + RADIUS, ay, bx - RADIUS, by, WEIGHT_COLOUR, width=1.6))
    sep = "," if max(j, k) > 9 else ""
    name = Q("W", layer)
    below = max(y for _, y in receiving + sending) + 22  # under the lowest unit of either column
    pic.texts.append(Text((ax + bx) / 2, below,
                          Label(f"${name.latex()}_{{{j}{sep}{k}}}$", name.text() + f"{j}{sep}{k}".translate(_SUBSCRIPT)),
                          size="small", colour=WEIGHT_COLOUR))
    pic.weight = (layer, j, k)


def _legend(pic: Picture, forward: str, backward: str, gap: float) -> None:
    """The legend along the bottom: a blue arrow for the forward pass, a red one `gap` further on."""
    legend_y = pic.height - 24
    pic.lines.append(Line(MARGIN, legend_y, MARGIN + 30, legend_y, FORWARD_COLOUR, arrow=True, width=1.4))
    pic.texts.append(Text(MARGIN + 38, legend_y + 4, _words(forward), anchor="start", size="small"))
    pic.lines.append(Line(MARGIN + gap + 30, legend_y, MARGIN + gap, legend_y, BACKWARD_COLOUR, arrow=True, width=1.4))
    pic.texts.append(Text(MARGIN + gap + 38, legend_y + 4, _words(backward), anchor="start", size="small"))


# --------------------------------------------------------------------------------------------------
# any network: layers as boxes, skip connections as arcs

BOX_WIDTH, BOX_HEIGHT, GRAPH_GAP = 104, 52, 150


def graph_layout(layers: list[dict], loss: str, words: dict[str, str]) -> Picture:
    """The picture of a network given as its layers in order, each a dict with `layer` (its number,
    0 for the input), `label` (a Label of its output quantity), `text` (its kind and options, in
    words), `units` and `reads` (the layers it reads: the first is drawn straight when it is the one
    before, every other as an arc over the boxes: a skip connection). Forward arrows are blue, the
    backward ones red and below; the loss is at the right."""
    skips = [(source, layer["layer"]) for layer in layers for k, source in enumerate(layer["reads"])
             if k > 0 or source != layer["layer"] - 1]
    arc_levels = {edge: n for n, edge in enumerate(skips)}
    top = MARGIN + 40 + 22 * len(skips)
    centre_y = top + BOX_HEIGHT / 2
    xs = {layer["layer"]: MARGIN + 20 + BOX_WIDTH / 2 + n * GRAPH_GAP for n, layer in enumerate(layers)}
    loss_x = max(xs.values()) + GRAPH_GAP * 0.85  # the arrows end at the loss box's left edge, loss_x - 30
    width = loss_x - 30 + _loss_width(loss) + 30 + MARGIN
    height = top + BOX_HEIGHT + 120 + 22 * len(skips)
    pic = Picture(width=width, height=height)
    for layer in layers:
        x = xs[layer["layer"]]
        pic.boxes.append(Box(x - BOX_WIDTH / 2, top, BOX_WIDTH, BOX_HEIGHT))
        header = words["input"] if layer["layer"] == 0 else words["layer"].format(layer=layer["layer"])
        pic.texts.append(Text(x, top - 12 - 22 * len(skips) if skips else top - 12, _words(header)))
        pic.texts.append(Text(x, centre_y - 4, layer["label"]))
        pic.texts.append(Text(x, centre_y + 14, _words(words["units"].format(units=layer["units"])), size="small"))
        if layer["text"]:
            pic.texts.append(Text(x, top + BOX_HEIGHT + 18, _words(layer["text"]), size="small"))
    backward_y = top + BOX_HEIGHT + 44
    for layer in layers:
        target = layer["layer"]
        for k, source in enumerate(layer["reads"]):
            x1, x2 = xs[source], xs[target]
            if (source, target) not in arc_levels:  # the layer before: straight arrows
                pic.lines.append(Line(x1 + BOX_WIDTH / 2, centre_y - 8, x2 - BOX_WIDTH / 2, centre_y - 8, FORWARD_COLOUR,
                                      arrow=True, width=1.4))
                pic.lines.append(Line(x2 - BOX_WIDTH / 2, backward_y, x1 + BOX_WIDTH / 2, backward_y, BACKWARD_COLOUR,
                                      arrow=True, width=1.4))
                continue
            level = arc_levels[(source, target)]
            y_up = top - 8 - 22 * level
            y_down = backward_y + 22 * (level + 1)
            for colour, y, start, end, edge in ((FORWARD_COLOUR, y_up, x1 + 14, x2 - 14, top),
                                                (BACKWARD_COLOUR, y_down, x2 - 14, x1 + 14, top + BOX_HEIGHT)):
                pic.lines.append(Line(start, edge, start, y, colour, width=1.4))
                pic.lines.append(Line(start, y, end, y, colour, width=1.4))
                pic.lines.append(Line(end, y, end, edge, colour, arrow=True, width=1.4))
    last = layers[-1]
    _loss_box(pic, loss_x - 30, centre_y, loss)
    last_x = xs[last["layer"]]
    pic.lines.append(Line(last_x + BOX_WIDTH / 2, centre_y - 8, loss_x - 32, centre_y - 8, FORWARD_COLOUR, arrow=True,
                          width=1.4))
    pic.lines.append(Line(loss_x - 32, backward_y, last_x + BOX_WIDTH / 2, backward_y, BACKWARD_COLOUR, arrow=True,
                          width=1.4))
    _legend(pic, words["graph_forward"], words["graph_backward"], 230)
    return pic


# --------------------------------------------------------------------------------------------------
# emitters


def _n(value: float) -> str:
    """Numbers printed the same on every machine: at most two decimals, no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def svg(pic: Picture, title: str, ids: str = "") -> str:
    """A standalone SVG document (also valid inline in HTML); `ids` prefixes its element ids, so that
    two pictures inline in one web page do not share any."""
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(pic.width)}" height="{_n(pic.height)}" '
        f'viewBox="0 0 {_n(pic.width)} {_n(pic.height)}" role="img" font-family="sans-serif" font-size="14">',
        f"<title>{escape(title)}</title>",
        "<defs>",
    ]
    for name, colour in (("forward", FORWARD_COLOUR), ("backward", BACKWARD_COLOUR)):
        out.append(
            f'<marker id="{ids}arrow-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            f'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="{colour}"/></marker>'
        )
    out.append("</defs>")
    out.append('<rect width="100%" height="100%" fill="#ffffff"/>')
    boxes = []
    for b in pic.boxes:
        corner = ' rx="6"' if b.rounded else ""
        dash = ' stroke-dasharray="3 3"' if b.dashed else ""
        stroke = 'stroke="#333333" stroke-width="1.2"' if b.outline else 'stroke="none"'
        boxes.append(f'<rect x="{_n(b.x)}" y="{_n(b.y)}" width="{_n(b.width)}" height="{_n(b.height)}"{corner} '
                     f'fill="{b.fill}" {stroke}{dash}/>')
    if pic.boxes_first:
        out += boxes
    for line in pic.lines:
        marker = ""
        if line.arrow:
            marker = f' marker-end="url(#{ids}arrow-{"forward" if line.colour == FORWARD_COLOUR else "backward"})"'
        dash = ' stroke-dasharray="5 4"' if line.dashed else ""
        out.append(
            f'<line x1="{_n(line.x1)}" y1="{_n(line.y1)}" x2="{_n(line.x2)}" y2="{_n(line.y2)}" '
            f'stroke="{line.colour}" stroke-width="{_n(line.width)}"{dash}{marker}/>'
        )
    for c in pic.circles:
        out.append(f'<circle cx="{_n(c.x)}" cy="{_n(c.y)}" r="{_n(c.r)}" fill="#f4f7fb" stroke="#333333" stroke-width="1.2"/>')
    if not pic.boxes_first:
        out += boxes
    for x, y, vertical in pic.dots:
        for k in (-1, 0, 1):
            dx, dy = (0, k * 7) if vertical else (k * 9, 0)
            out.append(f'<circle cx="{_n(x + dx)}" cy="{_n(y + dy)}" r="2.2" fill="#333333"/>')
    for t in pic.texts:
        size = ' font-size="12"' if t.size == "small" else ""
        out.append(f'<text x="{_n(t.x)}" y="{_n(t.y)}" text-anchor="{t.anchor}" fill="{t.colour}"{size}>{escape(t.label.plain)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


TIKZ_SCALE = 0.028  # cm per abstract unit
TEXT_WIDTH_CM = 16.4  # the text width of the document's A4 page (2.3 cm margins): wider pictures shrink to it


def tikz(pic: Picture) -> str:
    """A tikzpicture (needs \\usepackage{tikz} with the arrows.meta library). y points down in the
    layout and up in TikZ, so every y is negated."""

    def p(x: float, y: float) -> str:
        return f"({_n(x * TIKZ_SCALE)},{_n(-y * TIKZ_SCALE)})"

    colours = {FORWARD_COLOUR: "derivefwd", BACKWARD_COLOUR: "derivebwd", EDGE_COLOUR: "deriveedge",
               PATH_COLOUR: "derivepath", "#000000": "black"}
    out = [r"\begin{tikzpicture}[font=\small]"]
    for colour, name in colours.items():
        if name != "black":
            out.append(rf"\definecolor{{{name}}}{{HTML}}{{{colour[1:].upper()}}}")
    fills = {"#fdf6e3": "yellow!8", WINDOW_FILL: "derivefwd!25", PAD_FILL: "white", ERROR_FILL: "derivebwd!25"}
    boxes = []
    for b in pic.boxes:
        style = ["rounded corners=2pt"] if b.rounded else []
        style.append(f"fill={fills.get(b.fill, 'white')}")
        if b.dashed:
            style.append("dashed")
        command = r"\draw" if b.outline else r"\fill"
        boxes.append(rf"{command}[{','.join(style)}] {p(b.x, b.y)} rectangle {p(b.x + b.width, b.y + b.height)};")
    if pic.boxes_first:
        out += boxes
    for line in pic.lines:
        style = [colours[line.colour], f"line width={_n(line.width * 0.5)}pt"]
        if line.arrow:
            style.append("-{Stealth[length=2mm]}")
        if line.dashed:
            style.append("dashed")
        out.append(rf"\draw[{','.join(style)}] {p(line.x1, line.y1)} -- {p(line.x2, line.y2)};")
    for c in pic.circles:
        out.append(rf"\draw[fill=black!4] {p(c.x, c.y)} circle ({_n(c.r * TIKZ_SCALE)});")
    if not pic.boxes_first:
        out += boxes
    for x, y, vertical in pic.dots:
        for k in (-1, 0, 1):
            dx, dy = (0, k * 7) if vertical else (k * 9, 0)
            out.append(rf"\fill {p(x + dx, y + dy)} circle (0.6pt);")
    anchors = {"middle": "base", "start": "base west", "end": "base east"}
    for t in pic.texts:
        size = r"\footnotesize " if t.size == "small" else ""
        out.append(rf"\node[anchor={anchors[t.anchor]},text={colours[t.colour]},inner sep=0pt] at {p(t.x, t.y)} {{{size}{t.label.tex}}};")
    out.append(r"\end{tikzpicture}")
    if pic.width * TIKZ_SCALE > TEXT_WIDTH_CM:  # scaled as a whole, lettering included, to the text width
        out = [r"\resizebox{\linewidth}{!}{%", *out, "}"]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------
# a window of a convolution: how one output entry is computed and where its error goes

CELL = 24


def window_layout(input_size: tuple[int, int], output_size: tuple[int, int], kernel: tuple[int, int],
                  stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int],
                  words: dict[str, str], layer: int) -> Picture:
    """The input (one channel, its zero padding dashed) and the output of a convolution: the entries
    the kernel reads for output (1, 1) (or (0, 0)) filled, a blue arrow to that output, and red arrows
    from its error back to each of them. At most 9 × 9 cells are drawn of each grid."""
    rows, cols = (min(n + 2 * p, 11) for n, p in zip(input_size, padding))
    out_rows, out_cols = (min(n, 9) for n in output_size)
    target = tuple(1 if n > 1 else 0 for n in output_size)
    read = {(target[0] * stride[0] + dilation[0] * p, target[1] * stride[1] + dilation[1] * q)
            for p in range(kernel[0]) for q in range(kernel[1])}  # in padded coordinates
    top = MARGIN + 30
    gap = 110
    width = MARGIN * 2 + (cols + out_cols) * CELL + gap
    height = top + max(rows, out_rows) * CELL + MARGIN + 30
    pic = Picture(width, height, boxes_first=True)
    x0, x1 = MARGIN, MARGIN + cols * CELL + gap
    for r in range(rows):
        for c in range(cols):
            pad = r < padding[0] or c < padding[1] or r >= rows - padding[0] or c >= cols - padding[1]
            fill = WINDOW_FILL if (r, c) in read else PAD_FILL if pad else "#fdf6e3"
            pic.boxes.append(Box(x0 + c * CELL, top + r * CELL, CELL, CELL, fill, dashed=pad, rounded=False))
    for r in range(out_rows):
        for c in range(out_cols):
            fill = ERROR_FILL if (r, c) == target else "#fdf6e3"
            pic.boxes.append(Box(x1 + c * CELL, top + r * CELL, CELL, CELL, fill, rounded=False))
    tx, ty = x1 + (target[1] + 0.5) * CELL, top + (target[0] + 0.5) * CELL
    centre_r = sum(r for r, _ in read) / len(read)
    centre_c = sum(c for _, c in read) / len(read)
    wx, wy = x0 + (max(c for _, c in read) + 1) * CELL, top + (centre_r + 0.5) * CELL
    pic.lines.append(Line(wx + 4, wy - 6, tx - CELL / 2 - 4, ty - 6, FORWARD_COLOUR, arrow=True, width=1.6))
    for r, c in sorted(read):
        pic.lines.append(Line(tx - CELL / 2 - 4, ty + 6, x0 + (c + 0.5) * CELL, top + (r + 0.5) * CELL,
                              BACKWARD_COLOUR, arrow=True, width=0.9))
    del centre_c
    pic.texts.append(Text(x0 + cols * CELL / 2, top - 14, _words(words["input"]), size="small"))
    pic.texts.append(Text(x1 + out_cols * CELL / 2, top - 14, _join(quantity("z", layer), _words(words["output"]),
                                                                     sep=" "), size="small"))
    pic.texts.append(Text(width / 2, height - MARGIN / 2, _words(words["legend"]), size="small"))
    return pic
