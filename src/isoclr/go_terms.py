"""Gene Ontology labels for probes and maps: read the GO tables, pick terms, join genes to transcripts.

The tables are the ones exported from Bioconductor's org.Hs.eg.db / GO.db
(data/go_human/PROVENANCE.txt): direct annotations per Entrez gene with
evidence codes, term names, ontology edges, and an Entrez <-> symbol <->
Ensembl gene map.

Term selection follows the paper: the ``n`` most common terms of one ontology
at one level below the root, among terms held by between ``min_share`` and
``max_share`` of the labelled genes. A term's level is its shortest is_a path
from the root. Annotations are propagated here (true-path rule over is_a and
part_of) from the *direct* table rather than read from the propagated one, so
that dropping electronic (IEA) evidence is one filter before propagation, the
relations followed are explicit, and only the small direct tables need to ship.

Errors name the file and the rule (:class:`GoDataError`, :class:`GoJoinError`).
"""

from __future__ import annotations

import graphlib
import logging
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from isoclr.errors import IsoclrError, MissingInputError

log = logging.getLogger(__name__)

ONTOLOGIES = ("BP", "MF", "CC")
ROOTS = {"BP": "GO:0008150", "MF": "GO:0003674", "CC": "GO:0005575"}
ELECTRONIC = "IEA"
# Relations annotations propagate over (GO's true-path rule); "regulates" edges do not carry annotations.
PROPAGATE_OVER = ("is_a", "part_of")
GENE_MAP_FILE = "genes_entrez_symbol_ensembl.tsv.gz"
TERMS_FILE = "go_terms.tsv.gz"
SHOW_IDS = 5  # unmatched ids an error or the notes show
_GO_ID = r"^GO:\d{7}$"
_ENSEMBL_VERSION = re.compile(r"\.\d+(?:_PAR_Y)?$")


class GoDataError(IsoclrError, ValueError):
    """A GO table breaks a rule (columns, id format, a cycle, no term left to select)."""


class GoJoinError(IsoclrError, ValueError):
    """Too few transcripts join a gene label table."""


# --------------------------------------------------------------------------- schemas at the boundaries

ANNOTATIONS = pa.DataFrameSchema(
    {
        "entrez_id": pa.Column(int),
        "go_id": pa.Column(str, pa.Check.str_matches(_GO_ID)),
        "evidence": pa.Column(str),
    },
    coerce=True,
    name="go_annotations",
)
EDGES = pa.DataFrameSchema(
    {
        "child_go_id": pa.Column(str, pa.Check.str_matches(_GO_ID)),
        "parent_go_id": pa.Column(str, pa.Check.str_matches(_GO_ID)),
        "relationship": pa.Column(str),
    },
    coerce=True,
    name="go_edges",
)
TERMS = pa.DataFrameSchema(
    {
        "go_id": pa.Column(str, pa.Check.str_matches(_GO_ID), unique=True),
        "term": pa.Column(str),
        "ontology": pa.Column(str, pa.Check.isin(ONTOLOGIES)),
    },
    coerce=True,
    name="go_terms",
)
GENE_MAP = pa.DataFrameSchema(
    {
        "entrez_id": pa.Column(int),
        "symbol": pa.Column(str, nullable=True),
        "ensembl_gene_ids": pa.Column(str, nullable=True),  # ';'-joined, unversioned
    },
    coerce=True,
    name="gene_map",
)
# genes x selected terms, 0/1; index: Entrez gene id.
GENE_LABELS = pa.DataFrameSchema(
    {_GO_ID: pa.Column(np.uint8, pa.Check.isin([0, 1]), regex=True)},
    index=pa.Index(int, unique=True, name="entrez_id"),
    strict=True,
    coerce=True,
    name="go_gene_labels",
)
SELECTED_TERMS = pa.DataFrameSchema(
    {
        "go_id": pa.Column(str, pa.Check.str_matches(_GO_ID), unique=True),
        "term": pa.Column(str, nullable=True),
        "level": pa.Column(int, pa.Check.ge(1)),
        "n_genes": pa.Column(int, pa.Check.ge(1)),
        "share": pa.Column(float, pa.Check.in_range(0.0, 1.0)),
    },
    strict=True,
    coerce=True,
    name="go_selected_terms",
)
TRANSCRIPT_LABELS = pa.DataFrameSchema(
    {
        "transcript_id": pa.Column(str, unique=True),
        "gene_id": pa.Column(str),
        "entrez_id": pa.Column(int),
        "matched_by": pa.Column(str, pa.Check.isin(["ensembl", "symbol"])),
    },
    coerce=True,
    name="go_transcript_labels",
)


