"""`derive cnn`: its grammar, its network file, its one-line errors (nothing written)."""

from __future__ import annotations

import tomllib

import pytest
from click.testing import CliRunner

from derive.cli import main
from derive.cnn import DEFAULT_LAYERS, parse_layers
from derive.errors import DeriveError
from derive.model import build_model
from derive.netfile import parse_network


def test_help_shows_the_grammar():
    out = " ".join(CliRunner().invoke(main, ["cnn", "--help"]).output.split())  # as Click wraps it
    for word in ("conv F kK", "maxpool K [sS] [pP] [dD]", "avgpool K", "gap", "flatten", "dense N", "CxHxW"):
        assert word in out


def test_print_network_is_a_network_file_that_builds_the_same_graph():
    result = CliRunner().invoke(main, ["cnn", "--print-network"])
    assert result.exit_code == 0
    data = tomllib.loads(result.output)
    assert data["input"] == [1, 8, 8] and [t["kind"] for t in data["layers"]] == [
        "conv2d", "max_pool2d", "conv2d", "max_pool2d", "flatten", "dense"]
    model = build_model(parse_network(data, "cnn.toml"))
    assert model.network.sizes == ((1, 8, 8), (4, 8, 8), (4, 4, 4), (8, 4, 4), (8, 2, 2), 32, 10)


def test_stage_settings():
    (conv, pool, dense) = parse_layers("conv 3 k3x2 s2 p1 d2 tanh, avgpool 2 s1 p1, dense 4")
    assert conv == {"kind": "conv2d", "channels": 3, "kernel": [3, 2], "stride": 2, "padding": 1, "dilation": 2,
                    "activation": "tanh"}
    assert pool == {"kind": "avg_pool2d", "kernel": 2, "stride": 1, "padding": 1}
    assert parse_layers("maxpool 3 s2 p1 d2") == [{"kind": "max_pool2d", "kernel": 3, "stride": 2, "padding": 1,
                                                    "dilation": 2}]
    assert dense == {"kind": "dense", "units": 4}
    assert len(parse_layers(DEFAULT_LAYERS)) == 6


@pytest.mark.parametrize("layers, fragment", [
    ("conv k3", "expected the number of output channels"),
    ("conv 4", "needs its kernel size"),
    ("pool 2", "unknown stage 'pool'"),
    ("maxpool 2 x1", "'x1' is not understood here; a maxpool stage takes kN, sN, pN, dN"),
    ("conv 4 k3,, dense 2", "stages separated by commas"),
])
def test_bad_stages_are_one_line_errors(layers, fragment):
    with pytest.raises(DeriveError, match=fragment):
        parse_layers(layers)


def test_a_window_that_does_not_fit_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["cnn", "--input", "1x4x4", "--layers", "conv 2 k5, flatten, dense 2 softmax",
                                       "--out", str(out)])
    assert result.exit_code == 2
    assert "layers[1] (kind 'conv2d')" in result.output and "does not fit" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_input_shape():
    result = CliRunner().invoke(main, ["cnn", "--input", "8x8x8x8"])
    assert result.exit_code == 2 and "--input" in result.output


@pytest.mark.parametrize("layers", [
    "conv 2 k3 p1 relu, maxpool 3 s1 p1, flatten, dense 3 softmax",  # issue 10: this run ended in a traceback
    "conv 2 k2 relu, maxpool 2 s1 p1 d2, avgpool 3 s2 p1, flatten, dense 3 softmax",
    "conv 2 k2 relu, conv 2 k4 p2 relu, flatten, dense 2 softmax",  # the proof's input is 1x1: K read at 3 of 4 offsets
    "maxpool 2 s1 p1 d2, avgpool 2 s1 p1, flatten, dense 2 softmax",  # the proof's sizes: no window of padding only
])
def test_overlapping_padded_pooling_runs_and_verifies(tmp_path, layers):
    result = CliRunner().invoke(main, ["cnn", "--input", "1x5x5", "--layers", layers, "--out", str(tmp_path),
                                       "--format", "py"])
    assert result.exit_code == 0, result.output
    assert "verification passed" in result.output and (tmp_path / "model.py").exists()


def test_a_max_pool_of_one_entry_is_a_one_line_error(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["cnn", "--input", "1x6x6", "--layers", "conv 2 k2 relu, maxpool 1 s2, flatten, "
                                       "dense 2 softmax", "--out", str(out)])
    assert result.exit_code == 2
    assert "layers[2] (kind 'max_pool2d')" in result.output and "kernel 1" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()
