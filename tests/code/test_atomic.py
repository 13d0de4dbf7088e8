"""Crash-safe writes: the final name holds a whole, checked file or nothing new."""

from __future__ import annotations

import threading

import pytest

from isoclr.atomic import write_atomic, write_atomic_checked


def test_write_atomic_moves_the_whole_file_into_place(tmp_path):
    out = tmp_path / "deep" / "out.txt"
    write_atomic(out, lambda p: p.write_text("data"))
    assert out.read_text() == "data"
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.txt"]


def test_checked_write_runs_the_check_while_writing_and_keeps_the_file(tmp_path):
    """The write waits for the check to start: it would time out if they ran one after the other."""
    started = threading.Event()

    def write(p):
        assert started.wait(timeout=10), "the check did not run while the file was written"
        p.write_text("new")

    write_atomic_checked(tmp_path / "out.txt", write, started.set)
    assert (tmp_path / "out.txt").read_text() == "new"


@pytest.mark.parametrize("fails", ["check", "write"])
def test_checked_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path, fails):
    out = tmp_path / "out.txt"
    out.write_text("old")
    written = threading.Event()

    def write(p):
        p.write_text("half")
        written.set()
        if fails == "write":
            raise OSError("disk full")

    def check():
        # The check fails only after the write has made its temporary file: that file must go too.
        assert written.wait(timeout=10)
        if fails == "check":
            raise ValueError("schema")

    with pytest.raises(ValueError if fails == "check" else OSError):
        write_atomic_checked(out, write, check)
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
