"""derivation.tex → derivation.pdf with the TeX engine the document's language needs.

The language's message catalog names the engine (pdflatex for English, xelatex with ctex for
Chinese), the files the document loads and the Debian packages that provide them, so a missing TeX
installation is reported in one line *before* any work is done, and nothing is written.

The PDF is byte-identical for the same .tex on the same TeX installation: SOURCE_DATE_EPOCH and
FORCE_SOURCE_DATE fix the dates (pdfTeX also omits them and its trailer ID; xdvipdfmx derives its
ID from the fixed date). Different TeX Live versions still produce different bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from derive.errors import DeriveError
from derive.present import messages

SOURCE_DATE_EPOCH = "0"  # the documents carry no date; the PDF's dates say 1970-01-01 instead of "now"
RUNS = 3  # table of contents and cross-references settle after at most three runs
TIMEOUT = 600


@dataclass(frozen=True)
class TexSetup:
    engine: str
    packages: str
    files: tuple[str, ...]


def setup(lang: str) -> TexSetup:
    table = messages(lang)["language"]
    return TexSetup(table["tex_engine"], table["tex_packages"], tuple(table["tex_files"].split()))


def require(lang: str) -> TexSetup:
    """Raise a one-line DeriveError unless the engine and every file the document loads are installed."""
    tex = setup(lang)
    install = f"install TeX Live (Debian/Ubuntu: apt-get install {tex.packages})"
    if shutil.which(tex.engine) is None:
        raise DeriveError(f"--format pdf needs {tex.engine}, which is not installed; {install}")
    kpsewhich = shutil.which("kpsewhich")
    if kpsewhich is not None:
        found = subprocess.run([kpsewhich, *tex.files], capture_output=True, text=True, timeout=60).stdout
        missing = [f for f in tex.files if not any(line.endswith("/" + f) for line in found.splitlines())]
        if missing:
            raise DeriveError(f"--format pdf needs the LaTeX files {', '.join(missing)}, which are not installed; {install}")
    return tex


def compile_pdf(source: str, lang: str) -> bytes:
    """Compile a LaTeX document in a temporary folder and return the PDF's bytes."""
    tex = require(lang)
    env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "FORCE_SOURCE_DATE": "1"}
    # pdfTeX-only primitives guarded by \ifdefined, so one command line serves every engine
    first_line = (r"\ifdefined\pdftrailerid\pdftrailerid{}\pdfinfoomitdate=1\fi"
                  r"\providecommand{\derivekeywords}{}"  # the document's own keywords (its template defines them)
                  rf"\AtBeginDocument{{\hypersetup{{pdfkeywords={{\derivekeywords; {source_stamp(source)}}}}}}}"
                  r"\input{derivation.tex}")
    with tempfile.TemporaryDirectory(prefix="derive-pdf-") as folder:
        work = Path(folder)
        (work / "derivation.tex").write_text(source, encoding="utf-8")
        for _ in range(RUNS):
            done = subprocess.run(
                [tex.engine, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
                 "-jobname=derivation", first_line],
                cwd=work, env=env, capture_output=True, text=True, errors="replace", timeout=TIMEOUT,
            )
            log = (work / "derivation.log").read_text(errors="replace") if (work / "derivation.log").exists() else ""
            if done.returncode != 0 or not (work / "derivation.pdf").exists():
                raise DeriveError(f"{tex.engine} could not compile derivation.tex: {first_error(log or done.stdout)}")
            if not re.search(r"Rerun to get|Label\(s\) may have changed|There were undefined references", log):
                break
        return (work / "derivation.pdf").read_bytes()


def source_stamp(source: str) -> str:
    """What the PDF's keywords record of the LaTeX it was compiled from: the gallery's freshness test
    compares it with the current .tex instead of recompiling (PDF bytes depend on the TeX version)."""
    return "derive-source-sha256-" + hashlib.sha256(source.encode()).hexdigest()


def has_stamp(pdf: bytes, source: str) -> bool:
    """Was this PDF compiled from `source`? Looks for the stamp in the file and in its compressed
    streams (engines may put the document information into a compressed object stream)."""
    stamp = source_stamp(source)
    # hyperref writes the keywords as UTF-16, in octal escapes (pdfTeX) or hexadecimal (xdvipdfmx)
    forms = (stamp.encode(), "".join(f"\\000{c}" for c in stamp).encode(), stamp.encode("utf-16-be").hex().encode())
    if any(form in pdf for form in forms):
        return True
    for match in re.finditer(rb"stream\r?\n", pdf):
        try:
            data = zlib.decompressobj().decompress(pdf[match.end():match.end() + 2_000_000])
        except zlib.error:
            continue
        if any(form in data for form in forms):
            return True
    return False


def first_error(log: str) -> str:
    """The first TeX error of a log, on one line."""
    for n, line in enumerate(lines := log.splitlines()):
        if line.startswith("!"):
            return " ".join(" ".join(lines[n:n + 3]).split())[:300]
    return "no error message in the log"
