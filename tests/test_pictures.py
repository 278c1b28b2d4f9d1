"""The picture of the network: one layout, drawn as SVG and as TikZ."""

import re
import xml.etree.ElementTree as ET

from derive import pictures

WORDS = {"input": "input", "layer": "layer {layer}", "loss": "loss", "units": "n = {units}",
         "forward": "forward: z, a", "backward": "backward: δ", "more_layers": "{count} more layers"}


def draw(sizes, acts=None, loss="mse"):
    acts = acts or ("sigmoid",) * (len(sizes) - 1)
    return pictures.layout(tuple(sizes), tuple(acts), loss, WORDS)


def labels(pic):
    return [t.label.plain for t in pic.texts]


def test_every_layer_is_a_column_with_its_size_and_activation():
    pic = draw((4, 5, 5, 3), ("relu", "relu", "softmax"), "ce")
    assert len(pic.circles) == 4 + 5 + 5 + 3
    text = labels(pic)
    for expected in ("input", "layer 1", "layer 2", "layer 3", "n₀ = 4", "n₁ = 5", "n₂ = 5", "n₃ = 3", "relu", "softmax", "ce",
                     "z⁽¹⁾, a⁽¹⁾", "z⁽³⁾, a⁽³⁾", "δ⁽¹⁾", "δ⁽³⁾", "∂C/∂a⁽³⁾"):
        assert expected in text, expected
    forward = [l for l in pic.lines if l.arrow and l.colour == pictures.FORWARD_COLOUR and l.y1 == l.y2]
    backward = [l for l in pic.lines if l.arrow and l.colour == pictures.BACKWARD_COLOUR and l.y1 == l.y2]
    assert all(l.x2 > l.x1 for l in forward) and all(l.x2 < l.x1 for l in backward)
    assert len(forward) == len(backward) == 3 + 1 + 1  # between layers, to/from the loss, the legend


def test_the_orange_path_names_its_units_as_the_sum_over_paths_does():
    """Review 23, defect 13: k in the input, j₁, j₂, j₃ after it, each beside a unit the path passes."""
    pic = draw((4, 5, 5, 3))
    path = [l for l in pic.lines if l.colour == pictures.PATH_COLOUR]
    named = [t for t in pic.texts if t.colour == pictures.PATH_COLOUR]
    assert [t.label.plain for t in named] == ["k", "j₁", "j₂", "j₃"]
    assert [t.label.tex for t in named] == ["$k$", "$j_{1}$", "$j_{2}$", "$j_{3}$"]
    starts = [(l.x1 - pictures.RADIUS, l.y1) for l in path] + [(path[-1].x2 + pictures.RADIUS, path[-1].y2)]
    for t, (x, y) in zip(named, starts):  # just above and right of the unit it names
        assert 0 < t.x - x <= pictures.RADIUS and 0 < y - t.y <= pictures.RADIUS + 4


def test_large_layers_are_drawn_with_an_ellipsis():
    pic = draw((784, 128, 7))
    per_column = {}
    for c in pic.circles:
        per_column[c.x] = per_column.get(c.x, 0) + 1
    drawn = pictures.HEAD + pictures.TAIL
    assert list(per_column.values()) == [drawn, drawn, 7]  # 7 units still fit
    assert sum(1 for _, _, vertical in pic.dots if vertical) == 2  # one ellipsis for 784, one for 128
    assert "n₀ = 784" in labels(pic) and "n₁ = 128" in labels(pic)


def test_deep_networks_show_first_and_last_layers():
    pic = draw((4,) + (5,) * 19 + (3,))
    text = labels(pic)
    assert "layer 1" in text and "layer 20" in text and "layer 10" not in text
    assert "16 more layers" in text
    assert any(not vertical for _, _, vertical in pic.dots)
    assert any(l.dashed for l in pic.lines)


def test_svg_is_well_formed_and_draws_the_layout():
    pic = draw((4, 5, 3))
    root = ET.fromstring(pictures.svg(pic, "the network"))
    ns = "{http://www.w3.org/2000/svg}"
    assert root.find(f"{ns}title").text == "the network"
    assert len(root.findall(f"{ns}circle")) == len(pic.circles)  # no ellipsis dots here
    assert [t.text for t in root.findall(f"{ns}text")] == labels(pic)


def test_tikz_draws_the_same_shapes():
    pic = draw((784, 5, 3))
    tikz = pictures.tikz(pic)
    assert tikz.startswith(r"\begin{tikzpicture}") and tikz.rstrip().endswith(r"\end{tikzpicture}")
    assert len(re.findall(r"circle \((?!0\.6pt)", tikz)) == len(pic.circles)
    assert len(re.findall(r"\\node", tikz)) == len(pic.texts)
    assert r"$\delta^{(1)}$" in tikz and r"$z^{(2)}$, $a^{(2)}$" in tikz
    assert r"backward: $\delta$" in tikz  # words go through the LaTeX escaping of prose


def test_pictures_are_deterministic():
    assert pictures.svg(draw((4, 5, 3)), "t") == pictures.svg(draw((4, 5, 3)), "t")


def test_the_loss_box_holds_its_title_however_long():
    """The loss is named by its title in the document's language (not the catalog's short name), and
    its box grows to hold it: a long title breaks at spaces, and the picture widens with the box."""
    short, long = draw((4, 5, 3), loss="squared error"), draw((4, 5, 3), loss="categorical cross entropy")
    assert "squared error" in labels(short)
    assert "categorical" in labels(long) and "cross entropy" in labels(long)
    for pic, title in ((short, "squared error"), (long, "cross entropy")):
        box = pic.boxes[-1]
        assert box.width >= pictures._small_width(title)
        assert box.x + box.width + pictures.MARGIN <= pic.width
    assert long.boxes[-1].height > short.boxes[-1].height
    assert draw((4, 5, 3), loss="平方误差").boxes[-1].width >= 4 * 12


def test_a_quantity_is_labelled_as_the_documents_print_it():
    """Quantity.text(), the pictures' Unicode label, spells what latex() prints: the minibatch error
    as D⁽ˡ⁾, the letter the lesson writes, not Δ (a small change)."""
    import unicodedata

    from derive.notation import _KINDS, _LAYERLESS, Q

    def greek(match):  # \alpha → α, the letter a Unicode label writes
        return unicodedata.lookup(f"GREEK SMALL LETTER {match.group(1).upper()}")

    for kind in _KINDS:  # other modules' kinds too, once imported (attention's \mathrm{…} scores are not letters)
        q = Q(kind) if kind in _LAYERLESS else Q(kind, 2)
        if re.search(r"\\(?!alpha|beta|gamma|delta|epsilon|zeta|eta|theta|mu|sigma|tau|phi|psi|omega)[a-z]+", q.latex()):
            continue
        assert q.text() == re.sub(r"\\([a-z]+)", greek, q.latex()).replace("^{(2)}", "⁽²⁾"), kind
    assert Q("Delta", 2).text() == "D⁽²⁾"
