"""The 6-track encoding: one-hot bases, CDS codon starts, splice ends, padding and cropping."""

from collections import namedtuple

import numpy as np
import pandas as pd
import pytest
import torch

from isoclr.coordinates import CoordinateError
from isoclr.tracks import CHANNELS, batch, crop, encode, encode_row

A, C, G, T, CDS, SPLICE = range(len(CHANNELS))


def test_channels_order():
    assert CHANNELS == ("A", "C", "G", "T", "cds", "splice")


def test_one_hot_bases():
    x = encode("ACGT", None, None, None)
    assert x.shape == (6, 4) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:4], np.eye(4, dtype=np.float32))
    assert not x[4:].any()


def test_lowercase_and_u_read_as_bases():
    np.testing.assert_array_equal(encode("acgu", None, None, None), encode("ACGT", None, None, None))
    np.testing.assert_array_equal(encode("U", None, None, None)[:4, 0], [0, 0, 0, 1])


@pytest.mark.parametrize("code", ["N", "n", "R", "Y", "-", "é"])
def test_n_and_other_codes_are_all_zero(code):
    x = encode(f"A{code}C", None, None, None)
    assert x.shape == (6, 3)
    assert not x[:, 1].any()
    assert x[A, 0] == 1 and x[C, 2] == 1


def test_cds_marks_first_nt_of_every_codon():
    x = encode("GGATGAAATTTTAAGG", 2, 14, None)
    assert np.flatnonzero(x[CDS]).tolist() == [2, 5, 8, 11]


def test_splice_marks_last_nt_of_every_exon_including_final():
    x = encode("A" * 10, None, None, [3, 6, 9])
    assert np.flatnonzero(x[SPLICE]).tolist() == [3, 6, 9]
    assert not x[CDS].any()


@pytest.mark.parametrize("unknown", [None, np.nan, pd.NA])
def test_unknown_cds_and_exons_leave_tracks_empty(unknown):
    x = encode("ACGTACGT", unknown, unknown, unknown)
    assert not x[CDS].any() and not x[SPLICE].any()
    assert x[:4].sum() == 8


def test_cds_or_exons_outside_sequence_are_errors():
    with pytest.raises(CoordinateError, match="CDS"):
        encode("ACGTAC", 3, 9, None)
    with pytest.raises(CoordinateError, match="exon ends"):
        encode("ACGTAC", None, None, [2, 6])


def test_encode_row_from_series_namedtuple_and_missing_columns():
    row = pd.Series({"seq": "ATGAAATAG", "cds_start": 0, "cds_end": 9, "exon_ends": np.array([4, 8])})
    x = encode_row(row)
    assert np.flatnonzero(x[CDS]).tolist() == [0, 3, 6]
    assert np.flatnonzero(x[SPLICE]).tolist() == [4, 8]
    Row = namedtuple("Row", "seq cds_start cds_end exon_ends")
    np.testing.assert_array_equal(encode_row(Row("ATGAAATAG", 0, 9, [4, 8])), x)
    only_seq = encode_row({"seq": "ATGAAATAG"})
    assert not only_seq[4:].any() and only_seq[:4].sum() == 9


def test_encode_row_on_table_itertuples_with_nulls():
    table = pd.DataFrame(
        {
            "seq": ["ACGTAC", "ATGTAA"],
            "cds_start": pd.array([pd.NA, 0], dtype="Int64"),
            "cds_end": pd.array([pd.NA, 6], dtype="Int64"),
            "exon_ends": [None, [2, 5]],
        }
    )
    first, second = (encode_row(r) for r in table.itertuples())
    assert not first[4:].any()
    assert np.flatnonzero(second[CDS]).tolist() == [0, 3]
    assert np.flatnonzero(second[SPLICE]).tolist() == [2, 5]


def test_batch_pads_to_longest_in_batch():
    tracks = [encode("ACG", None, None, None), encode("ACGTACG", None, None, None), encode("A", None, None, None)]
    x, lengths = batch(tracks)
    assert x.shape == (3, 6, 7) and x.dtype == torch.float32
    assert lengths.dtype == torch.int64 and lengths.tolist() == [3, 7, 1]
    assert torch.equal(x[0, :, :3], torch.from_numpy(tracks[0]))
    assert x[0, :, 3:].abs().sum() == 0 and x[2, :, 1:].abs().sum() == 0
    # never a fixed length: a shorter batch gives a shorter tensor
    assert batch(tracks[:1])[0].shape == (1, 6, 3)


def test_batch_rejects_empty():
    with pytest.raises(ValueError):
        batch([])


def test_crop_keeps_short_tracks_and_takes_5prime_without_rng():
    track = encode("ACGTACGTAC", None, None, [9])
    assert crop(track, 20, None).shape == (6, 10)
    head = crop(track, 4, None)
    np.testing.assert_array_equal(head, track[:, :4])


def test_crop_random_window_is_a_real_window_and_varies():
    track = np.arange(6 * 100, dtype=np.float32).reshape(6, 100)
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(50):
        window = crop(track, 30, rng)
        assert window.shape == (6, 30)
        start = int(window[0, 0])
        np.testing.assert_array_equal(window, track[:, start : start + 30])
        starts.add(start)
    assert len(starts) > 10
    assert max(starts) <= 70
