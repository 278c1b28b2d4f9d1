"""The generated model.py reads as the lesson's code: `forward`, `loss` and `gradients` first (the lines
the algorithm's table pairs with formulas), then initialisation, optimizer and training, and the input
checks and numerical helpers at the end below one marked line; the module docstring's map names the
functions in the order the file has them, and no docstring breaks mid-phrase (review 21, defect 6).
The workspace form is not in it but in model_inplace.py beside it, which imports from model.py what
it reads (review 23, defect 12). A MLP with its loop form, a network with dropout, a CNN with
numerical helpers, an LSTM."""

from __future__ import annotations

import ast
import re
from dataclasses import replace

import pytest

from derive.derivation import backward_pass
from derive.model import make_net_spec, make_spec
from derive.inplace import INPLACE_FILE, package_sources, shared_names
from derive.rnn import build_rnn, make_rnn_spec
from derive.rnn_run import TEMPLATES, model_context
from derive.run import generate
from derive.verify import load_package

BANNER = "# Below: "
CHECKS = {"_check_inputs", "_mismatch", "_shape", "_keys"}
FAST_PATH = {"_filled", "_product_for", "_steps", "Workspace", "gradients_into", "sgd_step"}


def _files(spec) -> tuple[str, str]:
    files = generate(replace(spec, formats=("py",))).files
    return files["model.py"].decode(), files[INPLACE_FILE].decode()


def _mlp() -> tuple[str, str]:
    return _files(make_spec(3, "sigmoid", None, "mse"))


def _net(path: str) -> tuple[str, str]:
    return _files(make_net_spec(path))


def _lstm() -> tuple[str, str]:
    model = build_rnn(make_rnn_spec(cell="lstm", inputs=3, hidden=4, steps=4, output="last", units=2))
    return package_sources(*TEMPLATES, model_context(model, backward_pass(model.network, True), title="t",
                                                     command="c", version="v"))


SOURCES = {"mlp": _mlp, "dropout": lambda: _net("examples/dropout_mlp.toml"),
           "cnn": lambda: _net("examples/cnn_lenet_like.toml"), "lstm": _lstm}


@pytest.fixture(scope="module", params=sorted(SOURCES))
def source(request) -> tuple[str, str, str]:
    """(kind, model.py, model_inplace.py)."""
    return request.param, *SOURCES[request.param]()


def _top_level(text: str) -> list[tuple[str, int]]:
    """(name, line) of every function and class, in file order."""
    return [(node.name, node.lineno) for node in ast.parse(text).body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))]


def test_the_formulas_come_first_and_the_checks_last(source):
    kind, text, _ = source
    names = [name for name, _ in _top_level(text)]
    core = ["forward", "loss", "gradients"] if kind == "lstm" else ["forward", "_forward", "loss", "gradients"]
    assert names[:len(core)] == core, names
    assert ("backprop" in names) == (kind == "mlp") and (kind != "mlp" or names[len(core)] == "backprop")
    lines = text.splitlines()
    banners = [n for n, line in enumerate(lines, start=1) if line.startswith(BANNER)]
    assert len(banners) == 1, banners
    lines_of = dict(_top_level(text))
    above = {name for name, line in lines_of.items() if line < banners[0]}
    below = {name for name, line in lines_of.items() if line > banners[0]}
    assert {"init_params", "init_state", "update", "train"} <= above
    assert lines_of["gradients"] < lines_of["init_params"] < lines_of["update"] < lines_of["train"] < banners[0]
    assert CHECKS & set(names) <= below and (kind == "lstm" or CHECKS <= below)
    if kind == "dropout":  # the network's own functions, which train() calls, stay above the line
        assert {"dropout_mode", "draw_masks"} <= above
    if kind == "cnn":  # the numerical helpers the formulas call are below it
        assert {"_conv", "_max_pool", "_softmax"} <= below
    if kind == "lstm":  # the demonstration ends the file
        assert lines[-1].startswith("    print(") and "if __name__ == \"__main__\":" in text.split(BANNER)[1]


def test_the_docstring_map_names_the_functions_in_file_order(source):
    _, text, _ = source
    docstring = ast.get_docstring(ast.parse(text))
    paragraph = docstring[docstring.index("Read from the top"):]
    named = [name for name in re.findall(r"`(\w+)`", paragraph) if name != "python"]
    lines_of = dict(_top_level(text))
    assert set(named) <= set(lines_of), set(named) - set(lines_of)
    assert [lines_of[name] for name in named] == sorted(lines_of[name] for name in named), named
    # the map names every public function (dropout_mode, predict, accuracy, …)
    assert {name for name in lines_of if not name.startswith("_")} <= set(named)


def test_no_docstring_breaks_a_phrase_at_a_line_end(source):
    """Every line of a paragraph of a function's docstring but its last runs near the margin (the
    review found train's '(sgd; `hyper`' / 'goes to update)'); in both files."""
    kind, text, inplace = source
    for node in [*ast.walk(ast.parse(text)), *ast.walk(ast.parse(inplace))]:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node):
            for paragraph in ast.get_docstring(node).split("\n\n"):
                lines = paragraph.splitlines()
                assert all(len(line) >= 80 for line in lines[:-1]), (node.name, lines)
    for each in [text] if kind == "lstm" else [text, inplace]:
        train = next(node for node in ast.parse(each).body if isinstance(node, ast.FunctionDef) and node.name == "train")
        assert "`hyper`" in ast.get_docstring(train) and "update()" in ast.get_docstring(train)


def test_the_reordered_module_imports_and_its_gradients_run(source):
    kind, text, inplace = source
    module, fast = load_package(text, inplace, f"layout_{kind}")
    assert callable(module.gradients) and callable(module.train) and callable(fast.gradients_into)


def test_the_workspace_form_is_in_its_own_file_which_imports_what_it_reads_from_model(source):
    """model.py names no part of the workspace form (its train calls `gradients`); model_inplace.py
    defines it and imports from model.py exactly the names it reads that model.py defines."""
    kind, text, inplace = source
    names = {name for name, _ in _top_level(text)}
    fast = {name for name, _ in _top_level(inplace)}
    lesson = {"sgd_step"} if kind == "lstm" else set()  # the recurrent model.py's own sgd_step(params, grads, lr)
    assert not (FAST_PATH - lesson) & names and {"Workspace", "gradients_into"} <= fast, FAST_PATH & names
    assert "gradients_into" not in text and "Workspace(" not in text  # (the CNN's helpers name its work arrays)
    assert ("sgd_step" in fast) == (kind != "lstm")
    imported = next(node for node in ast.parse(inplace).body if isinstance(node, ast.ImportFrom))
    assert imported.module == "model" and [a.name for a in imported.names] == shared_names(text, inplace)
    assert not CHECKS & fast and (kind == "lstm" or "_check_inputs" in names)  # the friendly errors stay in model.py
    assert ("train" in fast) == (kind != "lstm")
