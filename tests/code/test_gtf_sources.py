"""GTFs as they are downloaded: Ensembl, GENCODE, RefSeq, StringTie and a yeast GTF without gene names.

Each sample is a few genes written with the attribute set, contig names, comment lines and quirks of its
source (RefSeq: gene symbols as gene ids, the symbol again in ``gene``, repeated ``db_xref``, gene lines with
an empty transcript_id; StringTie: no gene_name, ``cov``/``FPKM``/``TPM``, a single-exon transcript of unknown
strand; Ensembl/yeast: ``*_biotype`` rather than ``*_type``; GENCODE: a bare ``level 2``). Every sample is
validated through the stage runner against a genome, and every transcript of the GTF ends up either in the
transcripts table or in quarantine with a rule.

The same three genes in every sample (a random genome, so only the structure matters):
  A: plus strand; A1 coding, exons 101-250 + 401-600, CDS 131-250 + 401-511, stop codon 512-514;
     A2 non-coding, exons 101-250 + 701-900.
  B: minus strand; B1 coding, exons 1601-1700 + 1201-1400, CDS 1601-1670 + 1300-1400, stop codon 1297-1299.
  C: plus strand, non-coding, one exon 2001-2300.
"""

from __future__ import annotations

import random

import pandas as pd
import pyarrow.parquet
import pytest

from isoclr import stage
from isoclr.artifacts import Paths
from isoclr.config import Annotation
from tests.helpers import make_config

CONTIG_LENGTH = 3000
# (transcript, gene, strand, feature, start, end, frame)
STRUCTURE = [
    ("A1", "A", "+", "exon", 101, 250, "."),
    ("A1", "A", "+", "CDS", 131, 250, "0"),
    ("A1", "A", "+", "start_codon", 131, 133, "0"),
    ("A1", "A", "+", "exon", 401, 600, "."),
    ("A1", "A", "+", "CDS", 401, 511, "0"),
    ("A1", "A", "+", "stop_codon", 512, 514, "0"),
    ("A2", "A", "+", "exon", 101, 250, "."),
    ("A2", "A", "+", "exon", 701, 900, "."),
    ("B1", "B", "-", "exon", 1601, 1700, "."),
    ("B1", "B", "-", "CDS", 1601, 1670, "0"),
    ("B1", "B", "-", "exon", 1201, 1400, "."),
    ("B1", "B", "-", "CDS", 1300, 1400, "2"),
    ("B1", "B", "-", "stop_codon", 1297, 1299, "0"),
    ("C1", "C", "+", "exon", 2001, 2300, "."),
]
LENGTHS = {"A1": 350, "A2": 350, "B1": 300, "C1": 300}
CDS = {"A1": (30, 264), "B1": (30, 204)}  # stop codon included


def gtf(contig: str, source: str, attributes, header: str = "", gene_lines=None, features=None) -> str:
    """A GTF of STRUCTURE: ``attributes(transcript, gene, feature, exon_number)`` writes each line's attributes,
    ``gene_lines(gene)`` (optional) those of a gene line before each gene's first line; only ``features``
    (default all)."""
    out, seen, exon_no = [header], set(), {}
    for tid, gene, strand, feature, start, end, frame in STRUCTURE:
        if features and feature not in features:
            continue
        if gene_lines and gene not in seen:
            spans = [(s, e) for _, g, _, _, s, e, _ in STRUCTURE if g == gene]
            lo, hi = min(s for s, _ in spans), max(e for _, e in spans)
            out.append(f"{contig}\t{source}\tgene\t{lo}\t{hi}\t.\t{strand}\t.\t{gene_lines(gene)}\n")
            seen.add(gene)
        exon_no[tid] = exon_no.get(tid, 0) + (feature == "exon")
        attrs = attributes(tid, gene, feature, exon_no[tid])
        out.append(f"{contig}\t{source}\t{feature}\t{start}\t{end}\t.\t{strand}\t{frame}\t{attrs}\n")
    return "".join(out)


SYMBOLS = {"A": "DDX11L1", "B": "SAMD11", "C": "MIR1302-2HG"}
ENSEMBL_GENES = {"A": "ENSG00000223972", "B": "ENSG00000187634", "C": "ENSG00000243485"}
ENSEMBL_TRANSCRIPTS = {
    "A1": "ENST00000456328",
    "A2": "ENST00000450305",
    "B1": "ENST00000342066",
    "C1": "ENST00000473358",
}
BIOTYPES = {"A1": "protein_coding", "A2": "lncRNA", "B1": "protein_coding", "C1": "lncRNA"}


