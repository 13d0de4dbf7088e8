"""The `pairs` stage: isoform groups, paralog and ortholog families, homology groups.

Positives for contrastive training are isoforms of one gene, genes of one paralog family and, across
species, orthologs. Homology groups are the connected components of the graph whose nodes are genes and whose
edges are paralog pairs (within a species) and ortholog pairs (across species): the transitive closure, so
A~B and B~C put A, B and C together; splits are drawn by homology group so no family is seen on both sides
in any species.

Annotation sets name genes differently (GENCODE: versioned Ensembl ids; a sequence table: unversioned
Ensembl ids or symbols; Cufflinks: its own XLOC ids with gene names), so genes are joined across the sets of
one species first (:func:`joined_gene_ids`) and one gene's transcripts from every set form one isoform group.
Pair tables name genes by Ensembl id, gene id or symbol (:mod:`isoclr.gene_pairs`).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.parquet
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from isoclr.artifacts import Paths
from isoclr.config import Config, SplitsConfig
from isoclr.errors import IsoclrError, MissingInputError
from isoclr.gene_ids import ensembl_gene_keys
from isoclr.gene_pairs import (
    CROSS_SPECIES,
    EMPTY_NAME,
    NOT_IN_ANNOTATION,
    gene_aliases,
    link_pairs,
    read_ortholog_rows,
    text_compression,
)
from isoclr.metrics import StageRun
from isoclr.schemas import GROUPS, GROUPS_ARROW, TRANSCRIPTS
from isoclr.splits import split_by_group

PARALOGS = pa.DataFrameSchema(
    {"gene_A": pa.Column(str), "gene_B": pa.Column(str)},
    coerce=True,
    name="paralog pairs",
)


# Why a paralog pair links no two genes: a blank value in the file, names the annotation does not carry (a
# paralog file covers the whole genome; an annotation may cover part of it, or lack gene names; ids and
# symbols counted apart, isoclr.gene_pairs), or genes of two species.
EMPTY_SYMBOL = "empty_symbol"
DROP_REASONS = (EMPTY_SYMBOL, *NOT_IN_ANNOTATION, CROSS_SPECIES)


class ParalogError(IsoclrError, ValueError):
    """The paralog file does not have the gene_A / gene_B columns of gene names."""


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
    species_genes: dict[str, int] = field(default_factory=dict)
    species_transcripts: dict[str, int] = field(default_factory=dict)
    # Ortholog pairs that linked genes of two species; those that did not, per reason
    # (isoclr.gene_pairs.ORTHOLOG_DROP_REASONS; empty without data.orthologs): together, every row read.
    n_ortholog_edges: int = 0
    ortholog_pairs_dropped: dict[str, int] = field(default_factory=dict)
    n_genes_with_orthologs: int = 0

    def record(self, meter: StageRun) -> None:
        meter.set("isoclr_homology_groups", self.n_homology_groups)
        for split, count in self.split_transcripts.items():
            meter.set("isoclr_split_transcripts", count, split=split)

    def summary(self) -> str:
        return json.dumps(asdict(self), indent=2)


def read_paralogs(path: Path) -> pd.DataFrame:
    """Gene pairs (columns gene_A, gene_B: symbols or gene ids); other columns are ignored, blank rows dropped."""
    return read_paralog_rows(path)[0]


def read_paralog_rows(path: Path) -> tuple[pd.DataFrame, int]:
    """:func:`read_paralogs`, and how many rows it dropped for a blank value."""
    if not path.is_file():
        raise MissingInputError(f"{path}: paralog file not found (data.paralogs in params.yaml)")
    try:
        compression = text_compression(path)
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
        raise ParalogError(
            f"{path}: cannot be read as a CSV of gene_A,gene_B pairs of gene symbols or ids ({err})"
        ) from err


def _components(n_nodes: int, edges: list[tuple[int, int]] | np.ndarray) -> np.ndarray:
    """Connected component of each of ``n_nodes`` nodes under undirected ``edges`` ((E, 2) node pairs)."""
    pairs = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n_nodes, n_nodes))
    return connected_components(graph, directed=False)[1]


def homology_groups(genes: pd.DataFrame, edges: pd.DataFrame) -> pd.Series:
    """Homology group of each gene: connected components over paralog and ortholog edges.

    Args:
        genes: one row per (joined) gene, columns gene_id, gene_name (symbol, may be null) and species.
        edges: columns gene_a, gene_b (gene ids of ``genes``; :func:`isoclr.gene_pairs.link_pairs`).
    Returns:
        "hg<k>" labels indexed like ``genes``, numbered in gene-id order so the same input always gives the
        same labels.
    """
    genes = genes.sort_values("gene_id")
    node = pd.Series(np.arange(len(genes)), index=genes["gene_id"].to_numpy())
    # A symbol can name several gene ids of one species (e.g. pseudoautosomal copies): they are one family.
    # Never across species: a symbol shared by two species links nothing, only orthologs do.
    named = genes.dropna(subset=["gene_name"])
    first = named.groupby(["species", "gene_name"])["gene_id"].transform("first")
    links = [np.column_stack([node[named["gene_id"]].to_numpy(), node[first].to_numpy()])]
    links.append(np.column_stack([node[edges["gene_a"]].to_numpy(), node[edges["gene_b"]].to_numpy()]))
    component = _components(len(genes), np.concatenate(links))
    # Renumber components by first appearance so labels follow gene-id order.
    _, first_seen = np.unique(component, return_index=True)
    rank = np.empty_like(first_seen)
    rank[np.argsort(first_seen)] = np.arange(len(first_seen))
    return pd.Series([f"hg{r:06d}" for r in rank[component]], index=genes.index)


def joined_gene_ids(transcripts: pd.DataFrame) -> pd.Series:
    """Per transcript, the id of its gene joined across annotation sets of its species.

    The rule, within one species (genes of two species are never joined): genes with the same unversioned
    Ensembl gene id are one gene; a gene without an Ensembl id joins the Ensembl gene of its symbol when exactly
    one Ensembl gene carries that symbol, and genes without Ensembl ids that share a symbol are one gene. Two
    Ensembl genes are never joined by symbol (a symbol can name several loci, e.g. pseudoautosomal copies;
    homology groups link those). A joined gene's id is its smallest unversioned Ensembl id, else its smallest
    gene id; an id that would name genes of two species (XLOC_1 in a human and a mouse set) is qualified with
    the species, ``mus_musculus:XLOC_1``.

    Args:
        transcripts: columns species, gene_id and gene_name (symbol, may be null).
    Returns:
        joined gene ids, indexed like ``transcripts``.
    """
    genes = transcripts[["species", "gene_id", "gene_name"]].drop_duplicates(["species", "gene_id"])
    genes = genes.reset_index(drop=True).assign(ensembl=lambda g: ensembl_gene_keys(g["gene_id"]))
    ens = genes.dropna(subset=["ensembl"])
    loose = genes[genes["ensembl"].isna()].dropna(subset=["gene_name"])
    # Nodes: the genes, then one per (species, unversioned Ensembl id) and per (species, symbol of a gene
    # without one).
    node: dict[tuple[str, str, str], int] = {}

    def node_of(key: tuple[str, str, str]) -> int:
        return node.setdefault(key, len(genes) + len(node))

    edges = [
        (i, node_of(("ensembl", sp, k))) for i, sp, k in zip(ens.index, ens["species"], ens["ensembl"], strict=True)
    ]
    edges += [
        (i, node_of(("symbol", sp, k)))
        for i, sp, k in zip(loose.index, loose["species"], loose["gene_name"], strict=True)
    ]
    named = ens.dropna(subset=["gene_name"]).drop_duplicates(["species", "gene_name", "ensembl"])
    single = named.groupby(["species", "gene_name"])["ensembl"].agg(list)
    single = single[single.map(len) == 1]
    edges += [
        (node[("symbol", sp, name)], node[("ensembl", sp, ids[0])])
        for (sp, name), ids in single.items()
        if ("symbol", sp, name) in node
    ]
    genes["component"] = _components(len(genes) + len(node), edges)[: len(genes)]
    parts = genes.groupby("component").agg(
        ensembl=("ensembl", "min"), gene_id=("gene_id", "min"), species=("species", "first")
    )
    parts["joined"] = parts["ensembl"].fillna(parts["gene_id"])
    shared = parts.groupby("joined")["species"].transform("nunique") > 1
    parts.loc[shared, "joined"] = parts.loc[shared, "species"] + ":" + parts.loc[shared, "joined"]
    per_gene = pd.Series(
        genes["component"].map(parts["joined"]).to_numpy(),
        index=pd.MultiIndex.from_frame(genes[["species", "gene_id"]]),
    )
    return pd.Series(
        per_gene.reindex(pd.MultiIndex.from_frame(transcripts[["species", "gene_id"]])).to_numpy(),
        index=transcripts.index,
    )


def ortholog_lists(genes: pd.Series, edges: pd.DataFrame) -> pd.Series:
    """Per gene of ``genes``, the sorted ids of its direct ortholog partners (an edge either way round)."""
    both = pd.concat(
        [
            edges[["gene_a", "gene_b"]],
            edges.rename(columns={"gene_a": "gene_b", "gene_b": "gene_a"})[["gene_a", "gene_b"]],
        ]
    )
    partners = both.drop_duplicates().sort_values("gene_b").groupby("gene_a")["gene_b"].agg(list)
    return genes.map(partners).map(lambda ids: ids if isinstance(ids, list) else [])


def build_groups(
    transcripts: pd.DataFrame,
    paralogs: pd.DataFrame,
    cfg: SplitsConfig,
    empty_symbol_rows: int = 0,
    orthologs: pd.DataFrame | None = None,
    empty_ortholog_rows: int = 0,
) -> tuple[pd.DataFrame, PairsSummary]:
    """One row per transcript with its gene (joined across sets), species, isoform count, homology group, split
    and the gene's ortholog partners.

    Args:
        transcripts: columns transcript_id, gene_id, gene_name, species (and annotation, if any).
        paralogs: gene_A, gene_B names, linked within a species.
        orthologs: gene_a, gene_b names, linked across species (None: no ortholog table).
        empty_symbol_rows / empty_ortholog_rows: rows the readers dropped for a blank value, counted here.
    """
    joined = joined_gene_ids(transcripts)
    aliases = gene_aliases(transcripts, joined)
    transcripts = transcripts.assign(gene_id=joined)
    paralog_edges, paralog_dropped = link_pairs(
        paralogs.rename(columns={"gene_A": "gene_a", "gene_B": "gene_b"}), aliases, across_species=False
    )
    ortholog_edges, ortholog_dropped = link_pairs(
        orthologs if orthologs is not None else pd.DataFrame({"gene_a": [], "gene_b": []}, dtype=str),
        aliases,
        across_species=True,
    )
    genes = transcripts.groupby("gene_id", as_index=False).agg(
        gene_name=("gene_name", "first"), species=("species", "first"), n_isoforms=("transcript_id", "size")
    )
    genes["homology_group"] = homology_groups(genes, pd.concat([paralog_edges, ortholog_edges]))
    genes["orthologs"] = ortholog_lists(genes["gene_id"], ortholog_edges)
    table = transcripts[["transcript_id", "gene_id"]].merge(genes, on="gene_id", validate="many_to_one")
    table["split"] = split_by_group(table["homology_group"].to_numpy(), cfg.fractions, cfg.seed)
    table = GROUPS.validate(table[list(GROUPS_ARROW.names)])
    genes_per_group = genes.groupby("homology_group").size()
    summary = PairsSummary(
        n_transcripts=len(table),
        n_genes=len(genes),
        n_genes_in_several_sets=int((transcripts.groupby("gene_id")["annotation"].nunique() > 1).sum())
        if "annotation" in transcripts
        else 0,
        n_multi_isoform_genes=int((genes["n_isoforms"] > 1).sum()),
        n_paralog_edges=int(paralog_edges["row"].nunique()),
        n_homology_groups=int(genes_per_group.size),
        largest_group_genes=int(genes_per_group.max()),
        split_transcripts={k: int(v) for k, v in table["split"].value_counts().sort_index().items()},
        paralog_pairs_dropped={EMPTY_SYMBOL: empty_symbol_rows, **paralog_dropped},
        species_genes={k: int(v) for k, v in genes["species"].value_counts().sort_index().items()},
        species_transcripts={k: int(v) for k, v in table["species"].value_counts().sort_index().items()},
        n_ortholog_edges=int(ortholog_edges["row"].nunique()),
        ortholog_pairs_dropped={EMPTY_NAME: empty_ortholog_rows, **ortholog_dropped} if orthologs is not None else {},
        n_genes_with_orthologs=int((genes["orthologs"].map(len) > 0).sum()),
    )
    return table, summary


def run(cfg: Config, paths: Paths) -> PairsSummary:
    """The pairs stage: read the validated transcripts, the paralog file and the ortholog table (data.orthologs,
    when set); write the groups table."""
    transcripts = TRANSCRIPTS.validate(pd.read_parquet(paths.transcripts))
    paralogs, empty_symbol_rows = read_paralog_rows(cfg.data.path(cfg.data.paralogs, paths.data_dir))
    orthologs, empty_ortholog_rows = None, 0
    if cfg.data.orthologs is not None:
        table_path = cfg.data.path(cfg.data.orthologs.table, paths.data_dir)
        orthologs, empty_ortholog_rows = read_ortholog_rows(table_path, cfg.data.orthologs)
    table, summary = build_groups(transcripts, paralogs, cfg.splits, empty_symbol_rows, orthologs, empty_ortholog_rows)
    paths.groups.parent.mkdir(parents=True, exist_ok=True)
    # An explicit Arrow schema: orthologs stays list<string> when every list is empty.
    pyarrow.parquet.write_table(
        pyarrow.Table.from_pandas(table, schema=GROUPS_ARROW, preserve_index=False), paths.groups
    )
    paths.pairs_summary.parent.mkdir(parents=True, exist_ok=True)
    paths.pairs_summary.write_text(json.dumps(asdict(summary), indent=2) + "\n")
    return summary
