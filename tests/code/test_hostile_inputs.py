"""Hostile input, property-based: GTF, FASTA (plain, gzip, bgzip), genome, label and paralog files corrupted at random.

Every generated input must end in a result or a clean :class:`~isoclr.errors.IsoclrError` whose message names the
file (never another exception), and every input record must be conserved: each transcript FASTA record, GTF
transcript and genome transcript is in the transcripts table or in quarantine with a rule; each label row is in
the probe rows or counted in the notes under a reason.

Corruptions (one to three per input, :func:`corrupted`): truncation, binary garbage, non-UTF-8 bytes, CRLF or CR
line ends, a very long line, a duplicated or missing line (headers included), swapped or missing columns, an
empty file; then the bytes are written plain, gzip, bgzip, plain under a ``.gz`` name, or gzip cut short.

The budget is small and fixed (``derandomize``: the same inputs on every run). Each fuzzer prints one line,
``fuzz <name>: N inputs tried, R results, E clean errors, K records in, L lost``; set ``ISOCLR_FUZZ_FIGURES`` to
a file to have the lines appended there as JSON (the README's figures come from there).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet
import pytest
from Bio import bgzf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isoclr import stage
from isoclr.artifacts import Paths
from isoclr.config import Annotation, ProbeTask
from isoclr.config.data import OrthologTable
from isoclr.errors import IsoclrError
from isoclr.gene_pairs import read_ortholog_rows
from isoclr.pairs import read_paralogs
from isoclr.tasks import task_table
from tests.helpers import GOOD_GTF, SEQS, fasta, gencode_records, make_config, synthetic_annotation

EXAMPLES = 60
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NON_UTF8 = [b"\xff", b"\xc3\x28", b"\xe2\x82", b"\x80\x81\x82", b"\xfe\xff", b"\xed\xa0\x80"]
MUTATIONS = [
    "truncate",
    "garbage",
    "non_utf8",
    "crlf",
    "cr",
    "long_line",
    "duplicate_line",
    "drop_line",
    "swap_columns",
    "drop_column",
    "empty",
]
PACKINGS = ["plain", "gzip", "bgzip", "plain_named_gz", "gzip_cut_short"]


@dataclass
class Figures:
    """What one fuzzer tried: inputs, how each ended, records in and records lost."""

    name: str
    tried: int = 0
    results: int = 0
    errors: int = 0
    records_in: int = 0
    lost: int = 0

    def report(self) -> None:
        line = (
            f"fuzz {self.name}: {self.tried} inputs tried, {self.results} results, {self.errors} clean errors, "
            f"{self.records_in} records in, {self.lost} lost"
        )
        print(line)
        if os.environ.get("ISOCLR_FUZZ_FIGURES"):
            with open(os.environ["ISOCLR_FUZZ_FIGURES"], "a") as fh:
                fh.write(json.dumps(asdict(self)) + "\n")
        assert self.tried >= EXAMPLES and self.lost == 0


# --------------------------------------------------------------------------- corruption


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


@st.composite
def corrupted(draw, base: bytes, sep: bytes) -> bytes:
    """``base`` with one to three corruptions of :data:`MUTATIONS`, columns split on ``sep``."""
    data = base
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(MUTATIONS))
        at = draw(st.integers(0, len(data)))
        lines = _lines(data)
        row = draw(st.integers(0, max(len(lines) - 1, 0)))
        if kind == "truncate":
            data = data[:at]
        elif kind == "garbage":
            data = data[:at] + draw(st.binary(min_size=1, max_size=40)) + data[at:]
        elif kind == "non_utf8":
            data = data[:at] + draw(st.sampled_from(NON_UTF8)) + data[at:]
        elif kind == "crlf":
            data = data.replace(b"\n", b"\r\n")
        elif kind == "cr":
            data = data.replace(b"\n", b"\r")
        elif kind == "long_line":
            unit = draw(st.sampled_from([b"A", b"x\t", b'"; ', b">", sep]))
            lines.insert(row, unit * draw(st.integers(20_000, 200_000)))
            data = b"\n".join(lines)
        elif kind == "duplicate_line" and lines:
            lines.insert(row, lines[row])
            data = b"\n".join(lines)
        elif kind == "drop_line" and lines:
            del lines[row]
            data = b"\n".join(lines)
        elif kind in ("swap_columns", "drop_column"):
            every = draw(st.booleans())
            i, j = draw(st.integers(0, 9)), draw(st.integers(0, 9))
            out = []
            for k, line in enumerate(lines):
                fields = line.split(sep)
                if (every or k == row) and max(i, j) < len(fields):
                    if kind == "swap_columns":
                        fields[i], fields[j] = fields[j], fields[i]
                    else:
                        del fields[i]
                out.append(sep.join(fields))
            data = b"\n".join(out)
        elif kind == "empty":
            data = b""
    return data


class _Kept(io.BytesIO):
    """A buffer that outlives the writer that closes it."""

    def close(self) -> None:
        pass


def pack(data: bytes, packing: str) -> bytes:
    """The bytes of a file holding ``data`` as ``packing`` says (:data:`PACKINGS`)."""
    if packing in ("gzip", "gzip_cut_short"):
        packed = gzip.compress(data, mtime=0)
        return packed[: max(len(packed) // 2, 11)] if packing == "gzip_cut_short" else packed
    if packing == "bgzip":
        out = _Kept()
        with bgzf.BgzfWriter(fileobj=out, mode="wb") as fh:
            fh.write(data)
        return out.getvalue()
    return data


def written(folder: Path, stem: str, data: bytes, packing: str) -> Path:
    path = folder / (f"{stem}.gz" if packing == "plain_named_gz" else stem)
    path.write_bytes(pack(data, packing))
    return path


def readable(data: bytes, packing: str) -> bool:
    """Whether the file can be read whole (a gzip cut short cannot: then there is no count of records to keep)."""
    return packing != "gzip_cut_short"


def text_of(data: bytes) -> str:
    """``data`` as the readers decode it: UTF-8 (bad bytes replaced), universal line ends."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace", newline=None).read()