def _validate(schema: pa.DataFrameSchema, frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """``schema.validate``, with a failure raised as :class:`GoDataError` naming ``where`` and the rule."""
    try:
        return schema.validate(frame)
    except (pa.errors.SchemaError, pa.errors.SchemaErrors) as exc:
        raise GoDataError(f"{where}: breaks schema {schema.name!r}: {exc}") from None


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class GoTables:
    """One ontology's tables. ``annotations``: direct (entrez_id, symbol, go_id, evidence);
    ``edges``: (child_go_id, parent_go_id, relationship) with relationship names normalised
    (``is_a``, ``part_of``, ``regulates``, ...); ``terms``: (go_id, term, ontology) of this ontology;
    ``genes``: the Entrez / symbol / Ensembl map, or None when not read."""

    ontology: str
    annotations: pd.DataFrame
    edges: pd.DataFrame
    terms: pd.DataFrame
    genes: pd.DataFrame | None = None
    root: str = ""


def _read_tsv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise MissingInputError(f"{path}: GO table not found (see data/go_human/PROVENANCE.txt)")
    return pd.read_csv(path, sep="\t", low_memory=False)


def normalise_relationship(names: pd.Series) -> pd.Series:
    """GO.db's ``isa`` / ``part of`` / ``negatively regulates`` -> ``is_a`` / ``part_of`` / ``negatively_regulates``."""
    out = names.astype(str).str.strip().str.lower().str.replace(" ", "_", regex=False)
    return out.replace({"isa": "is_a"})


def read_edges(path: Path) -> pd.DataFrame:
    """Ontology edges; the edge from the root to GO.db's pseudo-term ``all`` is dropped."""
    edges = _read_tsv(path)
    edges = edges[edges["parent_go_id"].astype(str).str.startswith("GO:")].copy()
    edges = _validate(EDGES, edges, str(path))
    edges["relationship"] = normalise_relationship(edges["relationship"])
    return edges.reset_index(drop=True)


def read_gene_map(path: Path) -> pd.DataFrame:
    """The Entrez -> symbol / Ensembl map, one row per Entrez id (exact duplicate rows dropped)."""
    genes = _validate(GENE_MAP, _read_tsv(path), str(path))
    return genes.drop_duplicates("entrez_id").reset_index(drop=True)


def load_go(root: Path, ontology: str = "MF", genes: bool = True) -> GoTables:
    """Read ``go_<o>.tsv.gz``, ``go_<o>_parents.tsv.gz``, ``go_terms.tsv.gz`` (and the gene map) from ``root``."""
    ontology = ontology.upper()
    if ontology not in ONTOLOGIES:
        raise GoDataError(f"ontology must be one of {ONTOLOGIES}, got {ontology!r}")
    root = Path(root)
    o = ontology.lower()
    path = root / f"go_{o}.tsv.gz"
    annotations = _validate(ANNOTATIONS, _read_tsv(path), str(path))
    terms_path = root / TERMS_FILE
    terms = _read_tsv(terms_path)
    terms = _validate(TERMS, terms[terms["ontology"] == ontology], str(terms_path))
    edges = read_edges(root / f"go_{o}_parents.tsv.gz")
    return GoTables(
        ontology=ontology,
        annotations=annotations,
        edges=edges,
        terms=terms[["go_id", "term", "ontology"]].reset_index(drop=True),
        genes=read_gene_map(root / GENE_MAP_FILE) if genes else None,
        root=find_root(edges),  # GO's own roots are in ROOTS; a hand-made ontology has its own
    )


# --------------------------------------------------------------------------- the ontology graph


def find_root(edges: pd.DataFrame) -> str:
    """The one term that is an is_a parent but has no is_a parent itself."""
    is_a = edges[edges["relationship"] == "is_a"]
    roots = sorted(set(is_a["parent_go_id"]) - set(is_a["child_go_id"]))
    if len(roots) != 1:
        raise GoDataError(f"ontology edges: rule 'one is_a root' broken: roots {roots[:SHOW_IDS]}")
    return roots[0]


def term_levels(edges: pd.DataFrame, root: str | None = None) -> pd.Series:
    """Level of every term: the shortest is_a path length from ``root`` (root = 0); go_id -> int.

    Terms not reachable from the root over is_a edges get no entry.
    """
    root = root or find_root(edges)
    is_a = edges[edges["relationship"] == "is_a"]
    children: dict[str, list[str]] = is_a.groupby("parent_go_id")["child_go_id"].agg(list).to_dict()
    level = {root: 0}
    queue = deque([root])
    while queue:  # breadth first: the first visit is the shortest path
        term = queue.popleft()
        for child in children.get(term, ()):
            if child not in level:
                level[child] = level[term] + 1
                queue.append(child)
    return pd.Series(level, name="level").rename_axis("go_id")


def ancestors(edges: pd.DataFrame, over: tuple[str, ...] = PROPAGATE_OVER) -> dict[str, frozenset[str]]:
    """Every term's ancestors over the ``over`` relations, the term itself included."""
    used = edges[edges["relationship"].isin(over)]
    parents: dict[str, set[str]] = {}
    for child, parent in zip(used["child_go_id"], used["parent_go_id"], strict=True):
        parents.setdefault(child, set()).add(parent)
        parents.setdefault(parent, set())
    closure: dict[str, frozenset[str]] = {}
    try:
        for term in graphlib.TopologicalSorter(parents).static_order():  # parents before children
            closure[term] = frozenset({term}.union(*(closure[p] for p in parents[term])))
    except graphlib.CycleError as exc:
        raise GoDataError(f"ontology edges: rule 'acyclic' broken: cycle through {exc.args[1][:SHOW_IDS]}") from None
    return closure


def propagate(annotations: pd.DataFrame, edges: pd.DataFrame, over: tuple[str, ...] = PROPAGATE_OVER) -> pd.DataFrame:
    """Direct (entrez_id, go_id) annotations -> the same plus every ancestor term, one row per pair."""
    pairs = annotations[["entrez_id", "go_id"]].drop_duplicates()
    closure = ancestors(edges, over)
    terms = pairs["go_id"].unique()
    up = pd.DataFrame([(t, a) for t in terms for a in closure.get(t, (t,))], columns=["go_id", "ancestor"])
    out = pairs.merge(up, on="go_id")[["entrez_id", "ancestor"]].rename(columns={"ancestor": "go_id"})
    return out.drop_duplicates().reset_index(drop=True)


def gene_terms(go: GoTables, drop_iea: bool = False) -> pd.DataFrame:
    """Propagated (entrez_id, go_id) pairs of the labelled genes, root term left out.

    A gene is labelled when it holds any term besides the root once ``drop_iea``
    is applied (a root-only annotation, evidence ND, means "no data").
    """
    direct = go.annotations
    if drop_iea:
        direct = direct[direct["evidence"] != ELECTRONIC]
    root = go.root or find_root(go.edges)
    pairs = propagate(direct, go.edges)
    return pairs[pairs["go_id"] != root].reset_index(drop=True)


# --------------------------------------------------------------------------- term selection


@dataclass(frozen=True)
class GoSelection:
    """Chosen terms and the gene labels. ``labels``: (genes, terms) 0/1 uint8, index entrez_id, one
    column per chosen go_id in ``terms`` order; ``terms``: go_id, term, level, n_genes, share
    (share of the ``n_labelled`` genes)."""

    labels: pd.DataFrame
    terms: pd.DataFrame
    n_labelled: int
    settings: dict = field(default_factory=dict)


def select_terms(
    go: GoTables,
    n: int = 10,
    level: int = 2,
    min_share: float = 0.01,
    max_share: float = 0.5,
    drop_iea: bool = False,
    only_genes_with_a_term: bool = False,
) -> GoSelection:
    """The ``n`` most common terms at ``level`` held by ``min_share``..``max_share`` of the labelled genes.

    Ties in gene count go to the smaller GO id, so the choice is deterministic.
    Every labelled gene is a row (a gene holding none of the chosen terms is a
    negative for all of them) unless ``only_genes_with_a_term``.
    """
    if n < 1 or level < 1 or not 0.0 <= min_share <= max_share <= 1.0:
        raise GoDataError(
            f"term selection needs n >= 1, level >= 1, 0 <= min_share <= max_share <= 1: "
            f"got n={n}, level={level}, min_share={min_share}, max_share={max_share}"
        )
    settings = {
        "ontology": go.ontology,
        "n": n,
        "level": level,
        "min_share": min_share,
        "max_share": max_share,
        "drop_iea": drop_iea,
    }
    pairs = gene_terms(go, drop_iea)
    labelled = np.sort(pairs["entrez_id"].unique())
    if len(labelled) == 0:
        raise GoDataError(f"GO {go.ontology}: rule 'some labelled gene' broken: no gene holds a non-root term")
    levels = term_levels(go.edges, go.root or None)
    counts = pairs.groupby("go_id")["entrez_id"].nunique().rename("n_genes").reset_index()
    counts["level"] = counts["go_id"].map(levels)
    counts["share"] = counts["n_genes"] / len(labelled)
    eligible = counts[(counts["level"] == level) & counts["share"].between(min_share, max_share)]
    if eligible.empty:
        at_level = counts[counts["level"] == level]
        raise GoDataError(
            f"GO {go.ontology}: rule 'a term at level {level} held by {min_share:.3g}..{max_share:.3g} of the "
            f"{len(labelled)} labelled genes' broken: the {len(at_level)} terms at that level have shares "
            f"{sorted(at_level['share'].round(4).tolist(), reverse=True)[:SHOW_IDS]} ..."
        )
    chosen = eligible.sort_values(["n_genes", "go_id"], ascending=[False, True]).head(n)
    if len(chosen) < n:
        log.warning(
            "GO %s: only %d terms at level %d fit the share window (%d asked)", go.ontology, len(chosen), level, n
        )
    names = go.terms.set_index("go_id")["term"]
    terms = chosen.assign(term=chosen["go_id"].map(names), level=chosen["level"].astype(int))
    terms = _validate(
        SELECTED_TERMS,
        terms[["go_id", "term", "level", "n_genes", "share"]].reset_index(drop=True),
        f"GO {go.ontology} selection",
    )
    held = pairs[pairs["go_id"].isin(terms["go_id"])]
    labels = pd.crosstab(held["entrez_id"], held["go_id"]).clip(upper=1)
    rows = labels.index if only_genes_with_a_term else labelled
    labels = labels.reindex(index=rows, columns=terms["go_id"], fill_value=0).rename_axis("entrez_id")
    labels.columns.name = None
    labels = _validate(GENE_LABELS, labels.astype(np.uint8), f"GO {go.ontology} gene labels")
    return GoSelection(labels=labels, terms=terms, n_labelled=len(labelled), settings=settings)


def root_terms(go: GoTables, drop_iea: bool = False, top: int | None = None, level: int = 1) -> pd.DataFrame:
    """Each labelled gene's top-level term (a child of the root), one per gene, to colour map points.

    A gene usually holds several level-1 terms; it gets the one held by the
    fewest genes (the most specific: "binding" says little next to "transporter
    activity"); ties to the smaller GO id. With ``top``, only the ``top`` most
    common terms are labels, and a gene holding none of them is "other" (as is a
    gene without a term at that level). ``level`` 2 gives a finer colouring (CC has only two level-1 terms in use).
    Returns index entrez_id, columns go_id (None for "other") and term.
    """
    pairs = gene_terms(go, drop_iea)
    levels = term_levels(go.edges, go.root or None)
    first = pairs[pairs["go_id"].map(levels) == level]
    counts = first.groupby("go_id")["entrez_id"].nunique()
    if top is not None:
        order = counts.rename("n").reset_index().sort_values(["n", "go_id"], ascending=[False, True])
        kept = order["go_id"].head(top)
        first = first[first["go_id"].isin(kept)]
    first = first.assign(n=first["go_id"].map(counts)).sort_values(["entrez_id", "n", "go_id"])
    best = first.drop_duplicates("entrez_id").set_index("entrez_id")["go_id"]
    genes = np.sort(pairs["entrez_id"].unique())
    names = go.terms.set_index("go_id")["term"]
    out = pd.DataFrame({"go_id": best.reindex(genes)}, index=pd.Index(genes, name="entrez_id"))
    out["term"] = out["go_id"].map(names).where(out["go_id"].notna(), "other")
    out["go_id"] = out["go_id"].astype(object).where(out["go_id"].notna(), None)
    return out


# --------------------------------------------------------------------------- joining genes to transcripts


def unversioned(ids: pd.Series) -> pd.Series:
    """``ENSG00000000003.14`` -> ``ENSG00000000003`` (ids without a version are left as they are)."""
    return ids.astype(str).str.replace(_ENSEMBL_VERSION, "", regex=True)


def join_transcripts(
    transcripts: pd.DataFrame,
    gene_table: pd.DataFrame,
    gene_map: pd.DataFrame,
    min_rows: int = 1,
    where: str = "GO labels",
) -> tuple[pd.DataFrame, dict]:
    """Gene-level rows (``gene_table``, index entrez_id) copied to every isoform of the gene.

    A transcript matches by its unversioned Ensembl ``gene_id`` through the map
    (an Ensembl id of several labelled Entrez genes takes the one whose symbol is
    the transcript's ``gene_name``, else the smallest id) or, failing that, by
    ``gene_name`` = symbol. Transcripts of genes without labels are left out.
    Returns the joined table (transcript_id, gene_id, entrez_id, matched_by,
    then ``gene_table``'s columns) and notes: counts and the first unmatched gene ids.
    Raises :class:`GoJoinError` when fewer than ``min_rows`` transcripts join.
    """
    labelled = gene_map[gene_map["entrez_id"].isin(gene_table.index)]
    ens = labelled.assign(ensembl=labelled["ensembl_gene_ids"].str.split(";")).explode("ensembl")
    ens = ens[ens["ensembl"].notna() & (ens["ensembl"] != "")][["ensembl", "entrez_id", "symbol"]]
    tx = transcripts[["transcript_id", "gene_id", "gene_name"]].copy()
    tx["_key"] = unversioned(tx["gene_id"])
    by_ens = tx.merge(ens, left_on="_key", right_on="ensembl", how="inner")
    by_ens["_own"] = by_ens["symbol"] == by_ens["gene_name"]
    by_ens = by_ens.sort_values(["transcript_id", "_own", "entrez_id"], ascending=[True, False, True])
    ambiguous = int(by_ens["transcript_id"].duplicated().sum())
    by_ens = by_ens.drop_duplicates("transcript_id").assign(matched_by="ensembl")
    rest = tx[~tx["transcript_id"].isin(by_ens["transcript_id"]) & tx["gene_name"].notna()]
    symbols = labelled[labelled["symbol"].notna()].sort_values("entrez_id").drop_duplicates("symbol")
    by_symbol = rest.merge(symbols[["symbol", "entrez_id"]], left_on="gene_name", right_on="symbol", how="inner")
    by_symbol = by_symbol.assign(matched_by="symbol")
    cols = ["transcript_id", "gene_id", "entrez_id", "matched_by"]
    joined = pd.concat([by_ens[cols], by_symbol[cols]], ignore_index=True)
    joined = joined.merge(gene_table, left_on="entrez_id", right_index=True, how="left")
    unmatched = tx.loc[~tx["transcript_id"].isin(joined["transcript_id"]), "gene_id"].drop_duplicates()
    notes = {
        "n_transcripts": len(tx),
        "matched": len(joined),
        "matched_ensembl": len(by_ens),
        "matched_symbol": len(by_symbol),
        "ambiguous_ensembl": ambiguous,
        "genes_matched": int(joined["entrez_id"].nunique()),
        "unmatched": int(len(tx) - len(joined)),
        "unmatched_examples": unmatched.head(SHOW_IDS).tolist(),
    }
    if len(joined) < min_rows:
        raise GoJoinError(
            f"{where}: rule 'at least {min_rows} transcripts join a labelled gene' broken: {len(joined)} of "
            f"{len(tx)} joined (by Ensembl gene id or symbol); first unmatched gene ids: {notes['unmatched_examples']}"
        )
    joined = _validate(TRANSCRIPT_LABELS, joined.sort_values("transcript_id").reset_index(drop=True), where)
    return joined, notes
