"""What embed is given, as encodable rows plus the list of what cannot be embedded (with the reason)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from isoclr import tracks
from isoclr.embed_inputs import (
    NOT_EMBEDDED,
    SKIPPED,
    EmbedInputError,
    empty_skipped,
    encodable,
    file_rows,
    sequence_rows,
    table_rows,
)
from isoclr.errors import IsoclrError


def test_sequences_become_rows_with_ids_and_tracks():
    rows = sequence_rows(["ACGT", "GGCC"], [(0, 3), None], [[1, 3], None], None)
    assert rows["transcript_id"].tolist() == ["seq0", "seq1"]
    assert rows["cds_start"].tolist()[0] == 0 and rows["cds_end"].tolist()[0] == 3
    mapped = sequence_rows({"a": "ACGT"}, None, None, None)
    assert mapped["transcript_id"].tolist() == ["a"] and mapped["seq"].tolist() == ["ACGT"]
    assert sequence_rows("ACGT", None, None, ["x"])["transcript_id"].tolist() == ["x"]
    with pytest.raises(EmbedInputError, match="cds has 1 entries for 2 sequences"):
        sequence_rows(["A", "C"], [None], None, None)
    with pytest.raises(EmbedInputError, match="mapping"):
        sequence_rows({"a": "ACGT"}, None, None, ["b"])


def test_a_table_needs_seq_and_gets_ids_when_it_has_none():
    rows = table_rows(pd.DataFrame({"seq": ["ACGT", "AC"]}, index=[7, 9]))
    assert rows["transcript_id"].tolist() == ["row0", "row1"]
    assert list(rows.columns) == ["transcript_id", "seq", "cds_start", "cds_end", "exon_ends"]
    with pytest.raises(EmbedInputError, match="'seq' column") as err:
        table_rows(pd.DataFrame({"sequence": ["ACGT"]}))
    assert isinstance(err.value, IsoclrError) and isinstance(err.value, ValueError)


def test_files_that_do_not_go_together_are_refused(tmp_path):
    with pytest.raises(EmbedInputError, match="exactly one of fasta"):
        file_rows(tmp_path / "a.gtf", None, None, 100)
    with pytest.raises(EmbedInputError, match="needs its GTF"):
        file_rows(None, None, tmp_path / "genome.fa", 100)


def test_encodable_packs_the_good_rows_and_lists_the_rest_with_the_reason():
    rows = sequence_rows(
        ["ACGT" * 5, "acgu" * 5 + "RYN", "", "ACGTX!", "ACGT" * 5, "ACGT" * 5, "A" * 50],
        [None, None, None, None, (3, 400), None, None],
        None,
        ["ok", "iupac", "empty", "junk", "cds_out", "ok", "long"],
    )
    kept, bad = encodable(rows, max_length=40)
    assert kept["transcript_id"].tolist() == ["ok", "iupac"]
    assert np.array_equal(kept["packed"].iloc[0], tracks.pack("ACGT" * 5, None, None, None))
    reasons = dict(zip(bad["transcript_id"], bad["reason"], strict=True))
    assert reasons["empty"] == "empty sequence" and "'!X'" in reasons["junk"]
    assert "CDS [3, 400)" in reasons["cds_out"] and "max_length 40" in reasons["long"]
    assert reasons["ok"].startswith("duplicate id")
    assert (bad["action"] == NOT_EMBEDDED).all()
    SKIPPED.validate(bad)
    assert list(SKIPPED.validate(empty_skipped()).columns) == ["transcript_id", "reason", "action"]
