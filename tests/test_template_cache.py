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


def test_parsed_catalogs_are_kept_between_runs_and_equal_the_toml(tmp_path, monkeypatch):
    """The message catalogs' parsed form is kept where XDG_CACHE_HOME points (present._parsed_catalog):
    loaded from there it equals the TOML parsed afresh, key order included; a stored form that cannot be
    read is parsed again, and with DERIVE_NO_TEMPLATE_CACHE nothing is stored."""
    import tomllib

    from derive.present import LOCALE_DIR, _parsed_catalog

    source = (LOCALE_DIR / "zh.toml").read_bytes()
    expected = tomllib.loads(source.decode())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DERIVE_NO_TEMPLATE_CACHE", raising=False)
    first = _parsed_catalog(source)  # parsed and stored
    stored = list((tmp_path / "cache").rglob("*.marshal"))
    assert len(stored) == 1
    second = _parsed_catalog(source)  # loaded
    assert first == second == expected
    assert [list(section) for section in second.values()] == [list(section) for section in expected.values()]
    stored[0].write_bytes(b"not marshal")
    assert _parsed_catalog(source) == expected
    changed = source + b'\n[extra]\nkey = "value"\n'
    assert _parsed_catalog(changed)["extra"] == {"key": "value"}  # another source, another stored form
    assert len(list((tmp_path / "cache").rglob("*.marshal"))) == 2
    monkeypatch.setenv("DERIVE_NO_TEMPLATE_CACHE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "none"))
    assert _parsed_catalog(source) == expected and not (tmp_path / "none").exists()


def test_generated_code_is_compiled_once_and_loaded_as_fresh_modules():
    """model.py is loaded three times a run (code checks, training checks, the reader's checks): one code
    object, each load its own namespace."""
    from derive.verify import compiled_source, load_module

    source = "STATE = []\ndef push(x):\n    STATE.append(x)\n    return len(STATE)\n"
    first, second = load_module(source), load_module(source, "other")
    assert first.push.__code__ is second.push.__code__
    assert first.push(1) == 1 and second.push(2) == 1 and first.STATE == [1] and second.STATE == [2]
    assert compiled_source(source, "<model.py>") is compiled_source(source, "<model.py>")
