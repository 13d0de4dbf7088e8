"""The CDS of a GTF transcript: CDS and stop_codon features mapped into transcript coordinates.

Pieces are merged, placed inside the transcript's exons strand-aware, and the start moved past a
partial first codon by the GTF frame of the 5'-most CDS piece; a GTF without stop_codon features
gets the stop codon added to its CDS (:func:`add_stop_codon`). Transcript coordinates are 0-based,
the CDS half-open (:mod:`isoclr.coordinates`).
"""

from __future__ import annotations

import logging

import pandas as pd
import polars as pl

from isoclr.alphabet import CODON, STOP_CODONS

log = logging.getLogger(__name__)

CDS, STOP_CODON = "CDS", "stop_codon"
# (record_no, end) packed into one ordered integer: record_no * RECORD_STRIDE + end + COORDINATE_SHIFT, for any
# coordinate in [-2^32, 2^32) (contigs are < 2^32 nt; a bad negative one stays inside its own transcript).
COORDINATE_SHIFT = 1 << 32
RECORD_STRIDE = 2 * COORDINATE_SHIFT
# GTF frame (phase) of the 5'-most CDS piece: bases before the first whole codon.
GTF_PHASES = ("0", "1", "2")


def gtf_cds(rows: pl.DataFrame, exons: pl.DataFrame, meta: pl.DataFrame) -> pl.DataFrame:
    """CDS (+ stop codon) features mapped to transcript coordinates, strand-aware.

    Returns per transcript: cds_start, cds_end (0-based half-open; cds_start
    moved past a partial first codon by the GTF frame of the 5'-most CDS piece),
    cds_problem ("outside" when a piece is not inside one exon, "gap" when the
    pieces do not make one contiguous stretch of the transcript, else null).
    """
    pieces = (
        rows.select("record_no", "feature", "start", "end", "frame")
        .filter(pl.col("feature").is_in([CDS, STOP_CODON]))
        .sort("record_no", "start")
    )
    # Overlapping or abutting pieces (a CDS that already holds its stop codon, a
    # stop codon right after the CDS) are merged before mapping. Sorted by record_no, a transcript's running
    # maximum of ends is a running maximum of (record_no, end) packed in one integer, so it needs no grouping by
    # window; blocks are numbered across all transcripts (the grouping below is the same).
    same = (pl.col("record_no") == pl.col("record_no").shift(1)).fill_null(False)
    record_base = pl.col("record_no").cast(pl.Int64) * RECORD_STRIDE + COORDINATE_SHIFT
    merged = (
        pieces.with_columns(prev_end=pl.when(same).then((record_base + pl.col("end")).cum_max().shift(1) - record_base))
        .with_columns(block=(pl.col("prev_end").is_null() | (pl.col("start") > pl.col("prev_end") + 1)).cast(pl.Int64))
        .with_columns(block=pl.col("block").cum_sum())
        .group_by("record_no", "block")
        .agg(pl.col("start").min(), pl.col("end").max())
        .sort("start")
    )
    exon_keys = exons.select(
        "record_no", "strand", pl.col("start").alias("exon_start"), pl.col("end").alias("exon_end"), "tx_offset"
    ).sort("exon_start")
    mapped = merged.join_asof(
        exon_keys,
        left_on="start",
        right_on="exon_start",
        by="record_no",
        strategy="backward",
        check_sortedness=False,  # both sides are sorted on the whole column above
    ).with_columns(
        inside=pl.col("exon_start").is_not_null() & (pl.col("end") <= pl.col("exon_end")),
        minus=pl.col("strand") == "-",
    )
    mapped = mapped.with_columns(
        tx_first=pl.col("tx_offset")
        + pl.when(pl.col("minus"))
        .then(pl.col("exon_end") - pl.col("end"))
        .otherwise(pl.col("start") - pl.col("exon_start")),
        tx_last=pl.col("tx_offset")
        + pl.when(pl.col("minus"))
        .then(pl.col("exon_end") - pl.col("start"))
        .otherwise(pl.col("end") - pl.col("exon_start")),
    )
    spans = mapped.group_by("record_no").agg(
        pl.col("inside").all(),
        pl.col("tx_first").min().alias("cds_start"),
        (pl.col("tx_last").max() + 1).alias("cds_end"),
        (pl.col("end") - pl.col("start") + 1).sum().alias("covered"),
    )
    # Frame of the 5'-most CDS piece (plus: lowest start; minus: highest end).
    phase = (
        pieces.filter(pl.col("feature") == CDS)
        .join(meta.select("record_no", "strand"), on="record_no")
        .group_by("record_no")
        .agg(
            pl.col("frame")
            .sort_by(pl.when(pl.col("strand") == "-").then(-pl.col("end")).otherwise(pl.col("start")))
            .first()
            .alias("frame")
        )
        .with_columns(
            phase=pl.when(pl.col("frame").is_in(GTF_PHASES)).then(pl.col("frame").cast(pl.Int64)).otherwise(0)
        )
    )
    return (
        spans.join(phase.select("record_no", "phase"), on="record_no", how="left")
        .with_columns(
            cds_problem=pl.when(~pl.col("inside"))
            .then(pl.lit("outside"))
            .when(pl.col("covered") != pl.col("cds_end") - pl.col("cds_start"))
            .then(pl.lit("gap")),
            cds_start=pl.col("cds_start") + pl.col("phase").fill_null(0),
        )
        .select("record_no", "cds_start", "cds_end", "cds_problem")
    )


def add_stop_codon(kept: pd.DataFrame, gtf: str) -> pd.DataFrame:
    """Include the stop codon in the CDS when the GTF leaves it out.

    GTF2.2 CDS features exclude the stop codon and give it as a stop_codon
    feature; a GTF without any stop_codon features (e.g. Cufflinks /
    IsoformSwitchAnalyzeR ORFs) therefore ends the CDS one codon early. GENCODE
    headers and GTFs with stop_codon features include it, so the CDS is extended
    here by one codon exactly when the CDS's own last codon is not a stop and the
    next codon in the sequence is. An ORF with no stop (3'-incomplete) is left as is.
    """
    has_cds = kept["cds_start"].notna()
    if not has_cds.any():
        return kept
    ends = kept.loc[has_cds, "cds_end"].astype(int)
    seqs = kept.loc[has_cds, "seq"]
    extend = pd.Series(
        [
            s[e - CODON : e] not in STOP_CODONS and s[e : e + CODON] in STOP_CODONS
            for s, e in zip(seqs, ends, strict=True)
        ],
        index=ends.index,
    )
    kept = kept.copy()
    kept.loc[extend[extend].index, "cds_end"] = ends[extend] + CODON
    log.info("%s: no stop_codon features; stop codon added to %d of %d CDS", gtf, int(extend.sum()), len(ends))
    return kept
