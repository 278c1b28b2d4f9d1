"""derivation.ipynb: the derivation as Markdown cells, then the model, a gradient check and a training run.

The Markdown cells are the Markdown document itself, one cell per section (each rendered by the
Markdown template's own `section` macro), with the picture of the network attached to its cell (no
file beside the notebook needed) and section links turned into plain text (Jupyter names heading
anchors differently from GitHub). The code cells are the
generated `model.py` and `templates/notebook_cells.py.j2`, generic code over the model's API.

The notebook is written unexecuted, with fixed cell ids, so the same command writes the same bytes;
running it is the reader's (and the test suite's) job. Needs the `notebook` extra (nbformat).
"""

from __future__ import annotations

import base64
import re

from derive.document import Document
from derive.errors import DeriveError
from derive.present import Text
from derive.render import render
from derive.spec import MLPSpec

LEARNING_RATE = 0.2
TRAINING_STEPS = 400
_LINK = re.compile(r"\[([^\]]+)\]\(#[^)]*\)")
_NOTE = re.compile(r"\[\^(\d+)\](:?)")  # a Markdown footnote: Jupyter's renderer has no footnotes


def _superscript_notes(source: str) -> str:
    """Footnote marks and their notes as superscript numbers, which every notebook viewer shows."""
    return _NOTE.sub(r"<sup>\1</sup>", source)


def require() -> None:
    try:
        import nbformat  # noqa: F401
    except ImportError:
        raise DeriveError("--format ipynb needs nbformat; install the notebook extra: pip install 'derive[notebook]'") from None


def notebook(doc: Document, markdown, model_source: str, spec: MLPSpec) -> bytes:
    """The notebook's bytes, from the Markdown document (its structure, and the Markdown template as a
    module whose macros render the head and each section) and the generated model."""
    import nbformat
    from nbformat import v4

    text = Text(spec.lang, "md")
    cells = []

    def markdown_cell(source: str, **extra):
        cell = v4.new_markdown_cell(source.strip("\n"), **extra)
        cells.append(cell)

    def code_cell(source: str):
        cells.append(v4.new_code_cell(source.strip("\n")))

    markdown_cell(markdown.head(doc, False) + "\n\n" + doc.generated + "\n\n" + text("notebook.intro"))
    pictures = [b for s in doc.sections for b in s.blocks if b.kind == "picture"]  # the network's, a window's …
    for section in doc.sections:
        source = _superscript_notes(_LINK.sub(r"\1", markdown.section(section)))
        part, heading, rest = source.rpartition("\n## ")
        if heading and not source.startswith("## "):  # a part opens before this section (the reference part)
            markdown_cell(part)
            source = "## " + rest
        attachments = {}
        for picture in pictures:
            if f"]({picture.file})" in source:
                source = source.replace(f"]({picture.file})", f"](attachment:{picture.file})")
                attachments[picture.file] = {"image/svg+xml": base64.b64encode(picture.svg.encode()).decode()}
        if attachments:
            markdown_cell(source, attachments=attachments)
        else:
            markdown_cell(source)

    number = len(doc.sections)
    markdown_cell(f"## {number + 1}. {text('notebook.model_title')}\n\n{text('notebook.model')}")
    code_cell(model_source)
    words = {key: repr(text.raw(f"notebook.{key}")) for key in
             ("check_result", "loss_before", "loss_after", "step", "cost", "plot_title")}
    fonts = [f.strip() for f in text.raw("language.plot_fonts").split(",") if f.strip()]
    script = render("notebook_cells.py.j2", {"words": words, "plot_fonts": repr(fonts),
                                             "learning_rate": LEARNING_RATE, "steps": TRAINING_STEPS})
    check, training = [part.split("\n", 1)[1] for part in re.split(r"(?m)^# %% ", script)[1:]]
    markdown_cell(f"## {number + 2}. {text('notebook.check_title')}\n\n{text('notebook.check')}")
    code_cell(check)
    markdown_cell(f"## {number + 3}. {text('notebook.training_title')}\n\n"
                  f"{text('notebook.training', update_rule=doc.section('update_rule').number)}")
    code_cell(training)

    nb = v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    for n, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{n:02d}"  # fixed ids: the same command writes the same bytes
    nbformat.validate(nb)
    return (nbformat.writes(nb) + "\n").encode()
