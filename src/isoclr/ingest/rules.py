"""The quarantine rules of the validate stage, and the triage that applies them in order.

Every record that breaks a rule goes to the quarantine report with the file, the record
(transcript id or GTF line), the rule and a detail, so nothing is lost silently. A rule either
drops the record (``dropped``) or keeps it without its CDS (``kept_without_cds``: the CDS track
stays empty). Each format's rules are one function here, in the order they apply: a record
leaves at the first rule that drops it.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from isoclr.alphabet import CODON, DNA, bad_characters, dna_only
from isoclr.coordinates import cds_inside
from isoclr.schemas import DROPPED, KEPT_WITHOUT_CDS, QUARANTINE

QUARANTINE_COLUMNS = list(QUARANTINE.columns)
GTF_STRANDS = ("+", "-")


def empty_quarantine() -> pd.DataFrame:
    """A quarantine report with no rows (its columns all strings)."""
    return pd.DataFrame({c: pd.Series(dtype=str) for c in QUARANTINE_COLUMNS})


class Triage:
    """Apply rules in order; a record leaves at the first rule that drops it.

    ``alive`` holds the records still in; ``quarantined`` the report rows. Each
    rule's mask and detail see only the records still alive, so a later rule
    can rely on the earlier ones (e.g. lengths only after the header parsed).
    """

    def __init__(self, table: pd.DataFrame):
        self.alive = table
        self.quarantined: list[pd.DataFrame] = []

    def _report(self, hit: pd.DataFrame, file: str, rule: str, detail: Callable[[pd.DataFrame], object], action: str):
        self.quarantined.append(
            pd.DataFrame({"file": file, "record": hit["record"], "rule": rule, "detail": detail(hit), "action": action})
        )

    def drop(
        self, rule: str, file: str, mask: Callable[[pd.DataFrame], pd.Series], detail: Callable[[pd.DataFrame], object]
    ):
        if self.alive.empty:
            return
        hit_mask = mask(self.alive).fillna(False).astype(bool)
        if hit_mask.any():
            self._report(self.alive[hit_mask], file, rule, detail, DROPPED)
            self.alive = self.alive[~hit_mask]

    def strip_cds(
        self, rule: str, file: str, mask: Callable[[pd.DataFrame], pd.Series], detail: Callable[[pd.DataFrame], object]
    ):
        """Keep the record but forget its CDS (the CDS track stays empty)."""
        if self.alive.empty:
            return
        hit_mask = mask(self.alive).fillna(False).astype(bool)
        if hit_mask.any():
            self._report(self.alive[hit_mask], file, rule, detail, KEPT_WITHOUT_CDS)
            self.alive = self.alive.copy()
            self.alive.loc[hit_mask, ["cds_start", "cds_end"]] = pd.NA

    def quarantine(self) -> pd.DataFrame:
        frames = [f for f in self.quarantined if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else empty_quarantine()


def dedupe_fasta(records: pd.DataFrame, fasta: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the first record of an id; later ones are quarantined (duplicate_id)."""
    dup = records["transcript_id"].duplicated(keep="first")
    first = records.drop_duplicates("transcript_id").set_index("transcript_id")["record_no"]
    later = records[dup]
    quarantine = pd.DataFrame(
        {
            "file": fasta,
            "record": later["record"],
            "rule": "duplicate_id",
            "detail": [
                f"record {n} repeats the id of record {first[t]}; the first is kept"
                for t, n in zip(later["transcript_id"], later["record_no"], strict=True)
            ],
            "action": DROPPED,
        }
    )
    return records[~dup], quarantine


# --------------------------------------------------------------------------- rule sets


def sequence_rules(triage: Triage, fasta: str) -> None:
    """Rules on the FASTA sequence itself (both formats)."""
    triage.drop("empty_sequence", fasta, lambda d: d["seq"].str.len() == 0, lambda d: "record has no sequence")
    triage.drop(
        "invalid_characters",
        fasta,
        lambda d: ~dna_only(d["seq"]),
        lambda d: [f"characters outside {DNA}/U: {bad_characters(s)!r}" for s in d["seq"]],
    )


def too_long_rule(triage: Triage, fasta: str, max_length: int) -> None:
    triage.drop(
        "too_long",
        fasta,
        lambda d: d["seq"].str.len() > max_length,
        lambda d: [f"length {n} > validate.max_length {max_length}" for n in d["seq"].str.len()],
    )


def cds_frame_rule(triage: Triage, file: str) -> None:
    triage.strip_cds(
        "cds_not_multiple_of_3",
        file,
        lambda d: d["cds_start"].notna() & ((d["cds_end"] - d["cds_start"]) % CODON != 0),
        lambda d: [
            f"CDS [{s}, {e}) is {e - s} nt, not a multiple of {CODON}"
            for s, e in zip(d["cds_start"], d["cds_end"], strict=True)
        ],
    )


