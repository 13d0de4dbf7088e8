"""The ``validate`` stage: annotation files -> one transcripts table + a quarantine report.

Each annotation set of params.yaml is read by :func:`isoclr.ingest.read_annotation`, which
quarantines every record that breaks a rule (:mod:`isoclr.ingest.rules`) with the file, record,
rule and a detail. The run stops (:class:`~isoclr.ingest.ValidationError`) only when the output
would be wrong: too few usable transcripts, or so large a quarantined share that the input is
probably the wrong file. Transcript ids must be unique across sets too: the first set keeps one.

Writes ``paths.quarantine`` (TSV, header even if empty) and ``paths.validate_summary`` (JSON)
before deciding; ``paths.transcripts`` (parquet, :data:`isoclr.schemas.TRANSCRIPTS_ARROW`) only
when the run passes, and a stale one is removed when it does not.
"""

from __future__ import annotations

import gc
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pandera.errors
import pyarrow
import pyarrow.parquet

from isoclr.artifacts import Paths
from isoclr.atomic import write_atomic, write_atomic_checked
from isoclr.config import Annotation, Config
from isoclr.ingest import ValidationError, read_annotation
from isoclr.metrics import StageRun
from isoclr.schemas import DROPPED, KEPT_WITHOUT_CDS, QUARANTINE, TRANSCRIPTS, TRANSCRIPTS_ARROW

# Outputs worth keeping when the stage stops on a limit: the report says why (for the stage runner to move into
# place on a ValidationError; the transcripts table is then removed, so no later stage reads a stale one).
KEPT_ON_FAILURE = ("quarantine", "validate_summary")
# How many rules an error message lists.
TOP_RULES = 5
# lz4 for every column: at GENCODE scale it writes in ~1.0 s against 1.4 s for zstd level 1 and reads back
# as fast, at ~1.7x zstd's size (~130 MB). Uncompressed sequences would write in ~0.5 s, but the file (a DVC
# output, cached with every version) would be ~0.5 GB. A dictionary is no use on sequences (all distinct)
# and costs a failed attempt per page. Row groups of 64k transcripts are read in parallel: encode reads
# the GENCODE-scale table ~2.5x faster than from one group.
PARQUET_WRITE = {
    "compression": "lz4",
    "use_dictionary": [name for name in TRANSCRIPTS_ARROW.names if name != "seq"],
    "row_group_size": 1 << 16,
}


@dataclass(frozen=True)
class ValidateResult:
    n_transcripts: int
    n_quarantined: int
    by_rule: dict[str, int]

    def to_dict(self) -> dict:
        return asdict(self)

    def record(self, meter: StageRun) -> None:
        meter.inc("isoclr_records_validated_total", self.n_transcripts)
        for rule, count in self.by_rule.items():
            meter.inc("isoclr_records_quarantined_total", count, rule=rule)

    def summary(self) -> str:
        lines = [f"{self.n_transcripts} transcripts; {self.n_quarantined} quarantined"]
        lines += [f"  {rule}: {count}" for rule, count in sorted(self.by_rule.items())]
        return "\n".join(lines)


def run(cfg: Config, paths: Paths) -> ValidateResult:
    """Read every annotation set (under ``paths.data_dir``, else ``data.dir``), quarantine bad records, write the
    transcripts table, the quarantine report and the summary."""
    data_root = Path(paths.data_dir if paths.data_dir is not None else cfg.data.dir)
    with _gc_paused():
        return _validate(cfg, data_root, Path(paths.transcripts), Path(paths.quarantine), Path(paths.validate_summary))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the tables are built: the passes it makes over the millions of
    objects a GENCODE-scale run holds (exon lists, strings) cost ~0.4 s, and these tables make no cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _top_rules(quarantine: pd.DataFrame) -> str:
    counts = Counter(quarantine["rule"])
    return ", ".join(f"{rule} ({n})" for rule, n in counts.most_common(TOP_RULES)) or "none"


def _files(ann: Annotation, data_root: Path) -> list[str]:
    return [str(data_root / f) for f in ann.files()]


@contextmanager
def _schema_failures(schema, what: str) -> Iterator[None]:
    """pandera's SchemaErrors inside as a ValidationError naming ``what`` and the first failures."""
    try:
        yield
    except pandera.errors.SchemaErrors as err:
        cases = err.failure_cases[["column", "check", "failure_case"]].head(10).to_string(index=False)
        raise ValidationError(
            f"{what} fails schema {schema.name!r} ({len(err.failure_cases)} failures):\n{cases}"
        ) from err


def _check_schema(schema, table: pd.DataFrame, what: str) -> pd.DataFrame:
    with _schema_failures(schema, what):
        return schema.validate(table, lazy=True)