def clean_error(err: BaseException, *files: Path) -> None:
    """A project error that names one of ``files``."""
    assert isinstance(err, IsoclrError), f"{type(err).__name__}: {err}"
    message = str(err)
    assert any(f.name in message for f in files), message


# --------------------------------------------------------------------------- the validate stage


def run_validate(folder: Path, ann: Annotation, **limits) -> tuple[Paths, BaseException | None]:
    paths = Paths.under(folder / "out", data_dir=folder)
    cfg = make_config([ann], max_quarantine_fraction=1.0, **limits)
    try:
        stage.run("validate", cfg, paths)
    except Exception as err:  # noqa: BLE001 - judged by the caller: it must be a clean IsoclrError
        return paths, err
    return paths, None


def outcome(paths: Paths) -> tuple[set[str], pd.DataFrame, dict] | None:
    """(kept transcript ids, quarantine, per-annotation summary), or None when the stage wrote no report."""
    if not Path(paths.validate_summary).exists():
        return None
    summary = json.loads(Path(paths.validate_summary).read_text())
    quarantine = pd.read_csv(paths.quarantine, sep="\t", dtype=str, keep_default_na=False)
    kept = set()
    if Path(paths.transcripts).exists():
        kept = set(
            pyarrow.parquet.read_table(paths.transcripts, columns=["transcript_id"])["transcript_id"].to_pylist()
        )
    (per,) = summary["by_annotation"].values()
    return kept, quarantine, per


def fasta_record_count(data: bytes) -> int:
    """Records of a FASTA file, as a FASTA reader must see them: lines starting with '>'."""
    return sum(line.startswith(">") for line in text_of(data).splitlines())


def gtf_transcript_ids(data: bytes) -> set[str]:
    """transcript_id values on the GTF's exon, CDS and stop_codon lines."""
    ids = set()
    for line in text_of(data).split("\n"):
        fields = line.split("\t")
        if len(fields) >= 9 and not fields[0].startswith("#") and fields[2] in ("exon", "CDS", "stop_codon"):
            found = re.search(r'(?:^|;)\s*transcript_id\s+"?([^";]+)"?', fields[8])
            if found:
                ids.add(found.group(1))
    return ids


def test_fuzz_transcript_fasta():
    """GENCODE transcript FASTA, corrupted: every record kept or dropped with a rule."""
    figures = Figures("transcript FASTA (gencode_fasta)")
    base = fasta(gencode_records()).encode()

    @FUZZ
    @given(data=corrupted(base, b"|"), packing=st.sampled_from(PACKINGS))
    def check(data, packing):
        figures.tried += 1
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            path = written(folder, "gc.fa", data, packing)
            ann = Annotation(name="gc", format="gencode_fasta", fasta=path.name, species="s", assembly="a")
            paths, err = run_validate(folder, ann)
            if err is not None:
                clean_error(err, path)
                figures.errors += 1
            else:
                figures.results += 1
            report = outcome(paths)
            if report is not None and readable(data, packing):
                kept, _, per = report
                n = fasta_record_count(data)
                figures.records_in += n
                figures.lost += max(0, n - per["n_transcripts"] - per["n_dropped"])
                assert per["n_transcripts"] + per["n_dropped"] == n

    check()
    figures.report()


