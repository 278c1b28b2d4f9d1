"""The picture of an attention layer's score matrix, in the shared shapes of `derive.pictures`.

Two grids of a tiny sequence (query token j down, key token u across): the scores S and the
attention weights α = softmax over the keys of each row. With the causal mask the cells u > j are
blank (dashed; their weight is exactly 0). One row is filled in both grids: the softmax reads that
row of S only and its weights sum to 1 (blue arrow, forward); its error flows back along the same row,
dS = α ⊙ (dα − rowsum(dα ⊙ α)) (red arrow, backward). Only shapes: the formulas come from the catalog.
"""

from __future__ import annotations

import derive.layers.attention  # noqa: F401  registers the kinds this picture names (score, attw)
from derive.pictures import (BACKWARD_COLOUR, ERROR_FILL, FORWARD_COLOUR, MARGIN, PAD_FILL, WINDOW_FILL, Box, Label,
                             Line, Picture, Text, _words, quantity)

CELL = 30
GAP = 190  # between the two grids: room for the softmax arrow and its words (about 150 wide)
MAX_TOKENS = 6  # a longer sequence is drawn with its first six tokens (the pattern is the same)
ATTENTION_FILE = "attention.svg"


def masked(j: int, u: int, causal: bool) -> bool:
    """Whether the causal mask blanks the weight of key u for query j (the bracket [u ≤ j] is 0)."""
    return causal and u > j


def grid_origins(tokens: int) -> tuple[float, float, float]:
    """x of the score grid, x of the weight grid, y of both tops."""
    left = MARGIN + 24
    return left, left + tokens * CELL + GAP, MARGIN + 56


def attention_layout(tokens: int, causal: bool, layer: int, words: dict[str, str]) -> Picture:
    """The scores and the weights of one head for `tokens` tokens (at most MAX_TOKENS drawn); `words`
    (scores, weights, softmax, rows, backward, query, key) in the document's language."""
    n = min(tokens, MAX_TOKENS)
    row = min(2, n - 1)  # the row followed forward and back
    x0, x1, top = grid_origins(n)
    width = x1 + n * CELL + 150
    height = top + n * CELL + 78
    pic = Picture(width, height, boxes_first=True)
    for x, weights in ((x0, False), (x1, True)):
        for j in range(n):
            for u in range(n):
                blank = masked(j, u, causal)
                fill = PAD_FILL if blank else (ERROR_FILL if weights else WINDOW_FILL) if j == row else "#fdf6e3"
                pic.boxes.append(Box(x + u * CELL, top + j * CELL, CELL, CELL, fill, dashed=blank, rounded=False))
                if blank and weights:  # a masked weight is exactly 0
                    pic.texts.append(Text(x + (u + 0.5) * CELL, top + (j + 0.5) * CELL + 4, Label("$0$", "0"),
                                          size="small"))
        for k in range(n):  # the token numbers: keys across, queries down
            pic.texts.append(Text(x + (k + 0.5) * CELL, top - 6, Label(f"${k}$", str(k)), size="small"))
            pic.texts.append(Text(x - 8, top + (k + 0.5) * CELL + 4, Label(f"${k}$", str(k)), size="small",
                                  anchor="end"))
        pic.texts.append(Text(x + n * CELL / 2, top - 22, _named(words["key"], "u"), size="small"))
    pic.texts.append(Text(x0 + n * CELL / 2, top - 40, _title(quantity("score", layer), words["scores"])))
    pic.texts.append(Text(x1 + n * CELL / 2, top - 40, _title(quantity("attw", layer), words["weights"])))
    pic.texts.append(Text(x0 - 8, top + n * CELL + 16, _named(words["query"], "j"), size="small", anchor="start"))
    y = top + (row + 0.5) * CELL
    pic.lines.append(Line(x0 + n * CELL + 6, y - 6, x1 - 22, y - 6, FORWARD_COLOUR, arrow=True, width=1.6))
    pic.lines.append(Line(x1 - 22, y + 6, x0 + n * CELL + 6, y + 6, BACKWARD_COLOUR, arrow=True, width=1.6))
    middle = x0 + n * CELL + GAP / 2 - 8
    pic.texts.append(Text(middle, y - 14, _words(words["softmax"]), size="small", colour=FORWARD_COLOUR))
    pic.texts.append(Text(middle, y + 24, _words(words["backward"]), size="small", colour=BACKWARD_COLOUR))
    pic.texts.append(Text(x1 + n * CELL + 10, y + 4, _words(words["rows"]), size="small", anchor="start"))
    pic.texts.append(Text(width / 2, height - 16, Label(words["error_tex"], words["error_plain"]), size="small",
                          colour=BACKWARD_COLOUR))
    return pic


def _named(word: str, letter: str) -> Label:
    """Words followed by an index letter, the letter in math in TikZ."""
    return Label(f"{_words(word).tex} ${letter}$", f"{word} {letter}")


def _title(symbol: Label, word: str) -> Label:
    return Label(f"{symbol.tex} {_words(word).tex}", f"{symbol.plain} {word}")


def attention_picture(tokens: int, causal: bool, layer: int, text):
    """The picture as a document block in the format of `text` (SVG, or TikZ for LaTeX)."""
    from derive import document as blocks
    from derive.pictures import svg, tikz

    words = {key: text.raw(f"attention_picture.{key}")
             for key in ("scores", "weights", "softmax", "rows", "backward", "query", "key", "error_tex", "error_plain")}
    layout = attention_layout(tokens, causal, layer, words)
    alt = text.raw("attention_picture.alt")
    caption = text("attention_picture.caption_causal" if causal else "attention_picture.caption", layer=str(layer))
    return blocks.Picture(caption=caption, alt=alt, file=ATTENTION_FILE,
                          svg=svg(layout, alt, ids="attention-") if text.fmt != "tex" else None,
                          tikz=tikz(layout) if text.fmt == "tex" else None, label="fig:attention")


__all__ = ["attention_layout", "attention_picture", "masked", "grid_origins", "CELL", "MAX_TOKENS", "ATTENTION_FILE"]
