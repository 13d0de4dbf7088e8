"""Generated annotation of realistic shape: a GTF, a genome FASTA and paralog pairs, any size, seeded.

For benchmarks and tests of ingest at GENCODE scale without shipping GBs. Genes
have 1-20 isoforms (geometric), exon counts and lengths drawn from log-normals
shaped like GENCODE (short internal exons, longer first and last exons), introns
with GT...AG ends, and about half the genes coding: an ATG in the first exon and
a stop codon in the last, in frame across every coding isoform (only
frame-preserving internal exons are skipped). Paralog families copy a founder
gene's exon model and sequence with a set divergence and are written as a
paralog-pairs CSV keyed by gene symbol (the shape of
``data/hgnc_family_paralog_pairs.csv``). With :class:`Plant`, function is
planted by family as in ``tests/model/test_mechanism.py``: each family (a
paralog family, or a gene of its own) carries a random subset of a small motif
vocabulary, at the same exon positions in every member, and its label
(``function_labels.csv``, by gene id) is a fixed linear function of the motifs
carried plus noise: what isoforms and paralogs share, and a probe should
recover from a pretrained encoder at any scale. GTF lines follow GENCODE: gene,
transcript, exon, CDS (phase set, stop codon excluded), start_codon,
stop_codon, UTR, in transcript order.

:func:`synth` can also return the expected transcripts (sequence, CDS, exon
ends) so tests compare ingest against a known answer.
"""

from __future__ import annotations

import gzip
import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from isoclr import alphabet
from isoclr.alphabet import CODON

BASES = np.frombuffer(alphabet.BASES.encode(), dtype=np.uint8)
# Complement keeping case (a soft-masked gene placed on the minus strand stays soft-masked).
_COMPLEMENT = np.frombuffer(alphabet.COMPLEMENT, dtype=np.uint8)
_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[ord("A") : ord("Z") + 1] += ord("a") - ord("A")
START_CODON = alphabet.START_CODON.encode()
STOP_CODONS = tuple(codon.encode() for codon in alphabet.STOP_CODONS)
DONOR, ACCEPTOR = b"GT", b"AG"
FASTA_LINE = 60
SOURCE = "SYNTH"
PARALOGS, LABELS = "paralog_pairs.csv", "function_labels.csv"
SOFT_MASK_WINDOW = 150  # nt lower-cased in a soft-masked gene (a repeat inside it)


@dataclass(frozen=True)
class Shape:
    """Distribution parameters; defaults give GENCODE-like shape (medians in nt)."""

    max_isoforms: int = 20
    isoform_p: float = 0.3  # geometric: mean ~3.3 isoforms per gene, like GENCODE's 250k / 62k
    single_exon_share: float = 0.12
    coding_share: float = 0.45
    gene_exons_median: float = 9.0
    gene_exons_sigma: float = 0.6
    max_gene_exons: int = 60
    first_exon_median: float = 180.0
    internal_exon_median: float = 125.0
    last_exon_median: float = 800.0
    exon_sigma: float = 0.6
    min_exon: int = 30
    max_exon: int = 8000
    intron_median: float = 400.0
    intron_sigma: float = 1.0
    min_intron: int = 60
    max_intron: int = 20000
    intergenic_median: float = 2000.0
    skip_prob: float = 0.3  # each skippable internal exon left out of an isoform
    fragment_share: float = 0.3  # non-coding isoforms that are 2-4 exon windows (retained intron, processed transcript)
    paralog_share: float = 0.15  # genes that found or join a paralog family
    max_family: int = 6
    paralog_divergence: float = 0.1  # substitution rate of a paralog copy
    soft_mask_share: float = 0.2  # genes with a lower-case (soft-masked) window
    telomere_n: int = 10000  # N run at each contig start


@dataclass(frozen=True)
class Plant:
    """Function planted by family (see the module docstring); defaults as in the mechanism test."""

    motifs: int = 6
    motif_length: int = 8
    share: float = 0.5  # each motif is in a family with this probability
    copies: int = 3  # copies of each carried motif per gene, at random exon positions of the full-length isoform
    noise: float = 0.1  # label noise, in units of the label's spread


