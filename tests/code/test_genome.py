"""GTF + genome FASTA ingest on hand-made genomes with known answers, and each bad-input rule."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pandas as pd
import pytest
from Bio import bgzf

from isoclr.config import Annotation
from isoclr.ingest import ValidationError, read_annotation
from isoclr.ingest.files import BGZIP, GZIP, PLAIN, compression
from isoclr.ingest.genome import CACHE_ENV, Exons, Genome, content_key, splice
from isoclr.ingest.gtf import gtf_transcripts
from isoclr.ingest.readers import spliced
from isoclr.schemas import QUARANTINE, TRANSCRIPTS
from isoclr.tracks import CHANNELS, encode_row

MAX_LENGTH = 1000
CDS_CH, SPLICE_CH = CHANNELS.index("cds"), CHANNELS.index("splice")

# chrT (plus strand P, minus strand non-coding M2 on the same exons):
#   1-10 CCATGAAACC | 11-20 intron | 21-30 CTGATTAGGG
#   P: exons 1-10, 21-30; CDS 3-10 + 21-21 across the junction; stop_codon 22-24 outside
#   the CDS features -> tx "CCATGAAACC" + "CTGATTAGGG", CDS [2, 14), exon ends [9, 19].
# chrM (minus strand M): 1-10 GCCCTAAAAA | 11-15 intron | 16-25 CTTGCCATGC
#   transcript = revcomp(16-25) + revcomp(1-10) = GCATGGCAAG + TTTTTAGGGC;
#   CDS 16-23 (frame 0) + 7-10 (frame 1), stop_codon 4-6 -> CDS [2, 17), exon ends [9, 19].
# chrS: single exon 1-15, CDS 2-15 with frame 2 (5' incomplete) -> CDS [3, 15), exon ends [14].
CHR_T = "CCATGAAACC" + "gtaagtttag" + "CTGATTAGGG" + "AAAAA"  # soft-masked intron
CHR_M = "GCCCTAAAAA" + "CTTAC" + "CTTGCCATGC"
CHR_S = "TTGCATGCCCGGGAA"
GENOME = {"chrT": CHR_T, "chrM": CHR_M, "chrS": CHR_S}
EXPECTED = {
    "P": ("CCATGAAACCCTGATTAGGG", (2, 14), [9, 19]),
    "M": ("GCATGGCAAGTTTTTAGGGC", (2, 17), [9, 19]),
    "M2": ("CCCTAATCAGGGTTTCATGG", None, [9, 19]),
    "F": ("TTGCATGCCCGGGAA", (3, 15), [14]),
}


def line(tid, start, end, strand="+", feature="exon", gene="G", frame=".", contig="chrT", extra="") -> str:
    attrs = "".join(f'{k} "{v}"; ' for k, v in (("transcript_id", tid), ("gene_id", gene)) if v is not None)
    return f"{contig}\tt\t{feature}\t{start}\t{end}\t.\t{strand}\t{frame}\t{attrs}{extra}".rstrip() + "\n"


GOOD_GTF = (
    line("P", 1, 10, gene="GP", extra='gene_name "GENEP"; transcript_type "protein_coding";')
    + line("P", 21, 30, gene="GP")
    + line("P", 3, 10, feature="CDS", gene="GP", frame="0")
    + line("P", 21, 21, feature="CDS", gene="GP", frame="0")
    + line("P", 22, 24, feature="stop_codon", gene="GP", frame="0")
    + line("M", 16, 25, "-", gene="GM", contig="chrM")
    + line("M", 16, 23, "-", feature="CDS", gene="GM", frame="0", contig="chrM")
    + line("M", 1, 10, "-", gene="GM", contig="chrM")
    + line("M", 7, 10, "-", feature="CDS", gene="GM", frame="1", contig="chrM")
    + line("M", 4, 6, "-", feature="stop_codon", gene="GM", frame="0", contig="chrM")
    + line("M2", 21, 30, "-", gene="GN", extra='gene_type "lncRNA";')
    + line("M2", 1, 10, "-", gene="GN")
    + line("F", 1, 15, gene="GF", contig="chrS")
    + line("F", 2, 15, feature="CDS", gene="GF", frame="2", contig="chrS")
)


def fasta_text(contigs: dict[str, str], width: int = 7) -> str:
    return "".join(
        f">{n} some description\n" + "".join(s[i : i + width] + "\n" for i in range(0, len(s), width))
        for n, s in contigs.items()
    )


def genome_annotation(tmp_path, gtf: str, contigs: dict[str, str], bgzip=False, gzip_gtf=False, name="g") -> Annotation:
    gtf_file = tmp_path / f"{name}.gtf"
    gtf_file.write_bytes(gzip.compress(gtf.encode()) if gzip_gtf else gtf.encode())
    genome = tmp_path / (f"{name}.fa.gz" if bgzip else f"{name}.fa")
    if bgzip:
        with bgzf.BgzfWriter(str(genome), "wb") as fh:
            fh.write(fasta_text(contigs).encode())
    else:
        genome.write_text(fasta_text(contigs))
    return Annotation(
        name=name,
        format="gtf_genome_fasta",
        gtf=gtf_file.name,
        genome=genome.name,
        species="homo_sapiens",
        assembly="toy",
    )


@pytest.fixture(params=["plain", "bgzip+gzip_gtf"])
def good(tmp_path, request):
    packed = request.param != "plain"
    ann = genome_annotation(tmp_path, GOOD_GTF, GENOME, bgzip=packed, gzip_gtf=packed)
    transcripts, quarantine = read_annotation(ann, tmp_path, MAX_LENGTH)
    return transcripts.set_index("transcript_id"), quarantine


@pytest.mark.parametrize("tid", EXPECTED)
def test_spliced_sequence_cds_and_exon_ends_known_answers(good, tid):
    transcripts, quarantine = good
    seq, cds, ends = EXPECTED[tid]
    row = transcripts.loc[tid]
    assert quarantine.empty
    assert row.seq == seq and row.length == len(seq)
    assert list(row.exon_ends) == ends
    if cds is None:
        assert pd.isna(row.cds_start) and pd.isna(row.cds_end)
    else:
        assert (row.cds_start, row.cds_end) == cds
    assert (row.annotation, row.species, row.assembly) == ("g", "homo_sapiens", "toy")


def test_transcripts_in_gtf_order_and_schema_valid(good):
    transcripts, _ = good
    assert list(transcripts.index) == ["P", "M", "M2", "F"]
    TRANSCRIPTS.validate(transcripts.reset_index())


@pytest.mark.parametrize(
    "tid, cds_at, splice_at",
    [
        ("P", [2, 5, 8, 11], [9, 19]),  # CDS across the junction, stop codon from its own feature
        ("M", [2, 5, 8, 11, 14], [9, 19]),  # minus strand
        ("M2", [], [9, 19]),  # non-coding: CDS track all zero
        ("F", [3, 6, 9, 12], [14]),  # single exon, CDS phase 2
    ],
)
def test_tracks_of_hand_made_transcripts(good, tid, cds_at, splice_at):
    x = encode_row(good[0].loc[tid])
    assert list(np.flatnonzero(x[CDS_CH])) == cds_at
    assert list(np.flatnonzero(x[SPLICE_CH])) == splice_at
    assert (x[:4].sum(axis=0) == 1).all()


@pytest.mark.parametrize("bgzip", [True, False], ids=["bgzip_gz", "plain"])
def test_index_built_in_the_cache_never_beside_the_genome(tmp_path, genome_cache, bgzip):
    ann = genome_annotation(tmp_path, GOOD_GTF, GENOME, bgzip=bgzip)
    read_annotation(ann, tmp_path, MAX_LENGTH)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "genome-cache") == sorted(["g.gtf", ann.genome])
    (link,) = (p for p in genome_cache.iterdir() if p.is_symlink())
    assert link.resolve() == (tmp_path / ann.genome).resolve()
    expected = [link.name, link.name + ".fai"] + ([link.name + ".gzi"] if bgzip else [])
    assert cached_files(genome_cache) == sorted(expected)


@pytest.mark.parametrize("bgzip", [True, False], ids=["bgzip_gz", "plain"])
def test_genome_in_a_read_only_folder_is_read_and_left_untouched(tmp_path, genome_cache, bgzip):
    """Data folders may be read-only (a mounted bucket, a shared reference): the index goes to the cache."""
    folder = tmp_path / "data"
    folder.mkdir()
    ann = genome_annotation(folder, GOOD_GTF, GENOME, bgzip=bgzip)
    before = sorted(p.name for p in folder.iterdir())
    folder.chmod(0o555)  # as root the folder stays writable: then the listing below is the check
    try:
        for _ in range(2):  # built once, then reused
            transcripts, quarantine = read_annotation(ann, folder, MAX_LENGTH)
            assert len(transcripts) > 0
        assert sorted(p.name for p in folder.iterdir()) == before
    finally:
        folder.chmod(0o755)
    assert any(p.name.endswith(".fai") for p in genome_cache.iterdir())


def test_a_fresh_index_beside_the_genome_is_used_there(tmp_path, genome_cache):
    ann = genome_annotation(tmp_path, GOOD_GTF, GENOME, bgzip=True)
    genome = tmp_path / ann.genome
    import pyfaidx

    pyfaidx.Faidx(str(genome)).close()  # as a user's samtools/pyfaidx run leaves them
    assert (tmp_path / "g.fa.gz.fai").is_file() and (tmp_path / "g.fa.gz.gzi").is_file()
    read_annotation(ann, tmp_path, MAX_LENGTH)
    assert cached_files(genome_cache) == []  # nothing linked or built in the cache


# --------------------------------------------------------------------------
# Bad input: each rule, with file, record and rule
# --------------------------------------------------------------------------

BAD_CONTIGS = {"chr1": "ACGT" * 50, "chr2": "ACGTRACGT*" + "ACGT" * 10}


@pytest.fixture
def bad(tmp_path):
    lines = [
        "#!genome-build toy\n",  # line 1
        line("OK", 1, 30, contig="chr1"),  # 2
        line("NC", 1, 30, contig="chrZ"),  # 3: contig absent from the genome
        line("OC", 190, 230, contig="chr1"),  # 4: past the 200-nt contig
        line("US", 1, 30, strand=".", contig="chr1"),  # 5
        line("OV", 1, 30, contig="chr1") + line("OV", 20, 40, contig="chr1"),  # 6-7
        line(None, 1, 30, contig="chr1"),  # 8: no transcript_id
        line("NG", 1, 10, contig="chr1") + line("NG", 21, 30, gene=None, contig="chr1"),  # 9-10
        line("DU", 1, 10, gene="G1", contig="chr1") + line("DU", 21, 30, gene="G2", contig="chr1"),  # one id, two genes
        line("CN", 1, 30, contig="chr1") + line("CN", 2, 11, feature="CDS", contig="chr1"),  # 10-nt CDS
        line("IC", 1, 12, contig="chr2"),  # R and * in the genome
        line("TL", 1, 200, contig="chr1") + line("TL", 1, 10, contig="chr2"),  # also on two contigs
        line("LG", 1, 200, contig="chr1") + line("LG", 11, 50, contig="chr2"),  # long, but on two contigs
        line("EM", 2, 11, feature="CDS", contig="chr1"),  # no exon lines
        line("BC", 30, 1, contig="chr1"),
    ]
    ann = genome_annotation(tmp_path, "".join(lines), BAD_CONTIGS)
    transcripts, quarantine = read_annotation(ann, tmp_path, 150)
    return transcripts.set_index("transcript_id"), quarantine


@pytest.mark.parametrize(
    "record, rule, action, file",
    [
        ("NC", "missing_sequence", "dropped", "g.gtf"),
        ("OC", "exon_outside_contig", "dropped", "g.gtf"),
        ("US", "unknown_strand", "dropped", "g.gtf"),
        ("OV", "overlapping_exons", "dropped", "g.gtf"),
        ("line 8", "missing_attribute", "dropped", "g.gtf"),
        ("NG", "missing_attribute", "dropped", "g.gtf"),
        ("DU", "duplicate_id", "dropped", "g.gtf"),
        ("CN", "cds_not_multiple_of_3", "kept_without_cds", "g.gtf"),
        ("IC", "invalid_characters", "dropped", "g.fa"),
        ("TL", "mixed_contigs", "dropped", "g.gtf"),
        ("LG", "mixed_contigs", "dropped", "g.gtf"),
        ("EM", "empty_sequence", "dropped", "g.gtf"),
        ("BC", "invalid_coordinates", "dropped", "g.gtf"),
    ],
)
def test_bad_input_quarantined_with_file_record_rule(bad, record, rule, action, file):
    transcripts, quarantine = bad
    got = {r.record: (r.rule, r.action, r.file.rsplit("/", 1)[-1]) for r in quarantine.itertuples()}
    assert got[record] == (rule, action, file)
    if action == "dropped":
        assert record not in transcripts.index
    else:
        assert pd.isna(transcripts.loc[record].cds_start)


def test_too_long_counted_not_an_error(tmp_path):
    ann = genome_annotation(tmp_path, line("OK", 1, 30, contig="chr1") + line("TL", 1, 200, contig="chr1"), BAD_CONTIGS)
    transcripts, quarantine = read_annotation(ann, tmp_path, 150)
    assert list(transcripts.transcript_id) == ["OK"]
    assert quarantine.set_index("record").loc["TL", "rule"] == "too_long"
    assert "200 > validate.max_length 150" in quarantine.set_index("record").loc["TL", "detail"]


def test_every_bad_record_reported_once_and_details_name_the_problem(bad):
    transcripts, quarantine = bad
    QUARANTINE.validate(quarantine)
    assert not quarantine.record.duplicated().any()
    assert sorted(transcripts.index) == ["CN", "OK"]
    detail = quarantine.set_index("record")["detail"]
    assert "chrZ" in detail["NC"] and "chr1:190-230" in detail["OC"] and "200 nt" in detail["OC"]
    assert "R" in detail["IC"] and "*" in detail["IC"]


@pytest.fixture(autouse=True)
def genome_cache(tmp_path, monkeypatch):
    """Every test's genome cache in its own folder, never the user's."""
    folder = tmp_path / "genome-cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def cached_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("name", ["g.fa.gz", "g.fa"])
def test_plain_gzip_genome_gives_the_plain_genomes_transcripts(tmp_path, genome_cache, good, name):
    """Ensembl and GENCODE publish genomes in plain gzip: decompressed once into the cache, whatever the name."""
    folder = tmp_path / "gz"
    folder.mkdir()
    ann = genome_annotation(folder, GOOD_GTF, GENOME).model_copy(update={"genome": name})
    (folder / "g.fa").unlink()
    (folder / name).write_bytes(gzip.compress(fasta_text(GENOME).encode()))
    transcripts, quarantine = read_annotation(ann, folder, MAX_LENGTH)
    pd.testing.assert_frame_equal(transcripts.set_index("transcript_id"), good[0])
    assert quarantine.empty
    key = content_key(folder / name)
    # (the `good` fixture's plain genome is linked into the same cache)
    assert [f for f in cached_files(genome_cache) if key in f] == [f"g-{key}.fa", f"g-{key}.fa.fai"]
    assert not (genome_cache / f"g-{key}.fa").is_symlink()  # decompressed, not linked
    assert sorted(p.name for p in folder.iterdir()) == sorted(["g.gtf", name])  # nothing written beside the genome


def test_bgzip_genome_not_named_gz_is_read_as_bgzip(tmp_path, genome_cache, good):
    folder = tmp_path / "bgz"
    folder.mkdir()
    ann = genome_annotation(folder, GOOD_GTF, GENOME, bgzip=True)
    (folder / "g.fa.gz").rename(folder / "g.fa")
    ann = ann.model_copy(update={"genome": "g.fa"})
    transcripts, _ = read_annotation(ann, folder, MAX_LENGTH)
    pd.testing.assert_frame_equal(transcripts.set_index("transcript_id"), good[0])
    # (the `good` fixture's genome is linked into the same cache)
    (link,) = (p for p in genome_cache.glob("g-*.fa.gz") if p.resolve() == (folder / "g.fa").resolve())
    assert link.is_symlink()  # linked, not copied
    mine = [f for f in cached_files(genome_cache) if f.startswith(link.name)]
    assert mine == [link.name, link.name + ".fai", link.name + ".gzi"]


@pytest.mark.parametrize(
    "data, kind",
    [(b">c\nACGT\n", PLAIN), (gzip.compress(b">c\nACGT\n"), GZIP), (b"\x1f\x8b", GZIP), (b"", PLAIN)],
)
def test_compression_is_told_from_the_bytes(tmp_path, data, kind):
    (tmp_path / "x.gz").write_bytes(data)
    assert compression(tmp_path / "x.gz") == kind
    bgzipped = tmp_path / "y.txt"
    with bgzf.BgzfWriter(str(bgzipped), "wb") as fh:
        fh.write(b">c\nACGT\n")
    assert compression(bgzipped) == BGZIP


def test_the_decompressed_copy_is_made_once_and_reused(tmp_path, genome_cache, monkeypatch):
    ann = genome_annotation(tmp_path, GOOD_GTF, GENOME).model_copy(update={"genome": "g.fa.gz"})
    (tmp_path / "g.fa.gz").write_bytes(gzip.compress(fasta_text(GENOME).encode()))
    first, _ = read_annotation(ann, tmp_path, MAX_LENGTH)
    made = {p.name: p.stat().st_mtime_ns for p in genome_cache.iterdir()}
    monkeypatch.setattr("isoclr.ingest.genome._decompressed_copy", lambda *a: pytest.fail("decompressed again"))
    os.utime(tmp_path / "g.fa.gz", (1, 1))  # a checkout or a copy changes the mtime, not the content: same key
    second, _ = read_annotation(ann, tmp_path, MAX_LENGTH)
    assert {p.name: p.stat().st_mtime_ns for p in genome_cache.iterdir()} == made
    pd.testing.assert_frame_equal(first, second)


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "not_fasta"])
def test_a_damaged_gzip_genome_is_a_clean_error_naming_it(tmp_path, genome_cache, damage):
    packed = gzip.compress(fasta_text(GENOME).encode())
    data = {
        "truncated": packed[: len(packed) // 2],
        "corrupt": packed[:12] + bytes(b ^ 0x5A for b in packed[12:-8]) + packed[-8:],
        "not_fasta": gzip.compress(b"\x00\x01binary\xff" * 50),
    }[damage]
    ann = genome_annotation(tmp_path, GOOD_GTF, GENOME).model_copy(update={"genome": "g.fa.gz"})
    (tmp_path / "g.fa.gz").write_bytes(data)
    with pytest.raises(ValidationError, match=r"g\.fa\.gz: cannot be"):
        read_annotation(ann, tmp_path, MAX_LENGTH)
    assert cached_files(genome_cache) == []  # no half-made entry, no temporary file


def test_a_copy_killed_half_way_leaves_nothing_under_the_final_name(tmp_path, genome_cache, monkeypatch):
    ann = genome_annotation(tmp_path, GOOD_GTF, GENOME).model_copy(update={"genome": "g.fa.gz"})
    (tmp_path / "g.fa.gz").write_bytes(gzip.compress(fasta_text(GENOME).encode()))

    def killed(src, out, length):
        out.write(src.read(20))
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("shutil.copyfileobj", killed)
        with pytest.raises(KeyboardInterrupt):
            read_annotation(ann, tmp_path, MAX_LENGTH)
    assert cached_files(genome_cache) == []
    # A SIGKILL leaves its temporary file: the next run clears it (its process is gone) and makes the entry.
    final = f"g-{content_key(tmp_path / 'g.fa.gz')}.fa"
    (genome_cache / f".{final}.999999999.tmp").write_bytes(b">chr")
    transcripts, _ = read_annotation(ann, tmp_path, MAX_LENGTH)
    assert len(transcripts) == len(EXPECTED)
    assert cached_files(genome_cache) == [final, final + ".fai"]


def test_an_unwritable_cache_is_named_with_the_way_out(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    ann = genome_annotation(tmp_path, GOOD_GTF, GENOME).model_copy(update={"genome": "g.fa.gz"})
    (tmp_path / "g.fa.gz").write_bytes(gzip.compress(fasta_text(GENOME).encode()))
    with pytest.raises(ValidationError, match=f"g.fa.gz: cannot use the genome cache.*{CACHE_ENV}"):
        read_annotation(ann, tmp_path, MAX_LENGTH)


def test_genome_shorter_than_its_index_stops_the_run(tmp_path):
    import pyfaidx

    ann = genome_annotation(tmp_path, GOOD_GTF, GENOME)
    pyfaidx.Faidx(str(tmp_path / "g.fa")).close()  # the user's own g.fa.fai, beside the genome
    read_annotation(ann, tmp_path, MAX_LENGTH)
    fai = tmp_path / "g.fa.fai"
    text = fai.read_text()
    (tmp_path / "g.fa").write_text(fasta_text({**GENOME, "chrS": CHR_S[:9]}))
    fai.write_text(text)  # a stale index, newer than the genome, is kept by pyfaidx
    with pytest.raises(ValidationError, match="chrS.*truncated"):
        read_annotation(ann, tmp_path, MAX_LENGTH)


def test_missing_genome_file_is_named(tmp_path):
    ann = genome_annotation(tmp_path, GOOD_GTF, GENOME)
    (tmp_path / "g.fa").unlink()
    with pytest.raises(ValidationError, match="g.fa.*not found"):
        read_annotation(ann, tmp_path, MAX_LENGTH)


def test_annotation_needs_gtf_and_genome():
    with pytest.raises(ValueError, match="needs a genome file"):
        Annotation(name="x", format="gtf_genome_fasta", gtf="a.gtf", species="s", assembly="a")


def test_windows_line_breaks_in_a_plain_genome(tmp_path):
    """The plain-FASTA fast path reads the bases pyfaidx would: CRLF line breaks are no bases."""
    gtf = line("OK", 1, 20, contig="chrA") + line("NA", 21, 30, contig="chrA")
    contig = b"ACGTACGTACGTACGTACGT" + b"ACGTA*CGTA"  # a stray character inside NA's exon
    ann = genome_annotation(tmp_path, gtf, {"chrA": "X"})
    body = b"".join(contig[i : i + 7] + b"\r\n" for i in range(0, len(contig), 7))
    (tmp_path / "g.fa").write_bytes(b">chrA\r\n" + body)
    transcripts, quarantine = read_annotation(ann, tmp_path, MAX_LENGTH)
    assert transcripts.set_index("transcript_id").loc["OK", "seq"] == contig[:20].decode()
    bad = quarantine.set_index("record").loc["NA"]
    assert bad.rule == "invalid_characters" and "'*'" in bad.detail


@pytest.mark.parametrize(
    "odd_comment",
    ['#chrT\tt\texon\t1\t10\t.\t+\t.\tgene_id "GP"; transcript_id "P";\n', "#x\ty\tz\tnot\ta number\n"],
    ids=["commented-out-line", "text-where-start-is"],
)
def test_comment_and_blank_lines_anywhere_leave_the_table_and_line_numbers(tmp_path, good, odd_comment):
    """'#' lines are read as rows and dropped (one whose fields do not parse makes the file be read again with
    polars' comment_prefix); quarantined lines are still named by their line in the file."""
    lines = GOOD_GTF.splitlines(keepends=True)
    orphan = line(None, 1, 5, contig="chrT")  # no transcript_id: quarantined by line number
    text = "##format: gtf\n#!genome-build toy\n" + lines[0] + "# a note\n\n" + odd_comment + "".join(lines[1:]) + orphan
    folder = tmp_path / "commented"
    folder.mkdir()
    transcripts, quarantine = read_annotation(genome_annotation(folder, text, GENOME), folder, MAX_LENGTH)
    pd.testing.assert_frame_equal(transcripts.set_index("transcript_id"), good[0])
    missing = quarantine[quarantine["rule"] == "missing_attribute"]
    assert missing["record"].tolist() == [f"line {len(text.splitlines())}"]


def test_keys_read_in_slices_on_several_threads_give_the_same_table(tmp_path, monkeypatch, good):
    monkeypatch.setattr("isoclr.ingest.gtf.ROWS_PER_THREAD", 2)
    monkeypatch.setattr("os.cpu_count", lambda: 3)  # three slices, whatever this machine has
    folder = tmp_path / "sliced"
    folder.mkdir()
    transcripts, quarantine = read_annotation(genome_annotation(folder, GOOD_GTF, GENOME), folder, MAX_LENGTH)
    pd.testing.assert_frame_equal(transcripts.set_index("transcript_id"), good[0])
    assert len(quarantine) == len(good[1])


def test_genome_whose_lines_disagree_with_its_index_stops_the_run(tmp_path):
    """Exons are cut where the index puts them: a line that does not end in a line break there means a stale
    index."""
    ann = genome_annotation(tmp_path, line("OK", 1, 10, contig="chrA"), {"chrA": "X"})
    (tmp_path / "g.fa").write_bytes(b">chrA\r\nACGT\r\nACGT\r\nAC\r\n")
    (tmp_path / "g.fa.fai").write_text("chrA\t10\t7\t4\t5\n")  # one-byte line breaks: the exon's range ends early
    with pytest.raises(ValidationError, match="chrA:1-10 runs over a line end without the line break.*stale"):
        read_annotation(ann, tmp_path, MAX_LENGTH)


def test_attribute_order_does_not_change_the_table(tmp_path, good):
    """Lines starting gene_id ...; transcript_id ... (GENCODE order) take a faster path: same table, with
    lines in either order mixed in one file."""
    reordered = "".join(
        text.replace(f'transcript_id "{t}"; gene_id "{g}";', f'gene_id "{g}"; transcript_id "{t}";') if i % 2 else text
        for i, text in enumerate(GOOD_GTF.splitlines(keepends=True))
        for t, g in [(text.split('transcript_id "')[1].split('"')[0], text.split('gene_id "')[1].split('"')[0])]
    )
    assert reordered != GOOD_GTF
    folder = tmp_path / "reordered"
    folder.mkdir()
    transcripts, _ = read_annotation(genome_annotation(folder, reordered, GENOME), folder, MAX_LENGTH)
    pd.testing.assert_frame_equal(transcripts.set_index("transcript_id"), good[0])


def reverse_complement(seq: str) -> str:
    return seq[::-1].translate(str.maketrans("ACGT", "TGCA"))


@pytest.mark.parametrize("thread_bases, release", [(1 << 20, 1 << 26), (4, 1)])
def test_splice_plain_and_bgzip_agree_on_interleaved_contigs(tmp_path, monkeypatch, thread_bases, release):
    """Transcripts alternate between contigs (as in a GTF not sorted by contig), one has no exons, one a bad
    byte; a plain genome is cut in transcript order (mapped pages given back every ``release`` bytes), a
    bgzip one per contig; with ``thread_bases`` 4 the exons are shared out between threads."""
    monkeypatch.setattr("isoclr.ingest.genome.THREAD_MIN_BASES", thread_bases)
    monkeypatch.setattr("isoclr.ingest.genome.RELEASE_BYTES", release)
    contigs = {"chrA": "ACGTACGTTTGGCCAAacgtaCGTA", "chrB": "GGGCCCATATNNTTAAGGCXTT"}
    plain = genome_annotation(tmp_path, "", contigs)
    packed = genome_annotation(tmp_path, "", contigs, bgzip=True, name="z")
    # transcript, contig, start, end, minus (1-based closed; exons in transcript order)
    spec = [
        (0, 1, 1, 4, False),
        (0, 1, 8, 10, False),
        (1, 0, 20, 25, True),
        (1, 0, 3, 6, True),
        (3, 1, 18, 22, False),
        (4, 0, 9, 16, False),
    ]
    names = ["chrA", "chrB"]
    expected = []
    for t in range(5):
        parts = [(contigs[names[c]][s - 1 : e].upper(), m) for tt, c, s, e, m in spec if tt == t]
        expected.append("".join(reverse_complement(p) if m else p for p, m in parts) if parts else None)
    transcript, contig, start, end, minus = (np.array(column) for column in zip(*spec, strict=True))
    exons = Exons(transcript=transcript, contig=contig, contigs=names, start=start, end=end, minus=minus)
    for ann in (plain, packed):
        genome = Genome(tmp_path / ann.genome)
        strings, invalid = splice(genome, exons, 5)
        genome.close()
        assert strings.to_pylist() == expected
        assert invalid.tolist() == [False, False, False, True, False]


def test_spliced_sequences_follow_the_rows_in_any_order(tmp_path):
    """The reader keeps transcripts in GTF order (a fast path); rows in another order get the same sequences."""
    ann = genome_annotation(tmp_path, GOOD_GTF, GENOME)
    structure, _, _, exons = gtf_transcripts(tmp_path / ann.gtf)
    genome = Genome(tmp_path / ann.genome)
    in_order, _ = spliced(genome, exons, structure)
    shuffled, _ = spliced(genome, exons, structure.iloc[[2, 0, 3, 1]])
    genome.close()
    expected = {tid: seq for tid, (seq, _, _) in EXPECTED.items()}
    assert dict(zip(structure["transcript_id"], in_order, strict=True)) == expected
    assert dict(zip(structure["transcript_id"].iloc[[2, 0, 3, 1]], shuffled, strict=True)) == expected
    assert list(shuffled.index) == [2, 0, 3, 1]
