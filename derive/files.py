"""Atomic file writing, and the check that a folder can be written.

Apart from `derive.render` so that the command line can check the output folder before the work
without importing Jinja2, which the run imports after forking the direct differentiation.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def check_writable(directory: Path) -> None:
    """Raise OSError unless `directory` exists as a writable folder or could be created (checked before
    the work, so that a name the file system refuses is reported at once, not after the derivation)."""
    probe = directory
    while not probe.exists():  # raises OSError for a name the file system refuses outright
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise NotADirectoryError(f"{probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(f"{probe} is not writable")
    try:
        limit = os.pathconf(probe, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows): the common limit
        limit = 255
    for part in directory.parts:
        if len(os.fsencode(part)) > limit:
            raise OSError(errno.ENAMETOOLONG, f"folder name too long: {len(os.fsencode(part))} bytes, where this file system "
                                              f"allows {limit}")


def write_files(directory: Path, files: dict[str, bytes]) -> list[Path]:
    """Write every file atomically: all go to temporary files in the folder first, and only when every
    one is complete are they renamed into place.

    All contents are produced before this is called. If anything fails (a full disk, a name the file
    system refuses), the temporary files and every folder this call created are removed: no
    half-written file, no partial set, no empty folder is left behind.
    """
    created = [p for p in (directory, *directory.parents) if not p.exists()]
    temporaries: list[tuple[str, Path]] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
            temporaries.append((temporary, directory / name))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(temporary, 0o644)
        for temporary, target in temporaries:
            os.replace(temporary, target)
    except BaseException:
        for temporary, _ in temporaries:
            Path(temporary).unlink(missing_ok=True)
        for folder in created:  # innermost first
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return [target for _, target in temporaries]


def user_cache(folder: str) -> Path | None:
    """~/.cache/derive/FOLDER (or under XDG_CACHE_HOME): where compiled templates and parsed catalogs
    are kept between runs, as Python keeps bytecode; None with DERIVE_NO_TEMPLATE_CACHE set."""
    if os.environ.get("DERIVE_NO_TEMPLATE_CACHE"):
        return None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "derive" / folder