@dataclass
class _Gene:
    gene_id: str
    name: str
    biotype: str
    block: np.ndarray  # gene sequence, transcript orientation (uint8, upper case)
    exons: list[tuple[int, int]]  # [start, end) in block coordinates, 5'->3'
    cds: tuple[int, int] | None  # block coordinates: ATG start, stop codon start
    isoforms: list[tuple[list[int], str]] = field(default_factory=list)  # exon indices, transcript_type


@dataclass(frozen=True)
class SynthResult:
    gtf: Path
    genome: Path
    paralogs: Path
    n_genes: int
    n_transcripts: int
    n_gtf_rows: int
    genome_length: int
    truth: pd.DataFrame | None  # transcript_id, gene_id, gene_name, seq, cds_start, cds_end, exon_ends, strand
    labels: Path | None = None  # function_labels.csv (gene_id, gene_name, family, label) with a Plant


def _lognormal(rng, median: float, sigma: float, low: int, high: int, size=None) -> np.ndarray:
    return np.clip(np.rint(rng.lognormal(np.log(median), sigma, size)), low, high).astype(np.int64)


def _random_bases(rng, n: int) -> np.ndarray:
    return BASES[rng.integers(0, len(BASES), n)]


def _gene_model(rng, shape: Shape, gene_id: str, name: str) -> _Gene:
    """Exons, introns, sequence and CDS of a new gene (transcript orientation)."""
    single = rng.random() < shape.single_exon_share
    n_exons = (
        1 if single else int(_lognormal(rng, shape.gene_exons_median, shape.gene_exons_sigma, 2, shape.max_gene_exons))
    )
    lengths = _lognormal(rng, shape.internal_exon_median, shape.exon_sigma, shape.min_exon, shape.max_exon, n_exons)
    lengths[0] = _lognormal(rng, shape.first_exon_median, shape.exon_sigma, shape.min_exon, shape.max_exon)
    lengths[-1] = _lognormal(rng, shape.last_exon_median, shape.exon_sigma, shape.min_exon, shape.max_exon)
    coding = rng.random() < shape.coding_share
    if coding and n_exons > 2:
        # About half the internal exons are frame-preserving, so coding isoforms may skip them.
        symmetric = rng.random(n_exons - 2) < 0.5
        lengths[1:-1][symmetric] -= lengths[1:-1][symmetric] % CODON
    introns = _lognormal(rng, shape.intron_median, shape.intron_sigma, shape.min_intron, shape.max_intron, n_exons - 1)
    exons, pos = [], 0
    for i, n in enumerate(lengths):
        exons.append((pos, pos + int(n)))
        pos += int(n) + (int(introns[i]) if i < n_exons - 1 else 0)
    block = _random_bases(rng, pos)
    for (_, end), (start, _) in itertools.pairwise(exons):
        block[end : end + 2] = np.frombuffer(DONOR, np.uint8)
        block[start - 2 : start] = np.frombuffer(ACCEPTOR, np.uint8)
    gene = _Gene(gene_id, name, "lncRNA", block, exons, None)
    if coding:
        _add_cds(rng, gene)
    return gene


