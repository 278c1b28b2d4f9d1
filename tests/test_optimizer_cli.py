"""--optimizer on the command line: one-line errors for bad values, and what the outputs say."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from derive.cli import main
from derive.verify import load_module

BAD = [
    ("adamx", "'adamx'", "sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw"),
    ("", "''", "sgd, momentum"),
    ("adam:foo=1", "'foo'", "lr, betas (or beta1, beta2), eps, weight_decay, amsgrad"),
    ("sgd:momentum=0.9", "'momentum'", "belongs to momentum, nesterov, rmsprop"),
    ("adam:lr=abc", "lr='abc'", "decimal number"),
    ("adam:lr=nan", "lr='nan'", "decimal number"),
    ("adam:lr=1e999", "lr='1e999'", "finite"),
    ("sgd:lr=-0.1", "lr=-0.1", "lr >= 0"),
    ("adam:betas=(0.9,1.0)", "beta2=1.0", "[0, 1)"),
    ("adam:beta1=-0.1", "beta1=-0.1", "[0, 1)"),
    ("adamw:betas=0.9", "betas='0.9'", "betas=(0.9,0.999)"),
    ("adam:betas=(0.9,0.99),beta1=0.8", "'beta1'", "more than once"),
    ("adam:lr=0.1,lr=0.2", "'lr'", "more than once"),
    ("adam:amsgrad=yes", "amsgrad='yes'", "true or false"),
    ("momentum:momentum=1", "momentum=1", "(0, 1)"),
    ("momentum:dampening=2", "dampening=2", "[0, 1]"),
    ("rmsprop:alpha=1.5", "alpha=1.5", "[0, 1)"),
    ("adagrad:eps=-1", "eps=-1", "[0, ∞)"),
    ("adam:", "'adam:'", "nothing after"),
    ("adam:lr", "'lr'", "key=value"),
    ("adam:lr=0.1,", "empty item", "adam:lr=0.1,"),
]


@pytest.mark.parametrize("text, names, accepted", BAD, ids=[b[0] or "empty" for b in BAD])
def test_bad_optimizer_is_a_one_line_error_and_nothing_is_written(tmp_path, monkeypatch, text, names, accepted):
    out = tmp_path / "out"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(main, ["mlp", "--layers", "2", "--act", "relu", "--optimizer", text, "--out", str(out)])
    assert os.listdir(cwd) == []
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert "\n" not in message and message.startswith("derive: error: invalid value for --optimizer:"), message
    assert names in message and accepted in message, message
    assert not out.exists()


def test_default_optimizer_is_sgd_and_the_document_says_so(tmp_path):
    result = CliRunner().invoke(main, ["mlp", "--layers", "2", "--act", "tanh", "--detail", "full", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "derivation.md").read_text()
    assert "without momentum, at derive's default learning rate" in text  # the default, said so
    assert "default learning rate for it is $\\eta = 0.1$. `torch.optim`'s default, 0.001" in text  # and why not torch's
    assert "`torch.optim.SGD`" in text
    assert "--optimizer" not in text.split("\n")[4]  # the command line in the header stays the default one
    module = load_module((tmp_path / "model.py").read_text())
    # torch.optim.SGD's 0.001 barely moved these networks on the digits (derive.catalog.optimizers)
    assert module.update.__kwdefaults__ == {"lr": 0.1, "weight_decay": 0.0}


def test_chosen_optimizer_reaches_folder_command_documents_and_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["mlp", "--layers", "2", "--act", "relu", "--loss", "ce",
                                       "--optimizer", "ADAM:betas=(0.8,0.999),lr=1e-2"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "outputs" / "mlp-L2-relu-softmax-ce-adam-lr0.01-betas0.8_0.999"
    text = (folder / "derivation.md").read_text()
    document = json.loads((folder / "derivation.json").read_text())
    source = (folder / "model.py").read_text()
    command = "derive mlp --layers 2 --act relu --loss ce --optimizer adam:lr=0.01,beta1=0.8"
    assert document["command"] == command and f"`{command}`" in text
    assert "The parameters move by Adam" in text and "Chosen with `--optimizer" not in text  # no tool flags in the lesson
    assert "In `model.py` the learning rate is $\\eta = 0.01$" in text  # the chosen rate, stated
    # the lesson (the default detail) prints the step, not what SymPy derives about it (`--detail full`)
    assert ". Training the network\n" in text and "Adam's bias correction" not in text and "--detail full" in text
    assert document["training"]["optimizer"]["torch_kwargs"]["betas"] == [0.8, 0.999]
    module = load_module(source)
    assert module.update.__kwdefaults__["betas"] == (0.8, 0.999) and module.update.__kwdefaults__["lr"] == 0.01


def test_same_choice_in_two_spellings_gives_identical_files(tmp_path):
    outputs = []
    for n, text in enumerate(["adam:beta1=0.8,beta2=0.999", "adam:betas=(0.8,0.999),lr=0.001"]):
        folder = tmp_path / str(n)
        result = CliRunner().invoke(main, ["mlp", "--layers", "1", "--act", "identity", "--optimizer", text,
                                           "--out", str(folder)])
        assert result.exit_code == 0, result.output
        outputs.append({p.name: p.read_bytes() for p in folder.iterdir()})
    assert outputs[0] == outputs[1]


def test_generated_update_refuses_bad_hyper_parameters(tmp_path):
    result = CliRunner().invoke(main, ["mlp", "--layers", "1", "--act", "identity", "--optimizer", "adam",
                                       "--format", "py", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    module = load_module((tmp_path / "model.py").read_text())
    import numpy as np

    params = module.init_params(module.SIZES, np.random.default_rng(0))
    grads = {k: np.ones_like(v) for k, v in params.items()}
    state = module.init_state(params)
    with pytest.raises(ValueError, match="invalid beta2"):
        module.update(params, grads, state, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="invalid lr"):
        module.update(params, grads, state, lr=-1.0)
    with pytest.raises(TypeError):
        module.update(params, grads, state, momentum=0.9)  # not a hyper-parameter of Adam
