"""Compiled templates are kept between runs (render._bytecode_cache); the files are the same with or
without the cache, and the cache fills where XDG_CACHE_HOME points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from derive.model import make_spec
from derive.run import generate

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path: Path, name: str, **env) -> dict[str, bytes]:
    out = tmp_path / name
    done = subprocess.run(
        [sys.executable, "-m", "derive", "mlp", "--layers", "1", "--act", "identity", "--out", str(out), "-q"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env}, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return {p.name: p.read_bytes() for p in out.iterdir()}


def test_cached_templates_give_the_same_files(tmp_path):
    cache = tmp_path / "cache"
    first = _run(tmp_path, "first", XDG_CACHE_HOME=str(cache))  # compiles and stores the templates
    assert any(cache.rglob("__jinja2_*"))
    second = _run(tmp_path, "second", XDG_CACHE_HOME=str(cache))  # loads them
    assert first == second == generate(make_spec(1, "identity")).files
