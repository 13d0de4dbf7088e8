"""The nucleotide alphabet: one definition, and the normalisations and tables every module derives from it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from isoclr import alphabet
from isoclr.alphabet import BASES, COMPLEMENT, COMPLEMENT_UPPER, DNA, IUPAC, NOT_IUPAC, UPPER


def test_text_and_byte_normalisation_agree_on_every_nucleotide_code():
    codes = IUPAC + IUPAC.lower()
    text = alphabet.normalise(pd.Series([codes])).iloc[0]
    assert text == codes.encode().translate(UPPER).decode() == (IUPAC.replace("U", "T") * 2)
    assert set(text) <= set(IUPAC) - {"U"}


def test_byte_normalisation_keeps_other_ascii_and_replaces_non_ascii():
    assert b"acgu*x-".translate(UPPER) == b"ACGT*x-"
    assert bytes([0xC3, 0xA9]).translate(UPPER) == b"??"  # every sequence stays valid UTF-8


def test_complement_pairs_every_code_and_keeps_case():
    assert b"ACGTUacgtu".translate(COMPLEMENT) == b"TGCAAtgcaa"
    assert b"RYKMBVDHSWN".translate(COMPLEMENT) == b"YRMKVBHDSWN"
    assert b"acgtn".translate(COMPLEMENT_UPPER) == b"TGCAN"
    dna = (IUPAC + IUPAC.lower()).replace("U", "").replace("u", "").encode()
    assert dna.translate(COMPLEMENT).translate(COMPLEMENT) == dna  # an involution on DNA codes


def test_base_codes_read_either_case_and_u_as_t():
    codes = alphabet.base_codes(255)
    assert [codes[ord(c)] for c in "ACGTacgtUu"] == [0, 1, 2, 3, 0, 1, 2, 3, 3, 3]
    assert {int(codes[ord(c)]) for c in "NRYnry*"} == {255}
    assert alphabet.base_codes(4)[ord("N")] == 4 and BASES == "ACGT"


@pytest.mark.parametrize(
    "seq, ok",
    [
        ("ACGTN", True),
        ("", False),
        ("ACGU", False),
        ("acgt", False),
        ("ACG-T", False),
        ("ACGT\u00e9", False),
        (None, True),
    ],
)
def test_dna_only_is_the_regex_of_the_alphabet(seq, ok):
    assert alphabet.dna_only(pd.Series(["ACGT", seq, "NNNA" * 50])).tolist() == [True, ok, True]


def test_bad_characters_names_what_is_outside_the_alphabet():
    assert alphabet.bad_characters("ACGTXNRX*") == "*RX"
    assert alphabet.bad_characters(DNA) == ""


def test_not_iupac_finds_only_non_nucleotides():
    assert NOT_IUPAC.findall("ACGTUNRYSWKMBDHVacgtunryswkmbdhv") == []
    assert NOT_IUPAC.findall("AC-GX*") == ["-", "X", "*"]


def test_outside_dna_flags_every_byte_but_acgtn():
    flagged = np.flatnonzero(~alphabet.outside_dna())
    assert bytes(flagged.astype(np.uint8)) == b"ACGNT"
