"""Transcript coordinates, and the one check that a CDS and exon ends lie inside their sequence.

Every table of transcripts uses them: 0-based, in transcript orientation; the CDS is half-open
``[cds_start, cds_end)`` and ``exon_ends`` holds the last nucleotide of every exon. Validate
quarantines a CDS that breaks :func:`cds_inside`, the transcripts schema refuses one, and the
encodings (:mod:`isoclr.tracks`, :mod:`isoclr.store`, embedding) raise :class:`CoordinateError`,
so all of them agree on what "inside" means.
"""

from __future__ import annotations

from isoclr.errors import IsoclrError


class CoordinateError(IsoclrError, ValueError):
    """A CDS or an exon end that does not lie inside its transcript's sequence."""


def cds_inside(cds_start, cds_end, length):
    """Whether the CDS ``[cds_start, cds_end)`` lies inside a ``length``-nt sequence: ``0 <= start < end <= length``.

    Scalars, or numpy / pandas arrays elementwise; with pandas nullable integers an unknown end gives
    an unknown (NA) answer, and the caller says what an unknown CDS means.
    """
    return (cds_start >= 0) & (cds_start < cds_end) & (cds_end <= length)


def exon_ends_inside(exon_ends, length):
    """Whether each exon end (0-based last nucleotide) lies inside a ``length``-nt sequence; elementwise."""
    return (exon_ends >= 0) & (exon_ends < length)


def _named(record: str | None, message: str) -> str:
    return f"{record}: {message}" if record else message


def cds_error(cds_start: int, cds_end: int, length: int, record: str | None = None) -> CoordinateError:
    """The error for a CDS that is not :func:`cds_inside` (``record`` names the transcript)."""
    return CoordinateError(_named(record, f"CDS [{cds_start}, {cds_end}) is not inside a {length}-nt sequence"))


def exon_ends_error(exon_ends, length: int, record: str | None = None) -> CoordinateError:
    """The error for exon ends that are not all :func:`exon_ends_inside` (``record`` names the transcript)."""
    return CoordinateError(_named(record, f"exon ends {list(exon_ends)} fall outside a {length}-nt sequence"))


def require_inside(cds_start, cds_end, exon_ends, length: int, record: str | None = None) -> None:
    """Raise :class:`CoordinateError` unless the CDS and the exon ends of one transcript lie inside it.

    ``cds_start``/``cds_end`` None means no CDS; ``exon_ends`` None means unknown exons (an array otherwise).
    """
    if cds_start is not None and cds_end is not None and not cds_inside(cds_start, cds_end, length):
        raise cds_error(cds_start, cds_end, length, record)
    if exon_ends is not None and len(exon_ends) and not exon_ends_inside(exon_ends, length).all():
        raise exon_ends_error(exon_ends.tolist(), length, record)
