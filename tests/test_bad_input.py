"""Bad input: a one-line error naming the value and what is accepted, a non-zero exit, no file."""

import os

import pytest
from click.testing import CliRunner

from derive.cli import main

BAD = [
    (["--layers", "0", "--act", "sigmoid"], "'0'|0", "1 to 128"),
    (["--layers", "-1", "--act", "sigmoid"], "-1", "1 to 128"),
    (["--layers", "abc", "--act", "sigmoid"], "'abc'", "whole number"),
    (["--layers", "2.5", "--act", "sigmoid"], "'2.5'", "whole number"),
    (["--layers", "999", "--act", "sigmoid"], "999", "1 to 128"),
    (["--layers", "3", "--act", "swish2"], "'swish2'", "identity, sigmoid, tanh, relu"),
    (["--layers", "3", "--act", "sigmoid", "--loss", "hinge"], "'hinge'", "mse, ce, bce"),
    (["--layers", "3", "--act", "sigmoid", "--out-act", "bogus"], "'bogus'", "softmax"),
    (["--layers", "3", "--act", "softmax"], "'softmax'", "--out-act"),
    (["--layers", "3", "--act", "relu,tanh,relu"], "'relu,tanh,relu'", "2 hidden layers"),
    (["--layers", "3", "--act", "relu,,tanh"], "'relu,,tanh'", "empty"),
    (["--layers", "3", "--act", "sigmoid", "--format", ""], "''", "md, tex, py, json"),
    (["--layers", "3", "--act", "sigmoid", "--format", ","], "','", "md, tex, py, json"),
    (["--layers", "3", "--act", "sigmoid", "--format", "md,docx"], "'docx'", "md, tex, py, json"),
    (["--layers", "3", "--act", "sigmoid", "--sizes", "4,5,3"], "'4,5,3'", "needs 4"),
    (["--layers", "2", "--act", "sigmoid", "--sizes", "7"], "'7' has 1 number;", "needs 3"),
    (["--layers", "2", "--act", "sigmoid", "--sizes", "4,0,3"], "'0'", "whole numbers"),
    (["--layers", "2", "--act", "sigmoid", "--sizes", "4,x,3"], "'x'", "whole numbers"),
    (["--layers", "2", "--act", "relu", "--loss", "ce", "--out-act", "relu"], "'relu'", "sigmoid or softmax"),
    (["--layers", "2", "--act", "relu", "--loss", "bce", "--out-act", "softmax"], "'softmax'", "sigmoid"),
    (["--layers", "2", "--act", "relu", "--loss", "ce", "--sizes", "3,4,1"], "1", "at least 2"),
]


def snapshot(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("args, names, accepted", BAD, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_value_is_a_one_line_error_and_nothing_is_written(tmp_path, workdir, args, names, accepted):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["mlp", *args, "--out", str(out)])
    assert os.listdir(workdir) == []  # not even outputs/
    assert result.exit_code == 2
    message = result.output.strip()
    assert "\n" not in message and message.startswith("derive: error:")
    assert any(n in message for n in names.split("|")), message
    assert accepted in message, message
    assert not out.exists()


def test_existing_files_are_left_untouched_on_error(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "derivation.md").write_text("keep me")
    before = snapshot(out)
    result = CliRunner().invoke(main, ["mlp", "--layers", "x", "--act", "relu", "--out", str(out)])
    assert result.exit_code == 2
    assert snapshot(out) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    result = CliRunner().invoke(main, ["mlp", "--layers", "1", "--act", "relu", "--out", str(locked / "sub")])
    assert result.exit_code == 2 and "--out" in result.output and "\n" not in result.output.strip()


def test_output_path_that_is_a_file(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    result = CliRunner().invoke(main, ["mlp", "--layers", "1", "--act", "relu", "--out", str(target / "sub")])
    assert result.exit_code == 2
    message = result.output.strip()
    assert "--out" in message and "\n" not in message
    assert target.read_text() == "x"


def test_missing_required_option_is_one_line():
    result = CliRunner().invoke(main, ["mlp", "--layers", "3"])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "--act" in result.output


@pytest.mark.parametrize("out", ["", "   "])
def test_an_empty_out_is_refused(workdir, out):
    """Path('') is the current folder: --out "" wrote the files there."""
    result = CliRunner().invoke(main, ["mlp", "--layers", "1", "--act", "tanh", "--out", out])
    assert result.exit_code == 2
    message = result.output.strip()
    assert "\n" not in message and "invalid value for --out" in message and "is empty" in message
    assert os.listdir(workdir) == []


def test_a_folder_name_the_file_system_refuses_is_reported_before_any_work(workdir):
    result = CliRunner().invoke(main, ["mlp", "--layers", "1", "--act", "tanh", "--out", "a/" + "x" * 300])
    assert result.exit_code == 2
    message = result.output.strip()
    assert "\n" not in message and "invalid value for --out" in message and "too long" in message
    assert len(message) < 300 and os.listdir(workdir) == []


def test_a_failed_write_leaves_no_file_and_no_empty_folder(workdir, monkeypatch):
    """A write that fails halfway (here the third file, as a full disk would) removes the files it
    wrote and the folders it created: no partial set, no empty outputs/."""
    import derive.render

    real = derive.render.os.fdopen
    calls = []

    def failing(fd, *args, **kwargs):
        calls.append(fd)
        if len(calls) == 3:
            os.close(fd)
            raise OSError(28, "No space left on device")
        return real(fd, *args, **kwargs)

    monkeypatch.setattr(derive.render.os, "fdopen", failing)
    result = CliRunner().invoke(main, ["mlp", "--layers", "1", "--act", "tanh"])
    assert result.exit_code == 2 and "No space left on device" in result.output
    assert len(calls) == 3 and os.listdir(workdir) == []
