"""Jinja2 environments (the files are written by `derive.files`).

Templates receive plain data (strings, numbers, lists, dicts) and hold layout and prose structure
only; all mathematics arrives already derived and printed. LaTeX templates use `<< >>` and `<% %>`
delimiters so that TeX braces never clash with Jinja's.
"""

from __future__ import annotations

import os
from pathlib import Path

import jinja2


def template_dir() -> Path:
    """Templates ship inside the wheel as derive/templates; in a source checkout they live in templates/."""
    packaged = Path(__file__).parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """Templates compiled once and kept between runs, like Python's __pycache__: Jinja checks every
    cached template against the checksum of its source (and its own version) before using it, so a
    changed template is recompiled. Saves the ~0.15 s a run otherwise spends compiling templates.

    The folder is created when the first compiled template is stored, so importing derive or a run
    that stops at bad input writes nothing; a cache that cannot be written is silently skipped.
    """

    def dump_bytecode(self, bucket) -> None:
        try:
            os.makedirs(self.directory, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            pass


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """The user's template cache (~/.cache/derive/templates-VERSION); off with DERIVE_NO_TEMPLATE_CACHE."""
    from derive import __version__
    from derive.files import user_cache

    folder = user_cache(f"templates-{__version__}")
    return _TemplateCache(str(folder)) if folder is not None else None


_BYTECODE_CACHE = _bytecode_cache()


def _environment(**delimiters) -> jinja2.Environment:
    return jinja2.Environment(
        bytecode_cache=_BYTECODE_CACHE,
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        **delimiters,
    )


TEXT_ENV = _environment()


def table_cell(cell: str) -> str:
    """A Markdown table cell whose bars cannot end the cell: a bar splits a GitHub table row even
    inside $…$, so in math it becomes \\vert (the same glyph) and in prose an escaped bar."""
    parts = cell.split("$")
    return "$".join(part.replace("|", r"\vert{}") if n % 2 else part.replace("|", r"\|") for n, part in enumerate(parts))


TEXT_ENV.filters["cell"] = table_cell
TEX_ENV = _environment(
    block_start_string="<%",
    block_end_string="%>",
    variable_start_string="<<",
    variable_end_string=">>",
    comment_start_string="<#",
    comment_end_string="#>",
)


# HTML: the same delimiters as Markdown, plus filters that render LaTeX formulas as MathML at build
# time (latex2mathml is imported only when such a filter runs)
HTML_ENV = _environment()
HTML_ENV.filters["display"] = lambda tex: _mathml().display(tex)
HTML_ENV.filters["inline"] = lambda tex: _mathml().inline(tex)


def _mathml():
    from derive import mathml

    return mathml


def _env(template: str) -> jinja2.Environment:
    return TEX_ENV if template.endswith(".tex.j2") else HTML_ENV if template.endswith(".html.j2") else TEXT_ENV


def render(template: str, context: dict) -> str:
    return _env(template).get_template(template).render(**context)


def template_module(template: str, context: dict):
    """The template rendered with `context` as a module: str() of it is the rendered text, and its
    macros can be called on their own (the notebook renders the Markdown section by section)."""
    return _env(template).get_template(template).make_module(context)
