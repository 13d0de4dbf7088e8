"""Novel isoforms from a long-read style GTF (exon lines only, assembler ids) embed as their spliced sequences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from isoclr import Encoder, embed
from isoclr.config import ModelConfig
from isoclr.embed_inputs import NOT_EMBEDDED
from isoclr.synth import synth

TINY = ModelConfig(stem_filters=8, stage_filters=[8, 8, 16, 16], projection_dims=[32, 16])


def _exons(gtf) -> pd.DataFrame:
    cols = ["seqname", "source", "feature", "start", "end", "score", "strand", "frame", "attributes"]
    lines = pd.read_csv(gtf, sep="\t", header=None, names=cols, comment="#")
    lines = lines[lines["feature"] == "exon"].copy()
    lines["transcript_id"] = lines["attributes"].str.extract(r'transcript_id "([^"]+)"', expand=False)
    return lines


@pytest.fixture(scope="module")
def long_read(tmp_path_factory):
    """A StringTie-like GTF over a generated genome: per annotated multi-exon transcript, a novel isoform
    skipping one internal exon (ids STRG.n.1, no CDS lines), plus one on a contig the genome lacks.

    Returns the GTF, the genome, and the expected novel transcripts (seq, exon_ends in transcript order).
    """
    root = tmp_path_factory.mktemp("long_read")
    annotation = synth(root, 30, seed=4, n_contigs=2, truth=True)
    exons = _exons(annotation.gtf)
    lines, expected = [], []
    for n, row in enumerate(annotation.truth[annotation.truth["exon_ends"].map(len) >= 3].itertuples(), start=1):
        own = exons[exons["transcript_id"] == row.transcript_id].sort_values("start", ascending=row.strand == "+")
        skip = 1 + n % (len(own) - 2)  # an internal exon, in transcript order
        starts = [0, *(np.asarray(row.exon_ends[:-1]) + 1)]
        pieces = [row.seq[a : b + 1] for a, b in zip(starts, row.exon_ends, strict=True)]
        kept = [p for k, p in enumerate(pieces) if k != skip]
        tid = f"STRG.{n}.1"
        ends = list(np.cumsum([len(p) for p in kept]) - 1)
        expected.append({"transcript_id": tid, "seq": "".join(kept), "exon_ends": ends})
        for k, line in enumerate(own.itertuples()):
            if k != skip:
                lines.append(
                    [
                        line.seqname,
                        "StringTie",
                        "exon",
                        line.start,
                        line.end,
                        "1000",
                        line.strand,
                        ".",
                        f'gene_id "STRG.{n}"; transcript_id "{tid}"; exon_number "{k + 1}";',
                    ]
                )
    lines.append(
        [
            "chrUn_absent",
            "StringTie",
            "exon",
            100,
            300,
            "1000",
            "+",
            ".",
            'gene_id "STRG.999"; transcript_id "STRG.999.1";',
        ]
    )
    gtf = root / "novel.gtf"
    pd.DataFrame(lines).to_csv(gtf, sep="\t", header=False, index=False, quoting=3)
    return gtf, annotation.genome, pd.DataFrame(expected)


def test_novel_isoforms_embed_as_their_spliced_sequences(long_read):
    gtf, genome, expected = long_read
    assert len(expected) >= 5
    encoder = Encoder(embed.random_encoder(TINY, seed=0))
    result = encoder.embed(gtf=gtf, genome=genome, batch_size=1)
    assert sorted(result.ids) == sorted(expected["transcript_id"])
    by_id = expected.set_index("transcript_id").loc[result.ids]
    truth = encoder.embed(list(by_id["seq"]), exon_ends=list(by_id["exon_ends"]), ids=result.ids, batch_size=1)
    np.testing.assert_array_equal(result.pooled, truth.pooled)
    # The exon structure reached the splice track: without it the embedding differs.
    assert not np.allclose(result.pooled, encoder.embed(list(by_id["seq"]), batch_size=1).pooled)
    # The transcript on an unknown contig is listed with the reason, not dropped silently.
    assert result.skipped["transcript_id"].tolist() == ["STRG.999.1"]
    assert "chrUn_absent" in result.skipped["reason"].iloc[0]
    assert result.skipped["action"].iloc[0] == NOT_EMBEDDED
