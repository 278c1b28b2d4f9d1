"""model_inplace.py: the workspace form of the generated code, in a file of its own beside model.py.

model.py is the lesson's code, read from the top (review 23, defect 12); the workspace form
(`Workspace`, `gradients_into`, `sgd_step`: the same formulas written into arrays allocated once) is
for training loops and would double its length. It imports from model.py what it shares with it (the
numerical helpers, the sizes); this module works out that list from the two sources, so that it is
always exactly the names the workspace form reads.
"""

from __future__ import annotations

import ast
import builtins
import textwrap
import types


INPLACE_FILE = "model_inplace.py"
MODEL_MODULE = "model"  # model_inplace.py imports model.py from its own folder under this name


def _defined(tree: ast.Module) -> dict[str, None]:
    """Top-level names a module defines (functions, classes, assigned names), in file order."""
    names: dict[str, None] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = None
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for name in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if isinstance(name, ast.Name):  # not `TABLE[key] = …`, which names nothing new
                        names[name.id] = None
    return names


def shared_names(model_source: str, body: str, tree: ast.Module | None = None) -> list[str]:
    """The names the workspace form reads that model.py defines and it does not, in model.py's order
    (`tree`: the body already parsed)."""
    tree = tree if tree is not None else ast.parse(body)
    read = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    own = _defined(tree)
    return [name for name in _defined(ast.parse(model_source)) if name in read and name not in own]


def import_lines(names: list[str]) -> list[str]:
    """`from model import a, b`, wrapped in parentheses at 100 characters when it is longer."""
    line = f"from {MODEL_MODULE} import {', '.join(names)}"
    if len(line) <= 100:
        return [line]
    wrapped = textwrap.wrap(", ".join(names), 96, break_long_words=False, break_on_hyphens=False)
    return [f"from {MODEL_MODULE} import (", *("    " + part for part in wrapped), ")"]


def inplace_source(model_source: str, body: str, *, title: str, command: str, version: str) -> str:
    """model_inplace.py: its docstring, the imports from model.py and the workspace form `body`."""
    tree = ast.parse(body)
    public = [name for name in _defined(tree) if not name.startswith("_")]
    from derive.render import render  # Jinja2: imported when code is written, not when a module is loaded

    names = shared_names(model_source, body, tree)
    return render("model_inplace.py.j2", {"title": title, "command": command, "version": version,
                                          "public": public, "imports": import_lines(names) if names else [],
                                          "body": body.strip("\n")})


def package_sources(model_template: str, workspace_template: str, context: dict) -> tuple[str, str | None]:
    """(model.py, model_inplace.py) rendered from one context; no model_inplace.py where the code has no
    workspace form (a GRU: its einsum has no in-place form)."""
    from derive.render import render

    source = render(model_template, context)
    if not context.get("workspace"):
        return source, None
    body = render(workspace_template, context)
    return source, inplace_source(source, body, title=context["title"], command=context["command"],
                                  version=context["version"])


def load_inplace(model: types.ModuleType, source: str, name: str = "derive_generated_inplace") -> types.ModuleType:
    """Import generated model_inplace.py source with `model` as the module its `from model import …`
    reads, without touching sys.modules (the engine and the tests load many models in one process)."""

    def importer(module_name, globals=None, locals=None, fromlist=(), level=0):
        if module_name == MODEL_MODULE and level == 0:
            return model
        return builtins.__import__(module_name, globals, locals, fromlist, level)

    module = types.ModuleType(name)
    module.__dict__["__builtins__"] = dict(vars(builtins), __import__=importer)
    from derive.verify import compiled_source

    exec(compiled_source(source, "<model_inplace.py>"), module.__dict__)  # noqa: S102 - generated code
    return module


def merged(model: types.ModuleType, inplace: types.ModuleType | None) -> types.ModuleType:
    """One namespace with the names of model.py and, over them, those of model_inplace.py (each
    function keeps its own module's globals): for the benchmarks, which time the workspace form's
    `sgd_step` beside `gradients` and `init_params` of the same package."""
    both = types.ModuleType(f"{model.__name__}_and_inplace")
    both.__dict__.update(vars(model))
    if inplace is not None:
        both.__dict__.update({k: v for k, v in vars(inplace).items() if k != "__builtins__"})
    return both
