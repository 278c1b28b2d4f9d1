"""Shared helpers for the test suite."""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
import sys

import pytest


# --------------------------------------------------------------------------------------------------
# a busy machine: tests of time limits must hold while other processes take the cores


def pytest_addoption(parser):
    parser.addoption(
        "--busy-cores", type=int, default=int(os.environ.get("DERIVE_BUSY_CORES") or 0), metavar="N",
        help="keep N processes spinning for the whole run (default $DERIVE_BUSY_CORES or 0), so that a test "
             "whose limit depends on an idle machine fails; CI runs the time_limited tests this way")


# --------------------------------------------------------------------------------------------------
# PyTorch, test-only: the cross-checks of generated code against torch's autograd and optimizers

NO_TORCH = "PyTorch is not installed (pip install torch; CI installs it and sets DERIVE_REQUIRE_TORCH=1)"


def optional_torch():
    """torch, or None where it is not installed; where DERIVE_REQUIRE_TORCH is set (CI) a missing
    torch is an error, so its tests cannot pass as skipped."""
    import importlib

    try:
        return importlib.import_module("torch")
    except ImportError:  # pragma: no cover - depends on the environment
        if os.environ.get("DERIVE_REQUIRE_TORCH"):
            raise
        return None


def torch_or_skip_module():
    """torch for a test file that is all cross-checks: the whole file is skipped without it."""
    torch = optional_torch()
    if torch is None:
        pytest.skip(NO_TORCH, allow_module_level=True)
    return torch


# --------------------------------------------------------------------------------------------------
# what a run skipped: CI runs those tests again once the optional tools are installed


def _record_skip(report) -> None:
    path = os.environ.get("DERIVE_SKIPPED_FILE")
    if path and report.skipped:
        with open(path, "a", encoding="utf-8") as out:
            out.write(report.nodeid + "\n")


def pytest_runtest_logreport(report):
    if report.when in ("setup", "call"):
        _record_skip(report)


def pytest_collectreport(report):
    _record_skip(report)  # a whole module skipped at import (pytest.importorskip)


def pytest_configure(config):
    config.addinivalue_line("markers", "time_limited: asserts that a deadline fired or bounds CPU time; "
                                       "must pass with every core busy (--busy-cores)")


@pytest.fixture(scope="session", autouse=True)
def busy_cores(request):
    """N busy loops, started before the first test and stopped after the last."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in
                range(request.config.getoption("--busy-cores"))]
    yield len(spinners)
    for spinner in spinners:
        spinner.terminate()
        spinner.wait()

from derive.model import build_model, make_spec
from derive.run import derive_in_parallel


@functools.lru_cache(maxsize=None)
def derivation_for(layers: int, act: str, loss: str = "mse", out_act: str | None = None):
    """Derive once per configuration and share the result between tests (derivations are immutable)."""
    return derive_in_parallel(build_model(make_spec(layers, act, out_act, loss)))


@pytest.fixture
def derived():
    return derivation_for


@functools.lru_cache(maxsize=None)
def _generated_once(spec, compile_pdf: bool):
    from derive.run import generate

    return generate(spec, compile_pdf=compile_pdf)


def generated(spec, *, compile_pdf: bool = True):
    """`generate(spec)`, run once per spec for the whole session: the document tests read the same
    few lessons dozens of times, and each run derives, verifies and renders from scratch (about 2 s
    of CPU). Every caller gets its own `files` dict; the bytes and the derivation are shared and
    must not be changed. Tests of generation itself (determinism, processes, caches, monkeypatched
    internals) call `generate` directly."""
    outcome = _generated_once(spec, compile_pdf)
    return dataclasses.replace(outcome, files=dict(outcome.files))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty current folder for a command that writes to its default place (outputs/…), as
    Click's deprecated `isolated_filesystem` gave."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


# --------------------------------------------------------------------------------------------------
# external tools (TeX, Node.js with KaTeX and Playwright, Chromium, Jupyter)

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
JS_DIR = Path(__file__).resolve().parent / "js"


def need(available: bool, what: str, env: str = "DERIVE_REQUIRE_TOOLS") -> None:
    """Skip a test whose tool is missing, unless CI asked for every tool (then the test fails)."""
    if available:
        return
    if os.environ.get(env) or os.environ.get("DERIVE_REQUIRE_TOOLS"):
        pytest.fail(f"{what} is missing but {env if os.environ.get(env) else 'DERIVE_REQUIRE_TOOLS'} requires it")
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """node_modules with KaTeX and playwright-core at the versions of tests/js/package-lock.json,
    installed once (from the npm registry) into a cache folder outside the repository."""
    need(shutil.which("node") is not None and shutil.which("npm") is not None, "Node.js (node, npm)")
    cache = Path(os.environ.get("DERIVE_NODE_CACHE", Path.home() / ".cache" / "derive-tests" / "node"))
    lock = (JS_DIR / "package-lock.json").read_bytes()
    stamp = cache / "package-lock.json"
    if not (stamp.is_file() and stamp.read_bytes() == lock and (cache / "node_modules" / "katex").is_dir()):
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copy(JS_DIR / "package.json", cache / "package.json")
        shutil.copy(JS_DIR / "package-lock.json", cache / "package-lock.json")
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=cache,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    return cache / "node_modules"


def run_node(script: str, args: list[str], node_modules: Path, stdin: str | None = None, timeout: int = 300) -> str:
    env = {**os.environ, "NODE_PATH": str(node_modules)}
    done = subprocess.run(["node", str(JS_DIR / script), *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
