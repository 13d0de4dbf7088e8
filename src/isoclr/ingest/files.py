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
# gzip header (RFC 1952): FLG byte, its FEXTRA bit, and where XLEN and the extra field start.
GZIP_FLAGS, GZIP_FEXTRA, GZIP_XLEN = 3, 0x04, 10
# bgzip (SAM spec 4.1): a gzip member whose extra field holds a subfield with id "BC" (its block size).
BGZF_SUBFIELD = b"BC"
PLAIN, GZIP, BGZIP = "plain", "gzip", "bgzip"


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


def compression(path: Path) -> str:
    """:data:`PLAIN`, :data:`GZIP` or :data:`BGZIP`, told from the first bytes, whatever the file is named."""
    with path.open("rb") as fh:
        head = fh.read(GZIP_XLEN + 2)
        if head[: len(GZIP_MAGIC)] != GZIP_MAGIC:
            return PLAIN
        if len(head) < GZIP_XLEN + 2 or not head[GZIP_FLAGS] & GZIP_FEXTRA:
            return GZIP
        extra = fh.read(int.from_bytes(head[GZIP_XLEN:], "little"))
    at = 0
    while at + 4 <= len(extra):  # subfields: 2-byte id, 2-byte length, data
        if extra[at : at + 2] == BGZF_SUBFIELD:
            return BGZIP
        at += 4 + int.from_bytes(extra[at + 2 : at + 4], "little")
    return GZIP


@contextmanager
def open_text(path: Path) -> Iterator[TextIO]:
    """Plain or gzip text, told apart by the magic bytes (a .fa may be gzipped, a .gz may not)."""
    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        yield fh


def open_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped if it is gzip (told by the magic bytes)."""
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[: len(GZIP_MAGIC)] == GZIP_MAGIC else raw