def test_fuzz_gtf_with_transcript_fasta():
    """GTF corrupted beside an intact transcript FASTA: every GTF transcript and FASTA record accounted for."""
    figures = Figures("GTF (gtf_transcript_fasta)")
    base = GOOD_GTF.encode()
    fasta_text = fasta(SEQS).encode()

    @FUZZ
    @given(data=corrupted(base, b"\t"), packing=st.sampled_from(PACKINGS))
    def check(data, packing):
        figures.tried += 1
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            gtf = written(folder, "toy.gtf", data, packing)
            (folder / "toy.fa").write_bytes(fasta_text)
            ann = Annotation(
                name="toy", format="gtf_transcript_fasta", gtf=gtf.name, fasta="toy.fa", species="s", assembly="a"
            )
            paths, err = run_validate(folder, ann)
            if err is not None:
                clean_error(err, gtf, folder / "toy.fa")
                figures.errors += 1
            else:
                figures.results += 1
            report = outcome(paths)
            if report is not None and readable(data, packing):
                kept, quarantine, _ = report
                expected = gtf_transcript_ids(data) | set(SEQS)
                figures.records_in += len(expected)
                missing = expected - kept - set(quarantine["record"])
                figures.lost += len(missing)
                assert not missing

    check()
    figures.report()


GENOME_GTF = (
    'chrA\tt\texon\t1\t10\t.\t+\t.\ttranscript_id "P"; gene_id "GP";\n'
    'chrA\tt\texon\t21\t30\t.\t+\t.\ttranscript_id "P"; gene_id "GP";\n'
    'chrA\tt\tCDS\t3\t10\t.\t+\t0\ttranscript_id "P"; gene_id "GP";\n'
    'chrA\tt\tCDS\t21\t24\t.\t+\t0\ttranscript_id "P"; gene_id "GP";\n'
    'chrB\tt\texon\t16\t25\t.\t-\t.\ttranscript_id "M"; gene_id "GM";\n'
    'chrB\tt\texon\t1\t10\t.\t-\t.\ttranscript_id "M"; gene_id "GM";\n'
    'chrC\tt\texon\t1\t15\t.\t+\t.\ttranscript_id "F"; gene_id "GF";\n'
)
GENOME = "".join(
    [">chrA desc\n", "CCATGAA\nACCgtaa\ngtttagC\nTGATTAG\nGGAAAAA\n", ">chrB\nGCCCTAAAAACTTACCTTGCCATGC\n"]
    + [">chrC\nTTGCATGCCCGGGAA\n"]
)


def test_fuzz_genome_fasta(monkeypatch):
    """Genome FASTA corrupted (plain, gzip, bgzip, under any name): every GTF transcript kept or quarantined."""
    figures = Figures("genome FASTA (gtf_genome_fasta)")

    @FUZZ
    @given(data=corrupted(GENOME.encode(), b"\t"), packing=st.sampled_from(PACKINGS))
    def check(data, packing):
        figures.tried += 1
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            monkeypatch.setenv("ISOCLR_GENOME_CACHE", str(folder / "cache"))
            (folder / "g.gtf").write_text(GENOME_GTF)
            genome = written(folder, "g.fa", data, packing)
            ann = Annotation(
                name="g", format="gtf_genome_fasta", gtf="g.gtf", genome=genome.name, species="s", assembly="a"
            )
            paths, err = run_validate(folder, ann)
            if err is not None:
                clean_error(err, genome, folder / "g.gtf")
                figures.errors += 1
            else:
                figures.results += 1
            report = outcome(paths)
            if report is not None:
                kept, quarantine, _ = report
                expected = {"P", "M", "F"}
                figures.records_in += len(expected)
                missing = expected - kept - set(quarantine["record"])
                figures.lost += len(missing)
                assert not missing

    check()
    figures.report()


# --------------------------------------------------------------------------- label and paralog files

