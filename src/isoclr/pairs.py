"""The `pairs` stage: isoform groups, paralog families and homology groups.

Positives for contrastive training are isoforms of one gene and genes of one
paralog family. Homology groups are the connected components of the graph
whose nodes are genes and whose edges are paralog pairs (the transitive
closure, so A~B and B~C put A, B and C together); splits are drawn by
homology group so no family is seen on both sides.

Annotation sets name genes differently (GENCODE: versioned Ensembl ids; a sequence table: unversioned
Ensembl ids or symbols; Cufflinks: its own XLOC ids with gene names), so genes are joined across sets
first (:func:`joined_gene_ids`) and one gene's transcripts from every set form one isoform group.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from isoclr.artifacts import Paths
from isoclr.config import Config, SplitsConfig
from isoclr.errors import IsoclrError, MissingInputError
from isoclr.gene_ids import ensembl_gene_keys
from isoclr.metrics import StageRun
from isoclr.schemas import GROUPS, TRANSCRIPTS
from isoclr.splits import split_by_group

PARALOGS = pa.DataFrameSchema(
    {"gene_A": pa.Column(str), "gene_B": pa.Column(str)},
    coerce=True,
    name="paralog pairs",
)


# Why a paralog pair links no two genes: a blank symbol in the file, or symbols the annotation does not carry
# (a paralog file covers the whole genome; an annotation may cover part of it, or lack gene names).
EMPTY_SYMBOL = "empty_symbol"
ONE_SYMBOL_MISSING = "one_symbol_not_in_annotation"
BOTH_SYMBOLS_MISSING = "both_symbols_not_in_annotation"
DROP_REASONS = (EMPTY_SYMBOL, ONE_SYMBOL_MISSING, BOTH_SYMBOLS_MISSING)


class ParalogError(IsoclrError, ValueError):
    """The paralog file does not have the gene_A / gene_B columns of gene symbols."""


@dataclass(frozen=True)
class PairsSummary:
    n_transcripts: int
    n_genes: int
    n_genes_in_several_sets: int  # genes joined across annotation sets (joined_gene_ids)
    n_multi_isoform_genes: int
    n_paralog_edges: int
    n_homology_groups: int
    largest_group_genes: int
    split_transcripts: dict[str, int]
    # Paralog pairs that link no two genes, per reason (see DROP_REASONS): with n_paralog_edges, every row read.
    paralog_pairs_dropped: dict[str, int] = field(default_factory=dict)

    def record(self, meter: StageRun) -> None:
        meter.set("isoclr_homology_groups", self.n_homology_groups)
        for split, count in self.split_transcripts.items():
            meter.set("isoclr_split_transcripts", count, split=split)

    def summary(self) -> str:
        return json.dumps(asdict(self), indent=2)


def read_paralogs(path: Path) -> pd.DataFrame:
    """Gene-symbol pairs (columns gene_A, gene_B); other columns are ignored, rows with a blank symbol dropped."""
    return read_paralog_rows(path)[0]


def read_paralog_rows(path: Path) -> tuple[pd.DataFrame, int]:
    """:func:`read_paralogs`, and how many rows it dropped for a blank symbol."""
    if not path.is_file():
        raise MissingInputError(f"{path}: paralog file not found (data.paralogs in params.yaml)")
    try:
        with path.open("rb") as fh:  # gzip told by its first bytes, not the name
            compression = "gzip" if fh.read(2) == b"\x1f\x8b" else None
        table = pd.read_csv(
            path,
            usecols=["gene_A", "gene_B"],
            dtype=str,
            compression=compression,
            encoding_errors="replace",
            index_col=False,  # extra fields on a row: no index of thousands of levels, no shifted columns
        )
        kept = table.dropna()
        return PARALOGS.validate(kept), len(table) - len(kept)
    except (ValueError, OSError, EOFError, zlib.error, pa.errors.SchemaError) as err:
        raise ParalogError(f"{path}: cannot be read as a CSV of gene_A,gene_B symbol pairs ({err})") from err


def homology_groups(genes: pd.DataFrame, paralogs: pd.DataFrame) -> tuple[pd.Series, int]:
    """Homology group of each gene, and the number of paralog pairs that linked two genes.

    Args:
        genes: one row per gene, columns gene_id and gene_name (symbol, may be null).
        paralogs: symbol pairs gene_A, gene_B.
    Returns:
        ("hg<k>" labels indexed like ``genes``, numbered in gene-id order so the
        same input always gives the same labels; paralog pairs used).
    """
    genes = genes.sort_values("gene_id")
    node = pd.Series(np.arange(len(genes)), index=genes["gene_id"].to_numpy())
    # A symbol can name several gene ids (e.g. pseudoautosomal copies): all of them
    # join the symbol's family, and they are linked to each other as well.
    by_symbol = genes.dropna(subset=["gene_name"]).groupby("gene_name")["gene_id"].agg(list)
    edges = [(node[ids[0]], node[other]) for ids in by_symbol for other in ids[1:]]
    known = paralogs[paralogs["gene_A"].isin(by_symbol.index) & paralogs["gene_B"].isin(by_symbol.index)]
    edges += [
        (node[by_symbol[a][0]], node[by_symbol[b][0]]) for a, b in zip(known["gene_A"], known["gene_B"], strict=True)
    ]
    rows, cols = (
        (np.array(e, dtype=np.int64) for e in zip(*edges, strict=True)) if edges else (np.empty(0, np.int64),) * 2
    )
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(genes), len(genes)))
    _, component = connected_components(graph, directed=False)
    # Renumber components by first appearance so labels follow gene-id order.
    _, first = np.unique(component, return_index=True)
    rank = np.empty_like(first)
    rank[np.argsort(first)] = np.arange(len(first))
    labels = pd.Series([f"hg{r:06d}" for r in rank[component]], index=genes.index)
    return labels, len(known)


def joined_gene_ids(transcripts: pd.DataFrame) -> pd.Series:
    """Per transcript, the id of its gene joined across annotation sets.

    The rule: genes with the same unversioned Ensembl gene id are one gene; a gene without an Ensembl id
    joins the Ensembl gene of its symbol when exactly one Ensembl gene carries that symbol, and genes without
    Ensembl ids that share a symbol are one gene. Two Ensembl genes are never joined by symbol (a symbol can
    name several loci, e.g. pseudoautosomal copies; homology groups link those). A joined gene's id is its
    smallest unversioned Ensembl id, else its smallest gene id.

    Args:
        transcripts: columns gene_id and gene_name (symbol, may be null).
    Returns:
        joined gene ids, indexed like ``transcripts``.
    """
    genes = transcripts[["gene_id", "gene_name"]].drop_duplicates("gene_id").reset_index(drop=True)
    ensembl = ensembl_gene_keys(genes["gene_id"])
    # Nodes: the genes, then one node per unversioned Ensembl id and per symbol of a gene without one.
    node_of_ensembl = {k: len(genes) + i for i, k in enumerate(ensembl.dropna().unique())}
    ensembl_symbols = genes.loc[ensembl.notna()].dropna(subset=["gene_name"]).assign(ens=ensembl.dropna())
    single = ensembl_symbols.drop_duplicates(["gene_name", "ens"]).groupby("gene_name")["ens"].agg(list)
    single = single[single.map(len) == 1].map(lambda ids: ids[0])
    loose = genes.loc[ensembl.isna()].dropna(subset=["gene_name"])
    node_of_symbol = {k: len(genes) + len(node_of_ensembl) + i for i, k in enumerate(loose["gene_name"].unique())}
    edges = [(i, node_of_ensembl[k]) for i, k in ensembl.dropna().items()]
    edges += [(i, node_of_symbol[k]) for i, k in loose["gene_name"].items()]
    edges += [(node_of_symbol[k], node_of_ensembl[single[k]]) for k in node_of_symbol if k in single.index]
    n_nodes = len(genes) + len(node_of_ensembl) + len(node_of_symbol)
    rows, cols = (np.array(e, dtype=np.int64) for e in zip(*edges, strict=True)) if edges else (np.empty(0, int),) * 2
    _, component = connected_components(
        coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_nodes, n_nodes)), directed=False
    )
    genes["component"] = component[: len(genes)]
    genes["ensembl"] = ensembl
    by_component = genes.groupby("component").agg(ensembl=("ensembl", "min"), gene_id=("gene_id", "min"))
    joined = by_component["ensembl"].where(by_component["ensembl"].notna(), by_component["gene_id"])
    return transcripts["gene_id"].map(genes.set_index("gene_id")["component"].map(joined))


def unmatched_pairs(symbols: pd.Series, paralogs: pd.DataFrame) -> dict[str, int]:
    """Paralog pairs with one or both symbols missing from ``symbols`` (the annotation's gene names)."""
    known = set(symbols.dropna())
    found = paralogs["gene_A"].isin(known).astype(int) + paralogs["gene_B"].isin(known).astype(int)
    return {ONE_SYMBOL_MISSING: int((found == 1).sum()), BOTH_SYMBOLS_MISSING: int((found == 0).sum())}


def build_groups(
    transcripts: pd.DataFrame, paralogs: pd.DataFrame, cfg: SplitsConfig, empty_symbol_rows: int = 0
) -> tuple[pd.DataFrame, PairsSummary]:
    """One row per transcript with its gene (joined across sets), isoform count, homology group and split.

    ``empty_symbol_rows``: rows the paralog reader dropped for a blank symbol, counted in the summary.
    """
    transcripts = transcripts.assign(gene_id=joined_gene_ids(transcripts))
    genes = transcripts.groupby("gene_id", as_index=False).agg(
        gene_name=("gene_name", "first"), n_isoforms=("transcript_id", "size")
    )
    groups, n_edges = homology_groups(genes, paralogs)
    genes["homology_group"] = groups
    table = transcripts[["transcript_id", "gene_id"]].merge(genes, on="gene_id", validate="many_to_one")
    table["split"] = split_by_group(table["homology_group"].to_numpy(), cfg.fractions, cfg.seed)
    table = GROUPS.validate(table)
    genes_per_group = genes.groupby("homology_group").size()
    summary = PairsSummary(
        n_transcripts=len(table),
        n_genes=len(genes),
        n_genes_in_several_sets=int((transcripts.groupby("gene_id")["annotation"].nunique() > 1).sum())
        if "annotation" in transcripts
        else 0,
        n_multi_isoform_genes=int((genes["n_isoforms"] > 1).sum()),
        n_paralog_edges=n_edges,
        n_homology_groups=int(genes_per_group.size),
        largest_group_genes=int(genes_per_group.max()),
        split_transcripts={k: int(v) for k, v in table["split"].value_counts().sort_index().items()},
        paralog_pairs_dropped={EMPTY_SYMBOL: empty_symbol_rows, **unmatched_pairs(genes["gene_name"], paralogs)},
    )
    return table, summary


def run(cfg: Config, paths: Paths) -> PairsSummary:
    """The pairs stage: read the validated transcripts and the paralog file; write the groups table."""
    transcripts = TRANSCRIPTS.validate(pd.read_parquet(paths.transcripts))
    paralogs, empty_symbol_rows = read_paralog_rows(cfg.data.path(cfg.data.paralogs, paths.data_dir))
    table, summary = build_groups(transcripts, paralogs, cfg.splits, empty_symbol_rows)
    paths.groups.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(paths.groups, index=False)
    paths.pairs_summary.parent.mkdir(parents=True, exist_ok=True)
    paths.pairs_summary.write_text(json.dumps(asdict(summary), indent=2) + "\n")
    return summary