def ensembl(tid, gene, feature, n):
    attrs = (
        f'gene_id "{ENSEMBL_GENES[gene]}"; gene_version "5"; transcript_id "{ENSEMBL_TRANSCRIPTS[tid]}"; '
        f'transcript_version "2"; gene_name "{SYMBOLS[gene]}"; gene_source "havana"; gene_biotype "protein_coding"; '
        f'transcript_name "{SYMBOLS[gene]}-201"; transcript_source "havana"; transcript_biotype "{BIOTYPES[tid]}"; '
        'tag "basic"; tag "Ensembl_canonical"; transcript_support_level "1";'
    )
    if feature == "exon":
        attrs = (
            attrs.replace('gene_name "', f'exon_number "{n}"; gene_name "')
            + f' exon_id "ENSE0000{n}"; exon_version "1";'
        )
    if feature == "CDS":
        attrs += ' protein_id "ENSP00000334393"; protein_version "3";'
    return attrs


def gencode(tid, gene, feature, n):
    return (
        f'gene_id "{ENSEMBL_GENES[gene]}.5"; transcript_id "{ENSEMBL_TRANSCRIPTS[tid]}.2"; '
        f'gene_type "transcribed_unprocessed_pseudogene"; gene_name "{SYMBOLS[gene]}"; '
        f'transcript_type "{BIOTYPES[tid]}"; transcript_name "{SYMBOLS[gene]}-202"; '
        + (f"exon_number {n}; " if feature == "exon" else "")
        + 'level 2; transcript_support_level "1"; hgnc_id "HGNC:37102"; tag "basic"; '
        'havana_gene "OTTHUMG00000000961.2";'
    )


REFSEQ_TRANSCRIPTS = {"A1": "NM_001385641.1", "A2": "NR_046018.2", "B1": "NM_152486.4", "C1": "NR_036051.1"}


def refseq(tid, gene, feature, n):
    attrs = (
        f'gene_id "{SYMBOLS[gene]}"; transcript_id "{REFSEQ_TRANSCRIPTS[tid]}"; db_xref "GeneID:100287102"; '
        f'db_xref "HGNC:HGNC:37102"; gbkey "{"CDS" if feature == "CDS" else "mRNA"}"; note "gene family member"; '
        f'gene "{SYMBOLS[gene]}"; '
        f'product "DEAD/H-box helicase 11 like 1 (pseudogene)"; '
        f'transcript_biotype "{"mRNA" if tid in CDS else "lnc_RNA"}";'
    )
    if feature == "exon":
        attrs += f' exon_number "{n}";'
    if feature == "CDS":
        attrs += ' protein_id "NP_001372570.1";'
    return attrs


def refseq_gene(gene):
    return (
        f'gene_id "{SYMBOLS[gene]}"; transcript_id ""; db_xref "GeneID:100287102"; '
        f'description "DEAD/H-box helicase 11 like 1 (pseudogene)"; gbkey "Gene"; gene "{SYMBOLS[gene]}"; '
        'gene_biotype "protein_coding";'
    )


def stringtie(tid, gene, feature, n):
    reference = (
        f' reference_id "{ENSEMBL_TRANSCRIPTS[tid]}"; ref_gene_id "{ENSEMBL_GENES[gene]}";' if tid == "A1" else ""
    )
    attrs = f'gene_id "STRG.{ord(gene) - 64}"; transcript_id "STRG.{ord(gene) - 64}.{tid[1]}";'
    if tid == "A1":
        attrs = f'gene_id "STRG.1"; transcript_id "{ENSEMBL_TRANSCRIPTS[tid]}";{reference} ref_gene_name "DDX11L1";'
    if feature == "exon":
        return attrs + f' exon_number "{n}"; cov "12.093023";'
    return attrs + ' cov "12.093023"; FPKM "3.201466"; TPM "5.135121";'


YEAST_GENES = {"A": "YAL069W", "B": "YAL068W-A", "C": "YAL067C"}


def yeast(tid, gene, feature, n):
    attrs = (
        f'gene_id "{YEAST_GENES[gene]}"; transcript_id "{YEAST_GENES[gene]}_mRNA{tid[1]}"; gene_source "sgd"; '
        f'gene_biotype "protein_coding"; transcript_source "sgd"; transcript_biotype "{BIOTYPES[tid]}";'
    )
    return attrs + (f' exon_number "{n}"; exon_id "{YEAST_GENES[gene]}_mRNA-E{n}";' if feature == "exon" else "")


STRINGTIE_UNSTRANDED = 'chr1\tStringTie\ttranscript\t2501\t2700\t1000\t.\t.\tgene_id "STRG.9"; transcript_id "STRG.9.1"; cov "2.0"; FPKM "0.5"; TPM "0.8";\nchr1\tStringTie\texon\t2501\t2700\t1000\t.\t.\tgene_id "STRG.9"; transcript_id "STRG.9.1"; exon_number "1"; cov "2.0";\n'  # noqa: E501