TRANSCRIPTS, GROUPS = synthetic_annotation()
LABEL_TASKS = {
    "csv": ProbeTask(name="t", file="labels.csv", join="gene_id", id_column="g", target="y"),
    "tsv": ProbeTask(name="t", file="labels.tsv", sep="\t", join="gene_id", id_column="g", target="y", group_by="none"),
    "classes": ProbeTask(
        name="t", file="labels.csv", join="gene_name", id_column="g", target="y", type="classification", positive=["1"]
    ),
    "sequence": ProbeTask(name="t", file="labels.csv", join="sequence", id_column="g", target="y", group_by="prefix5"),
}
# Reasons the notes give for a label row that is not probed; with the probed rows they must add up to all rows.
DROP_REASONS = [
    "dropped_na",
    "dropped_non_numeric",
    "dropped_other_class",
    "dropped_duplicate_ids",
    "unmatched",
    "dropped_bad_sequence",
]


def label_file(kind: str) -> bytes:
    sep = "\t" if kind == "tsv" else ","
    if kind == "sequence":
        ids = ["ACGTACGTAC", "acgugcaugc", "TTTTTGGGGG", "CCCCCAAAAA", "GGGGGTTTTT", "AAAAACCCCC", "NNNNNACGTA"]
    elif kind == "classes":
        ids = [f"GENE{g}" for g in range(10)]
    else:
        ids = [f"G{g:02d}.3" for g in range(10)] + ["G99"]
    rows = [f"{i}{sep}{k % 2 if kind == 'classes' else 0.1 * k:.3g}" for k, i in enumerate(ids)]
    return (f"g{sep}y{sep}note\n" + "".join(f"{r}{sep}x\n" for r in rows)).encode()


def test_fuzz_label_files():
    """Probe label files (CSV, TSV; gene id, gene name and sequence joins) corrupted: every row probed or counted."""
    figures = Figures("label files (probe tasks)")

    @FUZZ
    @given(kind=st.sampled_from(sorted(LABEL_TASKS)), seed=st.data(), packing=st.sampled_from(PACKINGS))
    def check(kind, seed, packing):
        task = LABEL_TASKS[kind]
        data = seed.draw(corrupted(label_file(kind), task.sep.encode()))
        figures.tried += 1
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            path = written(folder, task.file, data, packing)
            task = task.model_copy(update={"file": path.name})
            try:
                table, notes = task_table(task, folder, TRANSCRIPTS, GROUPS)
            except Exception as err:  # noqa: BLE001 - it must be a clean IsoclrError
                clean_error(err, path)
                figures.errors += 1
                return
            figures.results += 1
            figures.records_in += notes["n_label_rows"]
            accounted = notes.get("subsampled_from", notes["n"]) + sum(notes.get(r, 0) for r in DROP_REASONS)
            figures.lost += max(0, notes["n_label_rows"] - accounted)
            assert accounted == notes["n_label_rows"], notes
            assert len(table) == notes["n"]

    check()
    figures.report()


PARALOGS = b"gene_A,gene_B,score\nGENE0,GENE1,0.9\nGENE2,GENE3,0.8\nGENE1,GENE0,0.9\nGENE5,GENE7,0.1\n"


def test_fuzz_paralog_files():
    """Paralog pair files corrupted: a table of symbol pairs or a clean error; no pair appears that was not there."""
    figures = Figures("paralog files")

    @FUZZ
    @given(data=corrupted(PARALOGS, b","), packing=st.sampled_from(PACKINGS))
    def check(data, packing):
        figures.tried += 1
        with tempfile.TemporaryDirectory() as tmp:
            path = written(Path(tmp), "paralogs.csv", data, packing)
            try:
                pairs = read_paralogs(path)
            except Exception as err:  # noqa: BLE001 - it must be a clean IsoclrError
                clean_error(err, path)
                figures.errors += 1
                return
            figures.results += 1
            assert list(pairs.columns[:2]) == ["gene_A", "gene_B"]
            assert all(isinstance(v, str) for v in [*pairs["gene_A"], *pairs["gene_B"]])
            rows = text_of(data).count("\n") + 1
            figures.records_in += len(pairs)
            assert len(pairs) <= rows

    check()
    figures.report()


ORTHOLOGS = (
    b"ENSG00000000003\tENSMUSG00000067377\tortholog_one2one\t1.8\n"
    b"GENE1\tGene1\tx\t0.2\nG02\tENSMUSG00000000002.3\tx\t1\n"
)
ORTHOLOG_SPEC = OrthologTable(table="orthologs.tsv", header=False, columns={"gene_a": 0, "gene_b": 1})