def _add_cds(rng, gene: _Gene) -> None:
    """ATG in the first exon, an in-frame stop codon inside the last exon; none when it does not fit."""
    (f0, f1), (l0, l1) = gene.exons[0], gene.exons[-1]
    if f1 - f0 < 2 * CODON or l1 - l0 < 2 * CODON:
        return
    tx_len = sum(e - s for s, e in gene.exons)
    last_start_tx = tx_len - (l1 - l0)
    start_tx = int(rng.integers(1, f1 - f0 - CODON + 1))
    # Stop codon start: in the last exon, in frame, leaving a 3' UTR of at least one codon.
    latest = tx_len - 2 * CODON
    stop_tx = latest - ((latest - start_tx) % CODON)
    earliest = max(last_start_tx, start_tx + 2 * CODON)
    if stop_tx < earliest:
        return
    stop_tx -= CODON * int(rng.integers(0, (stop_tx - earliest) // CODON + 1) * rng.random() ** 2)
    to_block = _tx_to_block(gene.exons)
    start_b, stop_b = to_block[start_tx], to_block[stop_tx]
    gene.block[start_b : start_b + CODON] = np.frombuffer(START_CODON, np.uint8)
    gene.block[stop_b : stop_b + CODON] = np.frombuffer(STOP_CODONS[int(rng.integers(0, len(STOP_CODONS)))], np.uint8)
    gene.cds = (start_b, stop_b)
    gene.biotype = "protein_coding"


def _tx_to_block(exons: list[tuple[int, int]]) -> np.ndarray:
    return np.concatenate([np.arange(s, e) for s, e in exons])


def _paralog(rng, shape: Shape, founder: _Gene, gene_id: str, name: str) -> _Gene:
    """A copy of the founder's exon model and sequence with point substitutions (splice sites and codons kept)."""
    block = founder.block.copy()
    hit = rng.random(len(block)) < shape.paralog_divergence
    block[hit] = _random_bases(rng, int(hit.sum()))
    keep = [(e, e + 2) for _, e in founder.exons[:-1]] + [(s - 2, s) for s, _ in founder.exons[1:]]
    if founder.cds:
        keep += [(founder.cds[0], founder.cds[0] + CODON), (founder.cds[1], founder.cds[1] + CODON)]
    for a, b in keep:
        block[a:b] = founder.block[a:b]
    return _Gene(gene_id, name, founder.biotype, block, list(founder.exons), founder.cds)


def _isoforms(rng, shape: Shape, gene: _Gene) -> None:
    """1..max_isoforms distinct exon chains; coding ones keep the CDS exons and the frame."""
    n_exons = len(gene.exons)
    wanted = min(shape.max_isoforms, int(rng.geometric(shape.isoform_p)))
    chains: dict[tuple[int, ...], str] = {tuple(range(n_exons)): gene.biotype}
    for _ in range(4 * wanted):
        if len(chains) >= wanted:
            break
        if n_exons > 2 and rng.random() < shape.fragment_share:
            width = int(rng.integers(2, min(4, n_exons) + 1))
            first = int(rng.integers(0, n_exons - width + 1))
            chain = tuple(range(first, first + width))
            kind = "retained_intron" if gene.biotype == "protein_coding" else "lncRNA"
        else:
            internal = [
                i
                for i in range(1, n_exons - 1)
                if gene.cds is None or (gene.exons[i][1] - gene.exons[i][0]) % CODON == 0
            ]
            skipped = {i for i in internal if rng.random() < shape.skip_prob}
            chain = tuple(i for i in range(n_exons) if i not in skipped)
            kind = gene.biotype
        chains.setdefault(chain, kind)
    gene.isoforms = [(list(c), k) for c, k in chains.items()]


def _mature(gene: _Gene, chain: list[int]) -> tuple[np.ndarray, list[int], tuple[int, int] | None]:
    """Sequence, exon ends and CDS [start, end incl. stop) of one isoform in transcript coordinates."""
    pieces, ends, pos, cds = [], [], 0, [None, None]
    for i in chain:
        s, e = gene.exons[i]
        pieces.append(gene.block[s:e])
        if gene.cds:
            for k, b in enumerate(gene.cds):
                if s <= b < e:
                    cds[k] = pos + b - s
        pos += e - s
        ends.append(pos - 1)
    has_cds = cds[0] is not None and cds[1] is not None and cds[1] > cds[0]
    return np.concatenate(pieces), ends, (cds[0], cds[1] + CODON) if has_cds else None


def _attrs(gene: _Gene, tid: str | None = None, ttype: str | None = None, extra: str = "") -> str:
    text = f'gene_id "{gene.gene_id}"; '
    if tid:
        text += f'transcript_id "{tid}"; '
    text += f'gene_type "{gene.biotype}"; gene_name "{gene.name}"; '
    if tid:
        text += f'transcript_type "{ttype}"; transcript_name "{gene.name}-{tid[-3:]}"; '
    return text + extra + "level 2;"


def _gtf_lines(gene: _Gene, contig: str, offset: int, minus: bool, tids: list[str]) -> list[str]:
    """GENCODE-style lines of one placed gene; ``offset`` is the 0-based contig position of the block."""
    span = len(gene.block)
    strand = "-" if minus else "+"

    def genomic(a: int, b: int) -> tuple[int, int]:
        """Block [a, b) -> 1-based closed genomic start, end."""
        return (offset + span - b + 1, offset + span - a) if minus else (offset + a + 1, offset + b)

    def line(feature: str, a: int, b: int, attrs: str, frame: str = ".") -> str:
        g0, g1 = genomic(a, b)
        return f"{contig}\t{SOURCE}\t{feature}\t{g0}\t{g1}\t.\t{strand}\t{frame}\t{attrs}"

    first = min(gene.exons[i][0] for c, _ in gene.isoforms for i in c)
    last = max(gene.exons[i][1] for c, _ in gene.isoforms for i in c)
    out = [line("gene", first, last, _attrs(gene))]
    for tid, (chain, ttype) in zip(tids, gene.isoforms, strict=True):
        tx_attrs = _attrs(gene, tid, ttype)
        exons = [gene.exons[i] for i in chain]
        out.append(line("transcript", exons[0][0], exons[-1][1], tx_attrs))
        coding = ttype == "protein_coding" and gene.cds is not None
        done = 0  # CDS bases written so far (phase of the next piece)
        for number, (s, e) in enumerate(exons, start=1):
            attrs = _attrs(gene, tid, ttype, f"exon_number {number}; ")
            out.append(line("exon", s, e, attrs))
            if not coding:
                continue
            c0, c1 = max(s, gene.cds[0]), min(e, gene.cds[1])  # CDS without the stop codon
            if c0 < c1:
                out.append(line("CDS", c0, c1, attrs, str((CODON - done % CODON) % CODON)))
                done += c1 - c0
            if s <= gene.cds[0] < e:
                out.append(line("start_codon", gene.cds[0], gene.cds[0] + CODON, attrs, "0"))
            if s <= gene.cds[1] < e:
                out.append(line("stop_codon", gene.cds[1], gene.cds[1] + CODON, attrs, "0"))
            for u0, u1 in ((s, min(e, gene.cds[0])), (max(s, gene.cds[1] + CODON), e)):
                if u0 < u1:
                    out.append(line("UTR", u0, u1, attrs))
    return out


def _plant(rng, plant: Plant, genes: list[_Gene], families: list[list[int]]) -> pd.DataFrame:
    """Write each family's motifs into its members' blocks (same positions: paralogs share the exon model).

    Motifs go inside exons of the full-length isoform, clear of the start and stop codons; returns
    gene_id, gene_name, family and label per gene.
    """
    motifs = BASES[rng.integers(0, len(BASES), (plant.motifs, plant.motif_length))]
    weights = rng.normal(size=plant.motifs)
    family_of = {g: k for k, members in enumerate(families) for g in members}
    groups = list(families) + [[g] for g in range(len(genes)) if g not in family_of]
    rows = []
    for members in groups:
        founder = genes[members[0]]
        carried = np.flatnonzero(rng.random(plant.motifs) < plant.share)
        label = float(weights[carried].sum())
        spots = _tx_to_block(founder.exons)
        reserved = {c + k for c in founder.cds or () for k in range(-plant.motif_length + 1, CODON)}
        for m in carried:
            for _ in range(plant.copies):
                at = int(rng.integers(0, max(1, len(spots) - plant.motif_length + 1)))
                block_at = spots[at : at + plant.motif_length]
                # Inside one exon (contiguous in the block) and clear of the codons; otherwise skipped.
                if len(block_at) < plant.motif_length or block_at[-1] - block_at[0] != plant.motif_length - 1:
                    continue
                if block_at[0] in reserved:
                    continue
                for g in members:
                    genes[g].block[block_at] = motifs[m]
        rows += [(genes[g].gene_id, genes[g].name, genes[members[0]].gene_id, label) for g in members]
    labels = pd.DataFrame(rows, columns=["gene_id", "gene_name", "family", "label"])
    labels["label"] += plant.noise * labels["label"].std() * rng.normal(size=len(labels))
    return labels


def _write_fasta(path: Path, contigs: dict[str, np.ndarray]) -> None:
    """FASTA with 60-nt lines and its samtools-style .fai beside it."""
    fai, offset = [], 0
    with path.open("wb") as fh:
        for name, seq in contigs.items():
            header = f">{name}\n".encode()
            fh.write(header)
            offset += len(header)
            full = len(seq) // FASTA_LINE * FASTA_LINE
            lines = np.hstack(
                [seq[:full].reshape(-1, FASTA_LINE), np.full((full // FASTA_LINE, 1), ord("\n"), np.uint8)]
            )
            body = lines.tobytes() + (seq[full:].tobytes() + b"\n" if len(seq) > full else b"")
            fh.write(body)
            fai.append(f"{name}\t{len(seq)}\t{offset}\t{FASTA_LINE}\t{FASTA_LINE + 1}\n")
            offset += len(body)
    Path(f"{path}.fai").write_text("".join(fai))


def generate(rng, shape: Shape, n_transcripts: int) -> tuple[list[_Gene], list[list[int]]]:
    """Genes (with isoforms) until at least ``n_transcripts`` transcripts, and the paralog families (gene indices)."""
    genes: list[_Gene] = []
    families: list[list[int]] = []
    n_tx = 0
    while n_tx < n_transcripts:
        k = len(genes) + 1
        gene_id = f"SYNG{k:011d}.1"
        if genes and rng.random() < shape.paralog_share:
            # Join a family of a coding gene, or found one.
            founder_index = int(rng.integers(0, len(genes)))
            family = next((f for f in families if founder_index in f), None)
            if family is None:
                family = [founder_index]
                families.append(family)
                genes[founder_index].name = f"SYNF{len(families)}A"
            if len(family) >= shape.max_family:
                gene = _gene_model(rng, shape, gene_id, f"SYN{k}")
            else:
                name = f"SYNF{families.index(family) + 1}{chr(ord('A') + len(family))}"
                gene = _paralog(rng, shape, genes[family[0]], gene_id, name)
                family.append(len(genes))
        else:
            gene = _gene_model(rng, shape, gene_id, f"SYN{k}")
        _isoforms(rng, shape, gene)
        genes.append(gene)
        n_tx += len(gene.isoforms)
    return genes, families


def paralog_pairs(genes: list[_Gene], families: list[list[int]], divergence: float) -> pd.DataFrame:
    """gene_A, gene_B (symbols), homology_type, identity_pct: every pair within each family."""
    pairs = [
        (genes[a].name, genes[b].name, "gene_family", round(100 * (1 - divergence), 1))
        for family in families
        for a, b in itertools.combinations(family, 2)
    ]
    return pd.DataFrame(pairs, columns=["gene_A", "gene_B", "homology_type", "identity_pct"])


def write_world(
    out_dir: Path,
    genes: list[_Gene],
    rng,
    seed: int,
    n_contigs: int = 4,
    shape: Shape = Shape(),
    gzip_gtf: bool = False,
    bgzip_genome: bool = False,
    truth: bool = False,
    transcript_prefix: str = "SYNT",
) -> SynthResult:
    """Place ``genes`` on contigs (intergenic gaps, strands, soft-masking drawn from ``rng``) and write the GTF
    and genome FASTA (+ .fai); with ``truth``, the expected transcripts too. Paralogs are left to the caller."""
    contig_names = [f"chr{i + 1}" for i in range(n_contigs)]
    pieces: dict[str, list[np.ndarray]] = {c: [np.full(shape.telomere_n, ord("N"), np.uint8)] for c in contig_names}
    cursor = dict.fromkeys(contig_names, shape.telomere_n)
    gtf_lines: list[str] = []
    truth_rows = []
    tx_counter = itertools.count(1)
    for gene_no, gene in enumerate(genes):
        contig = contig_names[gene_no % n_contigs]
        gap = int(_lognormal(rng, shape.intergenic_median, 1.0, 100, 100000))
        pieces[contig].append(_LOWER[_random_bases(rng, gap)])  # intergenic, soft-masked
        cursor[contig] += gap
        minus = bool(rng.random() < 0.5)
        block = gene.block.copy()
        if rng.random() < shape.soft_mask_share:
            a = int(rng.integers(0, len(block)))
            block[a : a + SOFT_MASK_WINDOW] = _LOWER[block[a : a + SOFT_MASK_WINDOW]]
        placed = _COMPLEMENT[block[::-1]] if minus else block
        tids = [f"{transcript_prefix}{next(tx_counter):011d}.1" for _ in gene.isoforms]
        gtf_lines += _gtf_lines(gene, contig, cursor[contig], minus, tids)
        pieces[contig].append(placed)
        cursor[contig] += len(placed)
        if truth:
            for tid, (chain, ttype) in zip(tids, gene.isoforms, strict=True):
                seq, ends, cds = _mature(gene, chain)
                cds = cds if ttype == "protein_coding" else None
                truth_rows.append(
                    (
                        tid,
                        gene.gene_id,
                        gene.name,
                        seq.tobytes().decode(),
                        *(cds or (None, None)),
                        ends,
                        "-+"[not minus],
                    )
                )
    contigs = {
        c: np.concatenate(p + [_LOWER[_random_bases(rng, int(shape.intergenic_median))]]) for c, p in pieces.items()
    }

    genome = out_dir / ("genome.fa.gz" if bgzip_genome else "genome.fa")
    if bgzip_genome:
        from Bio import bgzf

        plain = out_dir / ".genome.fa"
        _write_fasta(plain, contigs)
        with plain.open("rb") as src, bgzf.BgzfWriter(str(genome), "wb") as dst:
            dst.write(src.read())
        plain.unlink()
        Path(f"{plain}.fai").unlink()
    else:
        _write_fasta(genome, contigs)
    gtf = out_dir / ("annotation.gtf.gz" if gzip_gtf else "annotation.gtf")
    text = (f"##description: isoclr synth seed={seed}\n" + "\n".join(gtf_lines) + "\n").encode()
    gtf.write_bytes(gzip.compress(text, compresslevel=1, mtime=0) if gzip_gtf else text)

    table = None
    if truth:
        table = pd.DataFrame(
            truth_rows,
            columns=["transcript_id", "gene_id", "gene_name", "seq", "cds_start", "cds_end", "exon_ends", "strand"],
        ).astype({"cds_start": "Int64", "cds_end": "Int64"})
    n_tx, length = sum(len(g.isoforms) for g in genes), sum(len(c) for c in contigs.values())
    return SynthResult(gtf, genome, out_dir / PARALOGS, len(genes), n_tx, len(gtf_lines), length, table)


def synth(
    out_dir: Path,
    n_transcripts: int,
    seed: int = 0,
    n_contigs: int = 4,
    shape: Shape = Shape(),
    gzip_gtf: bool = False,
    bgzip_genome: bool = False,
    truth: bool = False,
    plant: Plant | None = None,
) -> SynthResult:
    """Write ``annotation.gtf[.gz]``, ``genome.fa[.gz]`` (+ index) and ``paralog_pairs.csv`` under ``out_dir``.

    Genes are generated until at least ``n_transcripts`` transcripts exist.
    Same seed and arguments -> byte-identical files.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    genes, families = generate(rng, shape, n_transcripts)
    labels = None
    if plant is not None:
        # Its own generator, so a planted world has the gene models and layout of the unplanted one.
        labels = _plant(np.random.default_rng([seed, 1]), plant, genes, families)

    written = write_world(out_dir, genes, rng, seed, n_contigs, shape, gzip_gtf, bgzip_genome, truth)
    paralog_pairs(genes, families, shape.paralog_divergence).to_csv(written.paralogs, index=False)
    if labels is None:
        return written
    labels.to_csv(out_dir / LABELS, index=False)
    return replace(written, labels=out_dir / LABELS)
