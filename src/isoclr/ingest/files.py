"""The validate stage's input files: where they are, how they are opened, and the error when they cannot be read."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from isoclr.config import Annotation
from isoclr.errors import IsoclrError

GZIP_MAGIC = b"\x1f\x8b"


class ValidationError(IsoclrError):
    """The input cannot give a correct transcripts table; the message says which file, why and what to do."""


def require(path: Path, ann: Annotation) -> Path:
    """``path``, if it is a file; else a :class:`ValidationError` that names the annotation set and what to check."""
    if not path.is_file():
        raise ValidationError(
            f"{path}: file not found (annotation {ann.name!r}); "
            "check data.dir and data.annotations in params.yaml, or run `dvc pull`"
        )
    return path


def is_gzip(path: Path) -> bool:
    """Whether the file starts with the gzip magic bytes (bgzip included), whatever its name."""
    with path.open("rb") as fh:
        return fh.read(len(GZIP_MAGIC)) == GZIP_MAGIC


@contextmanager
def open_text(path: Path) -> Iterator[TextIO]:
    """Plain or gzip text, told apart by the magic bytes (a .fa may be gzipped, a .gz may not)."""
    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        yield fh
