"""Crash-safe file writes: a killed stage never leaves half a file under the final name."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _staging(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp")


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary name beside ``path``, then rename it into place."""
    path = Path(path)
    tmp = _staging(path)
    write(tmp)
    os.replace(tmp, path)


def write_atomic_checked(path: Path, write: Callable[[Path], None], check: Callable[[], None]) -> None:
    """:func:`write_atomic`, with ``check`` run while ``write`` runs on a thread (for writes that release the GIL,
    as Arrow's do). The file is moved into place only when both return; when either raises, the temporary file
    is removed once the write has stopped."""
    path = Path(path)
    tmp = _staging(path)
    try:
        with ThreadPoolExecutor(1) as pool:
            written = pool.submit(write, tmp)
            check()
            written.result()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs: a temporary file or folder named after a dead process is a leftover of
    a killed run, safe to remove."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True
