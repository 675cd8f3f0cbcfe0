"""Files written whole or not at all: the book cache and checkpoints.

`write_atomic` writes to a hidden temporary file next to the target, ``.<name>.<random>.part``, and renames
it over the target only once it is complete. A save that is killed half-way leaves such a file behind;
the next save of the same target removes it (`remove_stale_temps`).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

TEMP_SUFFIX = ".part"


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _is_temp_of(path: Path, candidate: str) -> bool:
    """True for the names `tempfile.mkstemp` gives `write_atomic`'s temporary files of ``path``.

    The random part has no dot, so the temporary files of ``a.b`` are never taken for those of ``a``.
    """
    pattern = re.escape(_temp_prefix(path)) + r"[^.]+" + re.escape(TEMP_SUFFIX)
    return re.fullmatch(pattern, candidate) is not None


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files an interrupted `write_atomic` of ``path`` left behind; return them.

    A second process saving the same ``path`` at this moment loses its temporary file: its save then
    fails with an error, and ``path`` keeps the last complete version.
    """
    path = Path(path)
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    removed = []
    for name in names:
        if _is_temp_of(path, name):
            try:
                (path.parent / name).unlink()
            except OSError:
                continue
            removed.append(path.parent / name)
    return removed


def write_atomic(path: str | os.PathLike, data: bytes | Callable[[BinaryIO], object]) -> None:
    """Write ``data`` (bytes, or a function that writes to a binary file) to ``path`` atomically.

    It goes to a temporary file in the same folder, which is renamed over ``path`` only once it is
    complete: readers see the old file or the new one, never half of one, even after a crash.
    Temporary files left by an earlier, interrupted save of ``path`` are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data) if isinstance(data, (bytes, bytearray)) else data(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
