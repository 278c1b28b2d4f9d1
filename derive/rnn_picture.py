"""The picture of a recurrent network unrolled in time, in the shared shapes of `derive.pictures`.

One column per step (the first three, an ellipsis, the last): the input x_t at the bottom, the
state h_t of the recurrent layers in a box, the head's output and the loss above it (at every step,
or at the last step only). Blue arrows: the forward pass (x_t → h_t, h_{t−1} → h_t, h_t → loss).
Red arrows: the backward pass (the loss's error into h_t, and the error of h_{t+1} back into h_t:
the two paths whose sum the derivation gives).
"""

from __future__ import annotations

from derive.pictures import (BACKWARD_COLOUR, FORWARD_COLOUR, MARGIN, Box, Label, Line, Picture, Text, _legend, svg,
                             tikz)
from derive.rnn import RNNModel

STEP_GAP, BOX_W, BOX_H = 150, 70, 40


def _label(tex: str, plain: str) -> Label:
    return Label(f"${tex}$", plain)


def unrolled(model: RNNModel, words: dict[str, str]) -> Picture:
    steps = [("0", "0"), ("1", "1"), ("2", "2"), None, ("T-1", "T−1")]
    all_steps = model.spec.output != "last"
    top, mid, bottom = MARGIN + 30, MARGIN + 130, MARGIN + 230
    width = 2 * MARGIN + STEP_GAP * (len(steps) - 1) + BOX_W + 40
    pic = Picture(width=width, height=bottom + 90)
    xs = [MARGIN + 40 + BOX_W / 2 + n * STEP_GAP for n in range(len(steps))]
    for n, step in enumerate(steps):
        x = xs[n]
        if step is None:
            pic.dots.append((x, mid + BOX_H / 2, False))
            continue
        tex, plain = step
        pic.boxes.append(Box(x - BOX_W / 2, mid, BOX_W, BOX_H))
        pic.texts.append(Text(x, mid + BOX_H / 2 + 5, _label(f"h_{{{tex}}}", f"h_{plain}")))
        pic.texts.append(Text(x, bottom + 25, _label(f"x_{{{tex}}}", f"x_{plain}")))
        pic.lines.append(Line(x, bottom + 8, x, mid + BOX_H + 2, FORWARD_COLOUR, arrow=True, width=1.2))
        if all_steps or n == len(steps) - 1:
            pic.texts.append(Text(x, top - 4, _label(f"C_{{{tex}}}", f"C_{plain}")))
            pic.lines.append(Line(x - 6, mid - 2, x - 6, top + 4, FORWARD_COLOUR, arrow=True, width=1.2))
            pic.lines.append(Line(x + 6, top + 4, x + 6, mid - 2, BACKWARD_COLOUR, arrow=True, width=1.2))
    for n in range(len(steps) - 1):  # h_{t−1} → h_t above the middle, the error of h_{t+1} back below it
        left, right = xs[n] + BOX_W / 2 + 2, xs[n + 1] - BOX_W / 2 - 2
        if steps[n] is None or steps[n + 1] is None:
            left, right = (left, xs[n + 1] - 14) if steps[n + 1] is None else (xs[n] + 14, right)
        pic.lines.append(Line(left, mid + 12, right, mid + 12, FORWARD_COLOUR, arrow=True, width=1.2))
        pic.lines.append(Line(right, mid + BOX_H - 12, left, mid + BOX_H - 12, BACKWARD_COLOUR, arrow=True, width=1.2))
    _legend(pic, words["forward"], words["backward"], 170)
    return pic


def picture_block(model: RNNModel, text):
    """The picture as a document block in the format of `text` (SVG, or TikZ for LaTeX)."""
    from derive import document as blocks
    from derive.present import PICTURE_FILE

    words = {key: text.raw(f"rnn.picture_{key}") for key in ("forward", "backward")}
    layout = unrolled(model, words)
    alt = text.raw("rnn.picture_alt")
    return blocks.Picture(caption=text("rnn.picture_caption"), alt=alt, file=PICTURE_FILE,
                          svg=svg(layout, alt) if text.fmt != "tex" else None,
                          tikz=tikz(layout) if text.fmt == "tex" else None, label="fig:unrolled")
