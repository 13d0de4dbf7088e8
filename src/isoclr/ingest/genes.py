"""Gene symbols and Ensembl transcript ids -> Ensembl gene ids, through an Entrez/symbol/Ensembl gene map.

The map (``data/go_human/genes_entrez_symbol_ensembl.tsv.gz``, from Bioconductor org.Hs.eg.db) has one
row per Entrez gene with its ``symbol`` and ``;``-joined unversioned ``ensembl_gene_ids`` and
``ensembl_transcript_ids``. An Entrez gene that lists several Ensembl genes (the reference-assembly
gene and its copies on alternate haplotypes and patches, which Ensembl numbered later) stands for the
smallest id. The rule: the Entrez gene that lists the transcript id gives its gene; otherwise a symbol
whose rows give exactly one gene gives it; otherwise no Ensembl id (an ambiguous symbol is not guessed).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from isoclr.gene_ids import unversioned
from isoclr.ingest.files import ValidationError

MAP_COLUMNS = ["symbol", "ensembl_gene_ids", "ensembl_transcript_ids"]


def read_gene_map(path: Path) -> pd.DataFrame:
    """The gene map's symbol and id columns (strings, empty where absent)."""
    try:
        table = pd.read_csv(path, sep="\t", usecols=MAP_COLUMNS, dtype=str, compression="infer")
    except (ValueError, OSError, EOFError) as err:
        raise ValidationError(f"{path}: cannot be read as a gene map with columns {MAP_COLUMNS} ({err})") from err
    return table.fillna("")


def _unique_gene(pairs: pd.DataFrame, key: str) -> pd.Series:
    """key -> its Ensembl gene, for the keys that name exactly one."""
    pairs = pairs[(pairs[key] != "") & (pairs["gene"] != "")].drop_duplicates([key, "gene"])
    single = pairs.groupby(key)["gene"].transform("size") == 1
    return pairs[single].set_index(key)["gene"]


def to_ensembl_genes(transcript_ids: pd.Series, symbols: pd.Series, genes: pd.DataFrame) -> pd.Series:
    """Per row: the Ensembl gene id of the transcript (unversioned) or else of the symbol; null where neither
    names exactly one gene."""
    first = genes["ensembl_gene_ids"].str.split(";").map(lambda ids: min(ids))
    by_gene = genes.assign(gene=first)
    by_symbol = _unique_gene(by_gene, "symbol")
    by_transcript = _unique_gene(
        by_gene.assign(transcript=by_gene["ensembl_transcript_ids"].str.split(";")).explode("transcript"),
        "transcript",
    )
    from_transcript = unversioned(transcript_ids).map(by_transcript)
    from_symbol = symbols.map(by_symbol)
    return from_transcript.where(from_transcript.notna(), from_symbol)