# name -> (contig, GTF text, {transcript: (gene_id, gene_name, biotype)}, {transcript: quarantine rule})
SOURCES = {
    "ensembl": (
        "1",
        gtf(
            "1",
            "havana",
            ensembl,
            "#!genome-build GRCh38.p14\n#!genome-version GRCh38\n#!genebuild-last-updated 2023-03\n",
        ),
        {ENSEMBL_TRANSCRIPTS[t]: (ENSEMBL_GENES[t[0]], SYMBOLS[t[0]], BIOTYPES[t]) for t in LENGTHS},
        {},
    ),
    "gencode": (
        "chr1",
        gtf(
            "chr1", "HAVANA", gencode, "##description: evidence-based annotation\n##provider: GENCODE\n##format: gtf\n"
        ),
        {f"{ENSEMBL_TRANSCRIPTS[t]}.2": (f"{ENSEMBL_GENES[t[0]]}.5", SYMBOLS[t[0]], BIOTYPES[t]) for t in LENGTHS},
        {},
    ),
    "refseq": (
        "NC_000001.11",
        gtf("NC_000001.11", "BestRefSeq", refseq, "#gtf-version 2.2\n#!genome-build GRCh38.p14\n", refseq_gene),
        {REFSEQ_TRANSCRIPTS[t]: (SYMBOLS[t[0]], SYMBOLS[t[0]], "mRNA" if t in CDS else "lnc_RNA") for t in LENGTHS},
        {},
    ),
    "stringtie": (
        "chr1",
        gtf(
            "chr1",
            "StringTie",
            stringtie,
            "# stringtie -G genes.gtf -o out.gtf\n# StringTie version 2.2.1\n",
            features=["exon"],
        )
        + STRINGTIE_UNSTRANDED,
        {
            "ENST00000456328": ("STRG.1", None, None),
            "STRG.1.2": ("STRG.1", None, None),
            "STRG.2.1": ("STRG.2", None, None),
            "STRG.3.1": ("STRG.3", None, None),
        },
        {"STRG.9.1": "unknown_strand"},
    ),
    "yeast": (
        "I",
        gtf("I", "sgd", yeast),
        {f"{YEAST_GENES[t[0]]}_mRNA{t[1]}": (YEAST_GENES[t[0]], None, BIOTYPES[t]) for t in LENGTHS},
        {},
    ),
}


def validated(tmp_path, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    contig, text, _, _ = SOURCES[name]
    rng = random.Random(0)
    seq = "".join(rng.choice("ACGT") for _ in range(CONTIG_LENGTH))
    (tmp_path / f"{name}.gtf").write_text(text)
    (tmp_path / "genome.fa").write_text(
        f">{contig} dna:chromosome\n" + "".join(seq[i : i + 60] + "\n" for i in range(0, CONTIG_LENGTH, 60))
    )
    ann = Annotation(
        name=name, format="gtf_genome_fasta", gtf=f"{name}.gtf", genome="genome.fa", species="s", assembly="a"
    )
    paths = Paths.under(tmp_path / "out", data_dir=tmp_path)
    stage.run("validate", make_config([ann]), paths)
    transcripts = pyarrow.parquet.read_table(paths.transcripts).to_pandas().set_index("transcript_id")
    return transcripts, pd.read_csv(paths.quarantine, sep="\t", dtype=str)


@pytest.mark.parametrize("name", SOURCES)
def test_downloaded_gtf_validates_with_every_transcript_accounted_for(tmp_path, name):
    _, text, expected, quarantined = SOURCES[name]
    transcripts, quarantine = validated(tmp_path, name)
    assert dict(zip(quarantine["record"], quarantine["rule"], strict=True)) == quarantined
    assert sorted(transcripts.index) == sorted(expected)
    in_gtf = {line.split('transcript_id "')[1].split('"')[0] for line in text.splitlines() if "\texon\t" in line}
    assert in_gtf == set(transcripts.index) | set(quarantine["record"])  # none lost
    for tid, (gene_id, gene_name, biotype) in expected.items():
        row = transcripts.loc[tid]
        found = tuple(None if pd.isna(v) else v for v in (row.gene_id, row.gene_name, row.biotype))
        assert found == (gene_id, gene_name, biotype), tid


@pytest.mark.parametrize("name", SOURCES)
def test_structure_and_cds_do_not_depend_on_the_source(tmp_path, name):
    transcripts, _ = validated(tmp_path, name)
    ours = dict(zip(SOURCES[name][2], LENGTHS, strict=True))  # the samples list transcripts in STRUCTURE order
    for tid, generic in ours.items():
        row = transcripts.loc[tid]
        assert row.length == LENGTHS[generic], tid
        cds = (row.cds_start, row.cds_end) if pd.notna(row.cds_start) else None
        assert cds == (None if name == "stringtie" else CDS.get(generic)), tid  # StringTie writes no CDS