def test_fuzz_ortholog_tables():
    """Headerless ortholog tables corrupted: pairs of names read from the file, or a clean error naming it."""
    figures = Figures("ortholog tables")

    @FUZZ
    @given(data=corrupted(ORTHOLOGS, b"\t"), packing=st.sampled_from(PACKINGS))
    def check(data, packing):
        figures.tried += 1
        with tempfile.TemporaryDirectory() as tmp:
            path = written(Path(tmp), "orthologs.tsv", data, packing)
            try:
                pairs, blank = read_ortholog_rows(path, ORTHOLOG_SPEC)
            except Exception as err:  # noqa: BLE001 - it must be a clean IsoclrError
                clean_error(err, path)
                figures.errors += 1
                return
            figures.results += 1
            figures.records_in += len(pairs)
            text = text_of(data)
            assert list(pairs.columns) == ["gene_a", "gene_b"]
            assert all(isinstance(v, str) and v and v in text for v in [*pairs["gene_a"], *pairs["gene_b"]])
            assert len(pairs) + blank <= text.count("\n") + 1

    check()
    figures.report()


@pytest.mark.parametrize("packing", PACKINGS)
def test_every_packing_of_an_intact_file_is_read(tmp_path, packing, monkeypatch):
    """The corruptions are the only thing wrong: intact files under every packing but a cut-short gzip validate."""
    monkeypatch.setenv("ISOCLR_GENOME_CACHE", str(tmp_path / "cache"))
    genome = written(tmp_path, "g.fa", GENOME.encode(), packing)
    (tmp_path / "g.gtf").write_text(GENOME_GTF)
    ann = Annotation(name="g", format="gtf_genome_fasta", gtf="g.gtf", genome=genome.name, species="s", assembly="a")
    _, err = run_validate(tmp_path, ann)
    if packing == "gzip_cut_short":
        clean_error(err, genome)
    else:
        assert err is None, err


# --------------------------------------------------------------------------- what the fuzzers found, pinned


def test_a_label_row_with_extra_fields_shifts_no_column(tmp_path):
    """pandas reads the first columns as the index when the first row has more fields than the header: every id
    was then read as a target (and a long row of separators took ~20 s)."""
    (tmp_path / "labels.csv").write_text("g,y,note\nG00.3,1.5,x,extra\nG01.3,2.5,x\n")
    table, _ = task_table(LABEL_TASKS["csv"], tmp_path, TRANSCRIPTS, GROUPS)
    assert sorted(table["target"]) == [1.5, 2.5]
    (tmp_path / "p.csv").write_text("gene_A,gene_B\n" + "," * 30_000 + "\nA,B\n")
    assert read_paralogs(tmp_path / "p.csv").values.tolist() == [["A", "B"]]


@pytest.mark.parametrize("reader", ["labels", "paralogs"])
@pytest.mark.parametrize("data", [b"", b"\x1f\x8b\x08\x00broken", b'g,y\n"unclosed,1\n'], ids=["empty", "cut", "quote"])
def test_unreadable_label_and_paralog_files_are_clean_errors(tmp_path, reader, data):
    path = tmp_path / "labels.csv"
    path.write_bytes(data)
    with pytest.raises(IsoclrError, match=str(path)):
        task_table(LABEL_TASKS["csv"], tmp_path, TRANSCRIPTS, GROUPS) if reader == "labels" else read_paralogs(path)


def test_label_and_paralog_files_are_read_as_their_bytes_say_not_their_names(tmp_path):
    (tmp_path / "labels.csv").write_bytes(gzip.compress(label_file("csv")))  # gzip named .csv
    table, _ = task_table(LABEL_TASKS["csv"], tmp_path, TRANSCRIPTS, GROUPS)
    assert len(table) == 10
    (tmp_path / "paralogs.csv.gz").write_bytes(PARALOGS)  # plain named .gz
    assert len(read_paralogs(tmp_path / "paralogs.csv.gz")) == 4


def test_a_genome_whose_transcripts_are_all_quarantined_gives_a_report(tmp_path, monkeypatch):
    """Nothing left to splice used to read an unmapped genome (TypeError); now the limit names the files."""
    monkeypatch.setenv("ISOCLR_GENOME_CACHE", str(tmp_path / "cache"))
    (tmp_path / "g.fa").write_text(">other\nACGT\n")
    (tmp_path / "g.gtf").write_text(GENOME_GTF)
    ann = Annotation(name="g", format="gtf_genome_fasta", gtf="g.gtf", genome="g.fa", species="s", assembly="a")
    paths, err = run_validate(tmp_path, ann)
    clean_error(err, tmp_path / "g.fa")
    _, quarantine, _ = outcome(paths)
    assert set(quarantine["rule"]) == {"missing_sequence"} and len(quarantine) == 3
