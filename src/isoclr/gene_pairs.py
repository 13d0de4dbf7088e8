"""Gene-pair tables (paralogs within a species, orthologs across species): read them, and resolve their names.

A pair table names genes the way its source does: Ensembl gene ids (``ENSG00000000003`` or
``ENSG00000000003.14``), the annotation's own gene ids (``XLOC_1``) or symbols. :func:`gene_aliases` lists every
name a joined gene answers to, within its species, and :func:`link_pairs` turns pairs of names into edges
between joined genes, counting each pair that links none with its reason, so every row read is accounted for.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from isoclr.config.data import OrthologTable
from isoclr.errors import IsoclrError, MissingInputError
from isoclr.gene_ids import ENSEMBL_GENE, ensembl_gene_keys, unversioned

ORTHOLOGS = pa.DataFrameSchema(
    {"gene_a": pa.Column(str), "gene_b": pa.Column(str)},
    coerce=True,
    name="ortholog pairs",
)

# Why a pair links no two genes. A name that looks like an Ensembl gene id is an id, any other a symbol (an
# annotation's own non-Ensembl id, e.g. XLOC_1, also counts as a symbol when missing: the two look alike).
EMPTY_NAME = "empty_name"  # a blank value (orthologs; the paralog reader's count is empty_symbol)
ONE_SYMBOL_MISSING = "one_symbol_not_in_annotation"
BOTH_SYMBOLS_MISSING = "both_symbols_not_in_annotation"
ONE_ID_MISSING = "one_id_not_in_annotation"
BOTH_IDS_MISSING = "both_ids_not_in_annotation"
SYMBOL_AND_ID_MISSING = "symbol_and_id_not_in_annotation"
NOT_IN_ANNOTATION = (ONE_SYMBOL_MISSING, BOTH_SYMBOLS_MISSING, ONE_ID_MISSING, BOTH_IDS_MISSING, SYMBOL_AND_ID_MISSING)
CROSS_SPECIES = "cross_species"  # a paralog pair whose genes are of two species
SAME_SPECIES = "same_species"  # an ortholog pair whose genes are of one species
ORTHOLOG_DROP_REASONS = (EMPTY_NAME, *NOT_IN_ANNOTATION, SAME_SPECIES)


class OrthologError(IsoclrError, ValueError):
    """The ortholog table cannot be read, or lacks the columns data.orthologs names."""


def text_compression(path: Path) -> str | None:
    """pandas' ``compression`` for a pair table: gzip told by its first bytes, not by the file's name."""
    with path.open("rb") as fh:
        return "gzip" if fh.read(2) == b"\x1f\x8b" else None


def read_ortholog_rows(path: Path, spec: OrthologTable) -> tuple[pd.DataFrame, int]:
    """Gene pairs (columns gene_a, gene_b) of an ortholog table, and how many rows it dropped for a blank value.

    ``spec.columns`` name the two columns by header name or by 0-based position (the only way without a header).
    """
    if not path.is_file():
        raise MissingInputError(f"{path}: ortholog table not found (data.orthologs.table in params.yaml)")
    wanted = {"gene_a": spec.columns.get("gene_a"), "gene_b": spec.columns.get("gene_b")}
    rule = f"a {'headed' if spec.header else 'headerless'} table with columns {wanted} (data.orthologs)"
    names = [c for c in wanted.values() if isinstance(c, str)]
    if (
        None in wanted.values()
        or (names and not spec.header)
        or any(isinstance(c, int) and c < 0 for c in wanted.values())
    ):
        raise OrthologError(f"{path}: needs {rule}: gene_a and gene_b, as 0-based positions when there is no header")
    try:
        compression = text_compression(path)
        table = pd.read_csv(
            path,
            sep=spec.sep,
            header=0 if spec.header else None,
            dtype=str,
            compression=compression,
            encoding_errors="replace",
            index_col=False,
            keep_default_na=False,  # "NA" may be a symbol; blanks are found below
        )
        pairs = pd.DataFrame(
            {key: table.iloc[:, c] if isinstance(c, int) else table[c] for key, c in wanted.items()}
        ).apply(lambda col: col.str.strip())
        kept = pairs[(pairs != "").all(axis=1) & pairs.notna().all(axis=1)].reset_index(drop=True)
        return ORTHOLOGS.validate(kept), len(pairs) - len(kept)
    except (ValueError, KeyError, IndexError, OSError, EOFError, zlib.error, pa.errors.SchemaError) as err:
        raise OrthologError(f"{path}: cannot be read as {rule} ({type(err).__name__}: {err})") from err


def gene_aliases(transcripts: pd.DataFrame, joined: pd.Series) -> pd.DataFrame:
    """Every name of every joined gene, within its species.

    Args:
        transcripts: columns species, gene_id (the annotation's own) and gene_name (may be null).
        joined: per transcript, its joined gene id (:func:`isoclr.pairs.joined_gene_ids`).
    Returns:
        columns key, kind (ensembl: an unversioned Ensembl id; id: a non-Ensembl gene id, the annotation's
        or the joined one; symbol), species, gene (the joined id); one row per distinct alias.
    """
    rows = transcripts[["species", "gene_id", "gene_name"]].assign(gene=joined.to_numpy()).drop_duplicates()
    own, joined_ids = (
        rows[["species", "gene_id", "gene"]],
        rows.assign(gene_id=rows["gene"])[["species", "gene_id", "gene"]],
    )
    ids = pd.concat([own, joined_ids]).drop_duplicates(ignore_index=True)
    ensembl = ensembl_gene_keys(ids["gene_id"])
    parts = [
        ids.loc[ensembl.notna()].assign(key=ensembl.dropna(), kind="ensembl"),
        ids.loc[ensembl.isna()].assign(key=ids["gene_id"], kind="id"),
        rows.dropna(subset=["gene_name"]).assign(key=rows["gene_name"], kind="symbol"),
    ]
    columns = ["key", "kind", "species", "gene"]
    return pd.concat([p[columns] for p in parts], ignore_index=True).drop_duplicates(ignore_index=True)


def resolve(values: pd.Series, aliases: pd.DataFrame) -> pd.DataFrame:
    """The genes each name means: columns value, species, gene (several rows where a name means several genes).

    An Ensembl-looking value is matched by its unversioned id only; any other value by gene id, else (within a
    species where no gene has that id) by symbol.
    """
    values = pd.Series(pd.unique(values.astype(str)), dtype=str)
    is_ensembl = values.str.match(ENSEMBL_GENE)
    asked = pd.DataFrame(
        {
            "value": values,
            "key": unversioned(values).where(is_ensembl, values),
            "kind": np.where(is_ensembl, "ensembl", "id"),
        }
    )
    by_id = asked.merge(aliases, on=["key", "kind"])
    by_symbol = asked[~is_ensembl].assign(kind="symbol").merge(aliases, on=["key", "kind"])
    taken = pd.MultiIndex.from_frame(by_id[["value", "species"]])
    by_symbol = by_symbol[~pd.MultiIndex.from_frame(by_symbol[["value", "species"]]).isin(taken)]
    found = pd.concat([by_id, by_symbol], ignore_index=True)
    return found[["value", "species", "gene"]].drop_duplicates(ignore_index=True)


def _missing_reason(a_missing: pd.Series, b_missing: pd.Series, a_id: pd.Series, b_id: pd.Series) -> pd.Series:
    """Per pair with a name the annotation lacks: one of NOT_IN_ANNOTATION (ids: Ensembl-looking names)."""
    both = a_missing & b_missing
    one_is_id = (a_missing & a_id) | (b_missing & b_id)
    reason = pd.Series(np.where(one_is_id, ONE_ID_MISSING, ONE_SYMBOL_MISSING), index=a_missing.index)
    kinds = a_id.astype(int) + b_id.astype(int)
    both_reason = np.select([kinds == 2, kinds == 1], [BOTH_IDS_MISSING, SYMBOL_AND_ID_MISSING], BOTH_SYMBOLS_MISSING)
    return reason.where(~both, pd.Series(both_reason, index=a_missing.index))


def link_pairs(pairs: pd.DataFrame, aliases: pd.DataFrame, across_species: bool) -> tuple[pd.DataFrame, dict[str, int]]:
    """Edges between joined genes named by ``pairs``, and the pairs that made none, per reason.

    Args:
        pairs: columns gene_a, gene_b (names, no blanks).
        aliases: :func:`gene_aliases`.
        across_species: orthologs (True: an edge joins genes of two species) or paralogs (False: of one).
    Returns:
        (columns row (the pair's position in ``pairs``), gene_a, gene_b: one row per edge, several where a name
        means several genes; dropped pairs per reason, every reason present: NOT_IN_ANNOTATION, then
        same_species (orthologs) or cross_species (paralogs)).
    """
    pairs = pairs[["gene_a", "gene_b"]].astype(str).reset_index(drop=True)
    found = resolve(pd.concat([pairs["gene_a"], pairs["gene_b"]]), aliases)
    sides = [
        pairs[[col]].rename(columns={col: "value"}).rename_axis("row").reset_index().merge(found, on="value")
        for col in ("gene_a", "gene_b")
    ]
    candidates = sides[0].merge(sides[1], on="row", suffixes=("_a", "_b"))
    other_species = candidates["species_a"] != candidates["species_b"]
    edges = candidates[other_species if across_species else ~other_species]
    edges = edges[["row", "gene_a", "gene_b"]].drop_duplicates(ignore_index=True)

    a_missing, b_missing = ~pairs.index.isin(sides[0]["row"]), ~pairs.index.isin(sides[1]["row"])
    a_missing, b_missing = pd.Series(a_missing, index=pairs.index), pd.Series(b_missing, index=pairs.index)
    missing = a_missing | b_missing
    reason = _missing_reason(
        a_missing[missing],
        b_missing[missing],
        pairs.loc[missing, "gene_a"].str.match(ENSEMBL_GENE),
        pairs.loc[missing, "gene_b"].str.match(ENSEMBL_GENE),
    )
    unlinked = int((~missing & ~pairs.index.isin(edges["row"])).sum())
    dropped = {r: int((reason == r).sum()) for r in NOT_IN_ANNOTATION}
    dropped[SAME_SPECIES if across_species else CROSS_SPECIES] = unlinked
    return edges, dropped