def structure_rules(triage: Triage, gtf: str) -> None:
    """Rules on a transcript's GTF lines alone (both GTF formats)."""
    triage.drop(
        "missing_attribute",
        gtf,
        # A non-empty list or tuple (bool of each: .str.len() costs ~0.15 s at GENCODE scale).
        lambda d: d["gene_id_missing_lines"].notna() & d["gene_id_missing_lines"].astype(bool),
        lambda d: [
            f"gene_id missing on GTF line(s) {', '.join(map(str, lines[:5]))}" for lines in d["gene_id_missing_lines"]
        ],
    )
    triage.drop(
        "duplicate_id",
        gtf,
        lambda d: d["n_gene_ids"] > 1,
        lambda d: [f"transcript_id used by {n} different gene_id values in the GTF" for n in d["n_gene_ids"]],
    )
    triage.drop(
        "unknown_strand",
        gtf,
        lambda d: ~d["strands"].isin(GTF_STRANDS),
        lambda d: [f"strand {s!r}; need one of {'/'.join(GTF_STRANDS)} for all lines" for s in d["strands"]],
    )
    triage.drop(
        "invalid_coordinates",
        gtf,
        lambda d: d["bad_coordinates"],
        lambda d: "an exon has no start/end, end < start or start < 1",
    )
    triage.drop("overlapping_exons", gtf, lambda d: d["overlap"], lambda d: "two exons of the transcript overlap")


def gtf_cds_rules(triage: Triage, gtf: str) -> None:
    triage.strip_cds(
        "cds_outside_exons",
        gtf,
        lambda d: d["cds_problem"] == "outside",
        lambda d: "a CDS/stop_codon feature is not inside one exon of the transcript",
    )
    triage.strip_cds(
        "cds_not_contiguous",
        gtf,
        lambda d: d["cds_problem"] == "gap",
        lambda d: "CDS features skip exonic bases between CDS start and end",
    )
    cds_frame_rule(triage, gtf)


def gencode_rules(triage: Triage, fasta: str, max_length: int) -> None:
    """GENCODE transcript FASTA: header, sequence, length and the header's CDS."""
    triage.drop("malformed_header", fasta, lambda d: d["malformed"].notna(), lambda d: d["malformed"])
    sequence_rules(triage, fasta)
    triage.drop(
        "truncated_record",
        fasta,
        lambda d: d["header_length"] != d["seq"].str.len(),
        lambda d: [
            f"header says {h} nt, record has {n} nt"
            for h, n in zip(d["header_length"], d["seq"].str.len(), strict=True)
        ],
    )
    too_long_rule(triage, fasta, max_length)
    triage.strip_cds(
        "cds_outside_exons",
        fasta,
        lambda d: (
            d["cds_start"].notna()
            & ~cds_inside(d["cds_start"].astype("Int64"), d["cds_end"].astype("Int64"), d["seq"].str.len())
        ),
        lambda d: [
            f"header CDS [{s}, {e}) is not inside the {n}-nt transcript"
            for s, e, n in zip(d["cds_start"], d["cds_end"], d["seq"].str.len(), strict=True)
        ],
    )
    cds_frame_rule(triage, fasta)


def gtf_fasta_rules(triage: Triage, fasta: str, gtf: str, max_length: int) -> None:
    """GTF + transcript FASTA: both sides present, then sequence, structure, length and CDS.

    ``source`` says where a transcript id was found (pandas' merge indicator: left_only is FASTA only).
    """
    triage.drop(
        "missing_annotation",
        fasta,
        lambda d: d["source"] == "left_only",
        lambda d: f"no transcript with this id in {gtf}",
    )
    triage.drop(
        "missing_sequence",
        gtf,
        lambda d: d["source"] == "right_only",
        lambda d: f"no FASTA record with this id in {fasta}",
    )
    sequence_rules(triage, fasta)
    structure_rules(triage, gtf)
    triage.drop(
        "length_mismatch",
        gtf,
        lambda d: d["exon_total"] != d["seq"].str.len(),
        lambda d: [
            f"exons sum to {x} nt ({k} exons), FASTA record has {n} nt"
            for x, k, n in zip(d["exon_total"], d["n_exons"], d["seq"].str.len(), strict=True)
        ],
    )
    too_long_rule(triage, fasta, max_length)
    gtf_cds_rules(triage, gtf)


def genome_structure_rules(triage: Triage, gtf: str, genome_file: str, max_length: int) -> None:
    """GTF + genome, before any base is read: exons, one contig, inside it, not too long.

    ``absent_contig`` and ``outside`` are the first offending exon's contig and description, if any.
    """
    triage.drop("empty_sequence", gtf, lambda d: d["n_exons"] == 0, lambda d: "no exon lines for this transcript")
    triage.drop(
        "mixed_contigs",
        gtf,
        lambda d: d["contigs"].str.contains(",", regex=False),
        lambda d: [f"lines on several contigs: {c}" for c in d["contigs"]],
    )
    structure_rules(triage, gtf)
    triage.drop(
        "missing_sequence",
        gtf,
        lambda d: d["absent_contig"].notna(),
        lambda d: [f"contig {c!r} is not in {genome_file}" for c in d["absent_contig"]],
    )
    triage.drop("exon_outside_contig", gtf, lambda d: d["outside"].notna(), lambda d: list(d["outside"]))
    triage.drop(
        "too_long",
        gtf,
        lambda d: d["exon_total"] > max_length,
        lambda d: [f"length {n} > validate.max_length {max_length}" for n in d["exon_total"]],
    )


def genome_sequence_rules(triage: Triage, gtf: str, genome_file: str) -> None:
    """GTF + genome, on the spliced sequences (``invalid``: a byte outside the alphabet), then the CDS."""
    triage.drop(
        "invalid_characters",
        genome_file,
        lambda d: d["invalid"],
        lambda d: [f"characters outside {DNA}/U: {bad_characters(s)!r}" for s in d["seq"]],
    )
    gtf_cds_rules(triage, gtf)
