"""write_atomic: the old file or the new one, never half of one, and no temporary files left behind."""

import os
import re
import stat
import subprocess
import sys

import pytest

from gpt_lesson import fileio
from gpt_lesson.fileio import remove_stale_temps, write_atomic


def files_in(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_write_atomic_writes_and_replaces(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert files_in(tmp_path) == [target]


def test_write_atomic_accepts_a_writer_function(tmp_path):
    target = tmp_path / "f.bin"
    write_atomic(target, lambda f: f.write(b"from a function"))
    assert target.read_bytes() == b"from a function"

    def half_then_fail(f):
        f.write(b"half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError):
        write_atomic(target, half_then_fail)
    assert target.read_bytes() == b"from a function"
    assert files_in(tmp_path) == [target]


def test_temporary_file_is_hidden_next_to_the_target(tmp_path):
    target = tmp_path / "model.pt"
    seen = []
    write_atomic(target, lambda f: seen.extend(os.listdir(tmp_path)))
    (temp,) = seen
    assert re.fullmatch(r"\.model\.pt\.[^.]+\.part", temp)
    assert files_in(tmp_path) == [target]


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_write_atomic_file_is_not_private(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    write_atomic(tmp_path / "f", b"x")
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o666 & ~umask


def _fail_replace(monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("replace failed")

    monkeypatch.setattr(os, "replace", boom)


def _fail_midway_write(monkeypatch):
    real_fdopen = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        f = real_fdopen(fd, mode, *args, **kwargs)
        real_write = f.write

        def write(data):
            real_write(data[: len(data) // 2])
            raise OSError(28, "No space left on device")

        f.write = write
        return f

    monkeypatch.setattr(os, "fdopen", fdopen)


@pytest.mark.parametrize("fail", [_fail_replace, _fail_midway_write])
def test_write_atomic_failure_keeps_old_file(tmp_path, monkeypatch, fail):
    target = tmp_path / "f.txt"
    target.write_bytes(b"old contents")
    with monkeypatch.context() as m:
        fail(m)
        with pytest.raises(OSError):
            write_atomic(target, b"new contents that never fully arrive")
    assert target.read_bytes() == b"old contents"
    assert files_in(tmp_path) == [target]  # no *.part left behind


# Loads fileio.py by its path (importing the package would import torch), then dies in the middle of a save.
KILLED_SAVE = """
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("fileio", sys.argv[1])
fileio = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fileio)

def killed(f):
    f.write(b"half of the new")
    f.flush()
    os._exit(9)

fileio.write_atomic(sys.argv[2], killed)
"""


def test_temp_file_of_a_killed_save_is_removed_by_the_next_save(tmp_path):
    target = tmp_path / "ck.pt"
    target.write_bytes(b"old checkpoint")
    run = subprocess.run([sys.executable, "-c", KILLED_SAVE, fileio.__file__, str(target)], timeout=60)
    assert run.returncode == 9
    (temp,) = [p for p in files_in(tmp_path) if p != target]
    assert temp.name.startswith(".ck.pt.") and temp.name.endswith(".part")
    assert temp.read_bytes() == b"half of the new"
    assert target.read_bytes() == b"old checkpoint"

    write_atomic(target, b"new checkpoint")
    assert files_in(tmp_path) == [target]
    assert target.read_bytes() == b"new checkpoint"


def test_remove_stale_temps_removes_only_temps_of_that_target(tmp_path):
    target = tmp_path / "a"
    stale = [tmp_path / ".a.x1y2_z3q.part", tmp_path / ".a.k9.part"]
    kept = [
        tmp_path / "a",
        tmp_path / "a.part",  # not hidden: a user's file
        tmp_path / ".a.part",
        tmp_path / ".a.b.x1y2_z3q.part",  # a temp of "a.b", not of "a"
        tmp_path / ".b.x1y2_z3q.part",
        tmp_path / ".a.x1y2_z3q.part.bak",
    ]
    for p in stale + kept:
        p.write_bytes(b"x")
    assert sorted(remove_stale_temps(target)) == sorted(stale)
    assert files_in(tmp_path) == sorted(kept)


def test_remove_stale_temps_escapes_the_name(tmp_path):
    target = tmp_path / "run[1]+.pt"
    other = tmp_path / ".run1.pt.abc.part"  # what the name would match as a pattern
    stale = tmp_path / ".run[1]+.pt.abc.part"
    for p in (other, stale):
        p.write_bytes(b"x")
    assert remove_stale_temps(target) == [stale]
    assert files_in(tmp_path) == [other]


def test_remove_stale_temps_of_a_missing_folder(tmp_path):
    assert remove_stale_temps(tmp_path / "nowhere" / "f.txt") == []