def _validate(
    cfg: Config, data_root: Path, transcripts_out: Path, quarantine_out: Path, summary_out: Path
) -> ValidateResult:
    limits = cfg.validate_
    tables, quarantines, per_annotation = [], [], {}
    for ann in cfg.data.annotations:
        transcripts, quarantine = read_annotation(ann, data_root, limits.max_length)
        tables.append(transcripts)
        quarantines.append((ann, quarantine))

    # Ids must be unique across sets too: the first set keeps the id.
    combined = pd.concat(tables, ignore_index=True)
    dup = combined["transcript_id"].duplicated(keep="first")
    first_set = combined.drop_duplicates("transcript_id").set_index("transcript_id")["annotation"]
    anns = {a.name: a for a in cfg.data.annotations}
    for ann, quarantine in quarantines:
        later = combined[dup & (combined["annotation"] == ann.name)]
        cross = pd.DataFrame(
            {
                "file": str(data_root / (ann.fasta or ann.gtf or ann.table)),
                "record": later["transcript_id"],
                "rule": "duplicate_id",
                "detail": [
                    f"id already read from annotation {first_set[t]!r}; the first is kept"
                    for t in later["transcript_id"]
                ],
                "action": DROPPED,
            }
        )
        quarantine = pd.concat([quarantine, cross], ignore_index=True) if len(cross) else quarantine
        n_kept = int(((combined["annotation"] == ann.name) & ~dup).sum())
        n_dropped = int((quarantine["action"] == DROPPED).sum())
        per_annotation[ann.name] = {
            "files": _files(ann, data_root),
            "n_transcripts": n_kept,
            "n_dropped": n_dropped,
            "n_kept_without_cds": int((quarantine["action"] == KEPT_WITHOUT_CDS).sum()),
            # Where the kept transcripts' CDS came from (annotated / inferred, isoclr.ingest.orf / none).
            "cds_source": dict(
                Counter(combined.loc[(combined["annotation"] == ann.name) & ~dup, "cds_source"]).most_common()
            ),
            "by_rule": dict(Counter(quarantine["rule"]).most_common()),
            "_quarantine": quarantine,
        }
    combined = combined[~dup].reset_index(drop=True)
    all_quarantine = pd.concat([p.pop("_quarantine") for p in per_annotation.values()], ignore_index=True)
    all_quarantine = _check_schema(QUARANTINE, all_quarantine.astype(str), "quarantine report")

    by_rule = dict(Counter(all_quarantine["rule"]).most_common())
    result = ValidateResult(n_transcripts=len(combined), n_quarantined=len(all_quarantine), by_rule=by_rule)
    write_atomic(quarantine_out, lambda p: all_quarantine.to_csv(p, sep="\t", index=False))
    summary = {
        **result.to_dict(),
        "by_action": dict(Counter(all_quarantine["action"]).most_common()),
        "max_length": limits.max_length,
        "by_annotation": per_annotation,
    }
    write_atomic(summary_out, lambda p: p.write_text(json.dumps(summary, indent=2) + "\n"))

    try:
        _check_limits(result, per_annotation, anns, all_quarantine, cfg, quarantine_out)
        # The table is written while the schema checks it (~0.5 s each at GENCODE scale), and only a checked one
        # is moved into place. Coerced to the schema's dtypes first, the frame written is the frame checked
        # (the pandas dtypes recorded in the file included).
        with _schema_failures(TRANSCRIPTS, "transcripts table"):
            combined = TRANSCRIPTS.coerce_dtype(combined)
        table = pyarrow.Table.from_pandas(combined, schema=TRANSCRIPTS_ARROW, preserve_index=False)
        write_atomic_checked(
            transcripts_out,
            lambda p: pyarrow.parquet.write_table(table, p, **PARQUET_WRITE),
            lambda: _check_schema(TRANSCRIPTS, combined, "transcripts table"),
        )
    except ValidationError:
        transcripts_out.unlink(missing_ok=True)
        raise
    return result


def _check_limits(result, per_annotation, anns, quarantine, cfg: Config, quarantine_out: Path) -> None:
    limits = cfg.validate_
    if result.n_transcripts < limits.min_transcripts:
        files = [f for p in per_annotation.values() for f in p["files"]]
        raise ValidationError(
            f"validate: only {result.n_transcripts} usable transcripts from {', '.join(files)} "
            f"(validate.min_transcripts = {limits.min_transcripts}); {result.n_quarantined} quarantined, "
            f"top rules: {_top_rules(quarantine)}. See {quarantine_out}; fix the input files or the "
            "annotation formats in params.yaml."
        )
    for name, stats in per_annotation.items():
        total = stats["n_transcripts"] + stats["n_dropped"]
        share = stats["n_dropped"] / total if total else 0.0
        if share > limits.max_quarantine_fraction:
            mine = quarantine[quarantine["file"].isin(stats["files"]) & (quarantine["action"] == DROPPED)]
            raise ValidationError(
                f"validate: annotation {name!r} ({', '.join(stats['files'])}): {stats['n_dropped']} of {total} "
                f"records ({share:.1%}) quarantined and dropped, above validate.max_quarantine_fraction = "
                f"{limits.max_quarantine_fraction}; top rules: {_top_rules(mine)}. See {quarantine_out}: the input "
                f"is probably the wrong file or format (format: {anns[name].format}); raise the limit in params.yaml "
                "only if these losses are expected."
            )
