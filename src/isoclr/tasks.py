"""Label sets: from a label file (or the annotation) to the rows a probe embeds.

Each label set is declared in params.yaml (:class:`isoclr.config.ProbeTask`)
and turned into rows by :func:`task_table`: the target read and checked, the
ids joined to the annotation (or the sequence taken from the label file), and
each row given the group that keeps near-identical sequences on one side of a
split. The notes say what was dropped and why, which tracks the encoder saw and
how the rows are grouped, so the report can say it too.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from isoclr import go_terms, schemas
from isoclr.alphabet import DNA, normalise
from isoclr.config import ProbeTask
from isoclr.errors import IsoclrError, MissingInputError

# max_rows subsampling: fixed, so every model and every run probes the same rows.
SUBSAMPLE_SEED = 0
# How many unmatched / invalid ids an error message or the notes show.
SHOW_IDS = 5
# Ensembl ids: the version (".14") and the PAR_Y tag are not part of the identity.
_ENSEMBL_VERSION = re.compile(r"\.\d+(?:_PAR_Y)?$")
_TRACK_COLUMNS = ["cds_start", "cds_end", "exon_ends"]
GZIP_MAGIC = b"\x1f\x8b"
# Multilabel tables carry one 0/1 column per label, named with this prefix (a label may be called "group").
LABEL_PREFIX = "label:"


class LabelError(IsoclrError, ValueError):
    """A label set that cannot be probed as declared (a column missing, no usable row)."""


class LabelJoinError(LabelError):
    """A label file none of whose ids match the transcripts (or none of whose sequences are usable)."""


def unversioned_gene_id(ids: pd.Series) -> pd.Series:
    """``ENSG00000000003.14`` -> ``ENSG00000000003`` (ids without a version are left as they are)."""
    return ids.astype(str).str.replace(_ENSEMBL_VERSION, "", regex=True)


def table_compression(path: Path) -> str | None:
    """pandas' ``compression`` for a table file, told from its first bytes: "gzip" or None, whatever the name."""
    with Path(path).open("rb") as fh:
        return "gzip" if fh.read(2) == GZIP_MAGIC else None


def read_labels(task: ProbeTask, data_root: Path, transcripts: pd.DataFrame | None = None) -> pd.DataFrame:
    """The label table (the file, or the transcripts table for ``source: annotation``), columns checked."""
    if task.source == "annotation":
        labels, where = transcripts.copy(), "the transcripts table"
    else:
        path = Path(data_root) / task.file
        if not path.exists():
            raise MissingInputError(f"probe task {task.name!r}: label file {path} does not exist")
        try:
            # gzip told by its first bytes, not the name; bytes that are no UTF-8 become U+FFFD, so a row with one
            # is dropped and counted (unmatched, non-numeric) rather than the whole file refused. Without
            # index_col=False, extra fields on the first row make pandas read the first columns as the index:
            # every column shifts (ids read as targets), and a long row of separators builds an index of
            # thousands of levels (~20 s).
            labels = pd.read_csv(
                path,
                sep=task.sep,
                header=None if task.header else "infer",
                names=task.header,
                low_memory=False,
                compression=table_compression(path),
                encoding_errors="replace",
                index_col=False,  # a row with more fields than the header must not shift every column
            )
        except (ValueError, OSError, EOFError, zlib.error) as err:  # ParserError, EmptyDataError, BadGzipFile
            raise LabelError(
                f"{path}: probe task {task.name!r}: cannot be read as a table separated by {task.sep!r} ({err}); "
                "check the file is complete, and the task's sep and header in params.yaml"
            ) from err
        where = str(path)
    needed = [task.id_column, *([task.target] if task.target else []), *(task.labels or [])]
    if _group_column(task) is not None:
        needed.append(_group_column(task))
    missing = [c for c in needed if c not in labels.columns]
    if missing:
        raise LabelError(f"{where}: probe task {task.name!r} needs column(s) {missing}; it has {list(labels.columns)}")
    return labels


