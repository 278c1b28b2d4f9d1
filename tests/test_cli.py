"""The command line, through Click's CliRunner and as a real process."""

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from derive import __version__
from derive.cli import main


def run(args, **kwargs):
    return CliRunner().invoke(main, args, catch_exceptions=False, **kwargs)


def test_main_job_writes_the_files_and_reports_the_verdict(tmp_path):
    result = run(["mlp", "--layers", "3", "--act", "sigmoid", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    # the four default formats, the two code files, and the pictures derivation.md shows: the network and its worked example
    assert names == ["derivation.json", "derivation.md", "derivation.tex", "example.svg", "model.py", "model_inplace.py", "network.svg"]
    for name in names:
        assert f"wrote {tmp_path / name}" in result.output
    assert "verification passed" in result.output
    assert "18 partial derivatives match direct differentiation" in result.output
    # what was checked, and to what precision: the measured difference and the one tolerance
    assert re.search(r"; 73 in model\.py match complex-step derivatives \(relative difference < 1e-1[0-6]; "
                     r"required 1e-9\);", result.output), result.output


def test_default_output_folder(workdir):
    result = CliRunner().invoke(main, ["mlp", "--layers", "2", "--act", "tanh", "--loss", "bce"])
    assert result.exit_code == 0, result.output
    folder = workdir / "outputs" / "mlp-L2-tanh-sigmoid-bce"
    assert (folder / "derivation.md").is_file()


@pytest.mark.parametrize("formats, expected", [("md", ["derivation.md", "example.svg", "network.svg"]), ("py,json", ["derivation.json", "model.py", "model_inplace.py"]),
                                                ("TEX", ["derivation.tex"])])
def test_format_selects_files(tmp_path, formats, expected):
    result = run(["mlp", "--layers", "1", "--act", "identity", "--format", formats, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == expected


def test_per_layer_activations_and_sizes(tmp_path):
    result = run(["mlp", "--layers", "3", "--act", "relu,tanh", "--sizes", "2,7,6,4", "--loss", "ce",
                  "--out", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    spec = json.loads((tmp_path / "derivation.json").read_text())["spec"]
    assert spec["activations"] == ["relu", "tanh", "softmax"] and spec["sizes"] == [2, 7, 6, 4]


def test_quiet_prints_nothing(tmp_path):
    result = run(["mlp", "--layers", "1", "--act", "sigmoid", "-q", "--out", str(tmp_path)])
    assert result.exit_code == 0 and result.output == ""


def test_version_and_help():
    assert run(["--version"]).output.strip() == f"derive {__version__}"
    help_text = run(["mlp", "--help"]).output
    for option in ("--layers", "--act", "--out-act", "--loss", "--sizes", "--format", "--out"):
        assert option in help_text


def test_python_dash_m_and_console_script(tmp_path):
    out = subprocess.run([sys.executable, "-m", "derive", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"derive {__version__}"
    done = subprocess.run([sys.executable, "-m", "derive", "mlp", "--layers", "2", "--act", "relu", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "model.py").is_file()
    # the entry point ends the process with os._exit: what it printed must still arrive, with the code
    # (seven files: md, tex, json, model.py, model_inplace.py and the two pictures)
    assert done.stdout.count("wrote ") == 7 and done.stdout.rstrip().splitlines()[-1].startswith("verification passed")
    bad = subprocess.run([sys.executable, "-m", "derive", "mlp", "--layers", "0", "--act", "relu",
                          "--out", str(tmp_path / "bad")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.startswith("derive: error:"), bad
    assert not (tmp_path / "bad").exists()
    assert bad.stderr.count("\n") == 1
    usage = subprocess.run([sys.executable, "-m", "derive", "mlp", "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "--layers" in usage.stdout
    piped = subprocess.run(f"{sys.executable} -m derive --help | head -1", shell=True, capture_output=True, text=True)
    assert piped.stdout.startswith("Usage:"), piped


def test_requested_formats_only(tmp_path):
    result = run(["mlp", "--layers", "2", "--act", "tanh", "--format", "html,json", "--lang", "zh", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["derivation.html", "derivation.json"]


def test_the_command_restores_the_garbage_collector(tmp_path):
    import gc

    assert gc.isenabled()
    result = CliRunner().invoke(main, ["mlp", "--layers", "1", "--act", "tanh", "--format", "py", "--out", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    assert gc.isenabled()
    result = CliRunner().invoke(main, ["mlp", "--layers", "0", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0 and gc.isenabled()


def test_bare_derive_prints_the_help_on_standard_output_and_exits_0():
    result = CliRunner().invoke(main, [], prog_name="derive")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: derive") and "mlp" in result.stdout and result.stderr == ""
    assert result.stdout == CliRunner().invoke(main, ["--help"], prog_name="derive").stdout
    done = subprocess.run([sys.executable, "-m", "derive"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("Usage: derive") and done.stderr == ""


def test_long_specifications_get_a_bounded_default_folder_name():
    """128 layers of one unit each named every size ('1x1x…x1', 257 characters): the file system
    refused the folder after the whole derivation had run."""
    from derive.model import make_spec
    from derive.spec import MAX_SLUG

    deep = make_spec(128, "z*tanh(z)", None, "mse", ",".join(["1"] * 129))
    assert deep.slug().startswith("mlp-L128-custom_") and "-sizes_" in deep.slug()
    assert len(deep.slug()) <= 60
    many = make_spec(7, "relu,tanh,elu,selu,z*tanh(z),z*sigmoid(z)", None, "(a-y)**4/4", "4,9,9,9,9,9,9,3",
                     optimizer="adam:lr=0.01,beta1=0.8,beta2=0.99,eps=1e-6,weight_decay=0.1,amsgrad=true",
                     l2="0.001", l1="0.0005", penalise_bias=True, lang="zh")
    assert len(many.slug()) <= MAX_SLUG and many.slug().startswith("mlp-L7-acts_")
    assert many.slug() == make_spec(7, "relu,tanh,elu,selu,z*tanh(z),z*sigmoid(z)", None, "(a-y)**4/4",
                                    "4,9,9,9,9,9,9,3", optimizer="adam:lr=0.01,beta1=0.8,beta2=0.99,eps=1e-6,"
                                    "weight_decay=0.1,amsgrad=true", l2="0.001", l1="0.0005",
                                    penalise_bias=True, lang="zh").slug()  # deterministic
    short = make_spec(3, "sigmoid")
    assert short.slug() == "mlp-L3-sigmoid-sigmoid-mse"  # short names are unchanged