def _group_column(task: ProbeTask) -> str | None:
    """The label-file column that groups rows, or None for homology / prefix / random grouping."""
    if task.group_by in ("homology", "none") or _prefix_length(task) is not None:
        return None
    return task.group_by


def _prefix_length(task: ProbeTask) -> int | None:
    match = re.fullmatch(r"prefix(\d+)", task.group_by)
    return int(match.group(1)) if match else None


def task_table(
    task: ProbeTask,
    data_root: Path,
    transcripts: pd.DataFrame,
    groups: pd.DataFrame,
    sample_seed: int = SUBSAMPLE_SEED,
    go_dir: Path | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Rows to embed for one task, and notes on what was dropped and why (``go_dir``: the GO tables, for
    ``source: go``).

    Returns:
        table: columns ``id`` (the label id), ``seq``, ``target`` (float; 0/1 for
            classification; for multilabel the number of labels the row holds, the labels
            themselves in 0/1 columns ``label:<name>``, see :func:`targets`), ``group`` (str);
            for an annotation join also
            ``transcript_id``, ``gene_id`` and, unless ``tracks: sequence``,
            ``cds_start``, ``cds_end``, ``exon_ends`` of the transcript embedded.
        notes: ``n``, ``n_label_rows``, ``dropped_na``, ``dropped_non_numeric``,
            ``dropped_other_class``, ``dropped_duplicate_ids``, ``dropped_bad_sequence``,
            ``unmatched`` (+ examples), ``n_groups``, ``split_kind``, ``tracks``,
            ``cds_track_rows``, ``splice_track_rows``, ``subsampled_from``, ``n_positive``.
        Multilabel tasks add ``labels`` (names, in column order) and, from GO, ``terms``
        (go_id, term, level, n_genes, share genome-wide, n_rows here) and ``go`` (settings, join counts).
    Raises:
        LabelJoinError: fewer than ``task.min_rows`` label rows match (annotation join) or no sequence is usable.
    """
    if task.source == "go":
        return _finish(task, *_go_table(task, Path(go_dir) if go_dir else None, transcripts, groups), sample_seed)
    where = "the transcripts table" if task.source == "annotation" else str(Path(data_root) / task.file)
    labels = read_labels(task, data_root, transcripts)
    notes: dict = {
        "task": task.name,
        "type": task.type,
        "file": task.file or "(annotation)",
        "n_label_rows": len(labels),
    }
    if task.about:
        notes["about"] = task.about

    labels = labels[labels[task.id_column].notna()].copy()
    if task.type == "classification":
        labels = _binary_target(task, labels, notes)
    elif task.type == "multilabel":
        labels = _label_columns(task, labels, notes)
    else:
        target = pd.to_numeric(labels[task.target], errors="coerce")
        was_na = labels[task.target].isna()
        notes["dropped_na"] = int(was_na.sum()) + (notes["n_label_rows"] - len(was_na))
        notes["dropped_non_numeric"] = int((target.isna() & ~was_na).sum())
        labels = labels.assign(target=target.astype(float))[target.notna()]

    if task.join in ("gene_id", "transcript_id"):
        labels["id"] = unversioned_gene_id(labels[task.id_column])
    else:
        labels["id"] = labels[task.id_column].astype(str)
    duplicated = labels["id"].duplicated()
    notes["dropped_duplicate_ids"] = int(duplicated.sum())
    labels = labels[~duplicated]

    if task.join == "sequence":
        table = _join_sequence(task, where, labels, notes)
    else:
        table = _join_annotation(task, where, labels, transcripts, groups, notes)
    return _finish(task, table, notes, sample_seed)


def _finish(task: ProbeTask, table: pd.DataFrame, notes: dict, sample_seed: int) -> tuple[pd.DataFrame, dict]:
    """Row count checked, subsample, tracks, schema, and the counts every task's notes hold."""
    if len(table) < task.min_rows:
        raise LabelJoinError(
            f"probe task {task.name!r}: rule 'at least {task.min_rows} rows join' broken: {len(table)} joined; "
            f"first unmatched ids: {notes.get('unmatched_examples', [])}"
        )
    if task.max_rows is not None and len(table) > task.max_rows:
        notes["subsampled_from"] = len(table)
        table = table.sample(n=task.max_rows, random_state=sample_seed).sort_index()
    table = table.reset_index(drop=True)
    if task.tracks == "sequence":
        table = table.drop(columns=[c for c in _TRACK_COLUMNS if c in table.columns])
    table["group"] = table["group"].astype(str)
    table = schemas.PROBE_ROWS.validate(table)
    notes["n"] = len(table)
    if task.type == "classification":
        notes["n_positive"] = int(table["target"].sum())
    if task.type == "multilabel":
        notes["n_positive"] = {name: int(table[LABEL_PREFIX + name].sum()) for name in notes["labels"]}
        for term in notes.get("terms", []):
            term["n_rows"] = notes["n_positive"][term["go_id"]]
    notes["split_kind"] = _split_kind(task)
    notes["n_groups"] = int(table["group"].nunique())
    notes.update(_track_notes(task, table))
    return table, notes


def _binary_target(task: ProbeTask, labels: pd.DataFrame, notes: dict) -> pd.DataFrame:
    """Target values -> 1 (``positive``) / 0 (``negative``, or every other value); the rest dropped."""
    value = labels[task.target]
    notes["dropped_na"] = int(value.isna().sum()) + (notes["n_label_rows"] - len(value))
    value = value.astype(str)
    positive = value.isin(task.positive)
    negative = value.isin(task.negative) if task.negative else ~positive
    keep = labels[task.target].notna() & (positive | negative)
    notes["dropped_other_class"] = int((labels[task.target].notna() & ~keep).sum())
    notes["classes"] = {"positive": list(task.positive), "negative": list(task.negative or ["(all other values)"])}
    return labels.assign(target=positive.astype(float))[keep]


def _join_annotation(
    task: ProbeTask, where: str, labels: pd.DataFrame, transcripts: pd.DataFrame, groups: pd.DataFrame, notes: dict
) -> pd.DataFrame:
    """The annotation transcript for each label id: that transcript, or the gene's longest isoform."""
    key_column = {"transcript_id": "transcript_id", "gene_id": "gene_id", "gene_name": "gene_name"}[task.join]
    tx = transcripts[transcripts[key_column].notna()].copy()
    tx["_key"] = unversioned_gene_id(tx[key_column]) if task.join != "gene_name" else tx[key_column].astype(str)
    tx["_len"] = tx["seq"].str.len()
    # One transcript per key: the longest (ties: the smallest transcript id).
    tx = tx.sort_values(["_key", "_len", "transcript_id"], ascending=[True, False, True])
    representative = tx.drop_duplicates("_key").drop(columns="_len")
    matched = labels["id"].isin(representative["_key"])
    unmatched = labels.loc[~matched, "id"]
    notes["unmatched"] = int(len(unmatched))
    notes["unmatched_examples"] = unmatched.head(SHOW_IDS).tolist()
    if not matched.any():
        raise LabelJoinError(
            f"{where}: no value of column {task.id_column!r} matches a {task.join} of the "
            f"{len(representative)} annotated keys; first unmatched ids: {unmatched.head(SHOW_IDS).tolist()}; "
            f"first annotated keys: {representative['_key'].head(SHOW_IDS).tolist()}"
        )
    own = ["id", "target", *_label_names(labels)] + ([_group_column(task)] if _group_column(task) else [])
    table = (
        labels.loc[matched, own]
        .merge(
            representative[["_key", "transcript_id", "gene_id", "seq", *_TRACK_COLUMNS]],
            left_on="id",
            right_on="_key",
            how="inner",
        )
        .drop(columns="_key")
    )
    if task.group_by == "homology":
        table["group"] = _homology_groups(table, groups, notes)
    else:
        table["group"] = _groups_of(task, table)
    return table


def _homology_groups(table: pd.DataFrame, groups: pd.DataFrame, notes: dict) -> pd.Series:
    """Each row's homology group; a transcript the groups table does not know is its own family (counted)."""
    homology = groups.drop_duplicates("transcript_id").set_index("transcript_id")["homology_group"]
    group = table["transcript_id"].map(homology)
    missing = group.isna()
    notes["no_homology_group"] = int(missing.sum())
    return group.where(~missing, table["gene_id"])


def targets(table: pd.DataFrame, task: ProbeTask) -> np.ndarray:
    """What the probe fits: ``target`` (n,), or a multilabel task's 0/1 label columns (n, labels)."""
    if task.type == "multilabel":
        return table[_label_names(table)].to_numpy(dtype=float)
    return table["target"].to_numpy()


def label_names(table: pd.DataFrame) -> list[str]:
    """The names of a multilabel table's label columns, in order (prefix dropped)."""
    return [c.removeprefix(LABEL_PREFIX) for c in _label_names(table)]


def _label_names(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if str(c).startswith(LABEL_PREFIX)]


def _label_columns(task: ProbeTask, labels: pd.DataFrame, notes: dict) -> pd.DataFrame:
    """The ``labels`` columns as 0/1 ``label:<name>`` columns; a row with a value that is not 0/1 is dropped."""
    values = labels[task.labels].apply(pd.to_numeric, errors="coerce")
    was_na = labels[task.labels].isna().any(axis=1)
    binary = values.isin([0, 1]).all(axis=1)
    notes["dropped_na"] = int(was_na.sum()) + (notes["n_label_rows"] - len(labels))
    notes["dropped_non_binary"] = int((~binary & ~was_na).sum())
    notes["labels"] = list(task.labels)
    kept = labels[binary].copy()
    columns = {LABEL_PREFIX + name: values.loc[binary, name].astype(float) for name in task.labels}
    kept = kept.assign(**columns)
    return kept.assign(target=kept[list(columns)].sum(axis=1))


def _go_table(
    task: ProbeTask, go_dir: Path | None, transcripts: pd.DataFrame, groups: pd.DataFrame
) -> tuple[pd.DataFrame, dict]:
    """GO terms as labels: terms chosen genome-wide, genes joined to the annotation, one row per gene.

    A gene's terms are gene-level, so every isoform carries the same labels. One row per gene (its
    longest isoform, as the gene_id join does) keeps a gene with many isoforms from counting many
    times in the scores and the fit, and costs one embedding per gene; the homology split keeps
    isoforms together either way.
    """
    if go_dir is None:
        raise MissingInputError(f"probe task {task.name!r}: source go needs data.go (the GO tables' folder)")
    go = go_terms.load_go(go_dir, task.ontology)
    chosen = go_terms.select_terms(go, task.n_terms, task.level, task.min_share, task.max_share, task.drop_iea)
    where = f"probe task {task.name!r} (GO {task.ontology} under {go_dir})"
    joined, join_notes = go_terms.join_transcripts(transcripts, chosen.labels, go.genes, min_rows=1, where=where)
    rows = joined.merge(transcripts[["transcript_id", "seq", *_TRACK_COLUMNS]], on="transcript_id")
    rows["_len"] = rows["seq"].str.len()
    rows = rows.sort_values(["entrez_id", "_len", "transcript_id"], ascending=[True, False, True])
    rows = rows.drop_duplicates("entrez_id").drop(columns="_len")
    names = list(chosen.labels.columns)
    table = rows.rename(columns={go_id: LABEL_PREFIX + go_id for go_id in names})
    table["id"] = table["entrez_id"].astype(str)
    table["target"] = table[[LABEL_PREFIX + n for n in names]].sum(axis=1).astype(float)
    notes: dict = {
        "task": task.name,
        "type": task.type,
        "file": f"GO {task.ontology} ({go_dir})",
        "n_label_rows": chosen.n_labelled,
        "labels": names,
        "terms": chosen.terms.to_dict("records"),
        "go": {**chosen.settings, **join_notes},
        "unmatched": join_notes["unmatched"],
        "unmatched_examples": join_notes["unmatched_examples"],
    }
    notes["selection"] = (
        f"{task.name}: the {task.n_terms} most common {task.ontology} terms at level {task.level} held by "
        f"{task.min_share:g}..{task.max_share:g} of {chosen.n_labelled} labelled genes"
        f"{', IEA dropped' if task.drop_iea else ''}; {join_notes['genes_matched']} genes joined the annotation "
        f"({join_notes['matched_ensembl']} transcripts by Ensembl gene id, {join_notes['matched_symbol']} by "
        "symbol), one row per gene (its longest isoform)"
    )
    if task.about:
        notes["about"] = task.about
    if task.group_by == "homology":
        table["group"] = _homology_groups(table, groups, notes)
    else:
        table["group"] = _groups_of(task, table)
    keep = ["id", "transcript_id", "gene_id", "seq", *_TRACK_COLUMNS, "target", "group"]
    return table[keep + [LABEL_PREFIX + n for n in names]].reset_index(drop=True), notes


def _join_sequence(task: ProbeTask, where: str, labels: pd.DataFrame, notes: dict) -> pd.DataFrame:
    """The label file carries the sequence: normalise it (upper case, U -> T), drop what is not ACGTN."""
    seq = normalise(labels["id"].str.strip())
    usable = seq.str.fullmatch(f"[{DNA}]+")
    notes["dropped_bad_sequence"] = int((~usable).sum())
    notes["dropped_bad_sequence_examples"] = labels.loc[~usable, "id"].head(SHOW_IDS).str.slice(0, 60).tolist()
    notes["unmatched"] = 0
    if not usable.any():
        raise LabelJoinError(
            f"{where}: no value of column {task.id_column!r} is a usable nucleotide sequence (ACGTN/U); "
            f"first values: {labels['id'].head(SHOW_IDS).str.slice(0, 60).tolist()}"
        )
    table = labels.loc[usable].assign(seq=seq[usable])
    table["group"] = _groups_of(task, table)
    return table[["id", "seq", "target", "group", *_label_names(labels)]]


def _groups_of(task: ProbeTask, table: pd.DataFrame) -> pd.Series:
    prefix = _prefix_length(task)
    if prefix is not None:
        return table["seq"].str.slice(0, prefix)
    if task.group_by == "none":
        return pd.Series(np.arange(len(table)).astype(str), index=table.index)
    return table[task.group_by].astype(str)


def _split_kind(task: ProbeTask) -> str:
    prefix = _prefix_length(task)
    if task.group_by == "homology":
        return "by homology group (genes known)"
    if task.group_by == "none":
        return "random (no grouping known)"
    if prefix is not None:
        return f"by shared {prefix}-nt prefix (no genes known)"
    return f"by label column {task.group_by!r} (no genes known)"


def _track_notes(task: ProbeTask, table: pd.DataFrame) -> dict:
    """Which tracks the embeddings saw: a report must say when CDS / splice tracks were empty."""
    cds = int(table["cds_start"].notna().sum()) if "cds_start" in table else 0
    splice = int(table["exon_ends"].notna().sum()) if "exon_ends" in table else 0
    if task.join == "sequence":
        text = "sequence only: not annotation transcripts, so CDS and splice tracks are empty"
    elif task.tracks == "sequence":
        text = "sequence only: CDS and splice tracks left empty on purpose (the label must not leak through them)"
    else:
        text = f"annotation: CDS track on {cds} of {len(table)} rows, splice track on {splice}"
    return {"tracks": text, "cds_track_rows": cds, "splice_track_rows": splice}
