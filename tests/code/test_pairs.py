import pandas as pd
import pytest

from isoclr.config import SplitsConfig
from isoclr.pairs import build_groups, homology_groups, read_paralogs


def _transcripts(rows):
    return pd.DataFrame(rows, columns=["transcript_id", "gene_id", "gene_name"])


def test_paralog_pairs_are_closed_transitively():
    genes = pd.DataFrame({"gene_id": ["g1", "g2", "g3", "g4"], "gene_name": ["A", "B", "C", "D"]})
    paralogs = pd.DataFrame({"gene_A": ["A", "B", "X"], "gene_B": ["B", "C", "D"]})
    labels, used = homology_groups(genes, paralogs)
    assert labels[0] == labels[1] == labels[2]  # A~B, B~C
    assert labels[3] != labels[0]  # X is not in the annotation, so D stays alone
    assert used == 2


def test_genes_without_symbol_stay_alone_and_labels_are_stable():
    genes = pd.DataFrame({"gene_id": ["XLOC_2", "XLOC_1"], "gene_name": [None, None]})
    labels, used = homology_groups(genes, pd.DataFrame({"gene_A": [], "gene_B": []}))
    assert used == 0
    assert labels.sort_index().tolist() == ["hg000001", "hg000000"]  # numbered in gene-id order


def test_one_symbol_on_two_gene_ids_joins_one_group():
    genes = pd.DataFrame({"gene_id": ["ENSG1", "ENSG1_PAR_Y"], "gene_name": ["SHOX", "SHOX"]})
    labels, _ = homology_groups(genes, pd.DataFrame({"gene_A": [], "gene_B": []}))
    assert labels.nunique() == 1


def test_groups_table_isoforms_and_splits():
    rows = [(f"t{g}_{i}", f"g{g}", f"S{g}") for g in range(60) for i in range(1 + g % 3)]
    paralogs = pd.DataFrame({"gene_A": ["S0", "S1"], "gene_B": ["S1", "S2"]})
    table, summary = build_groups(_transcripts(rows), paralogs, SplitsConfig())
    assert len(table) == len(rows)
    assert table.set_index("gene_id").loc["g2", "n_isoforms"].iloc[0] == 3
    family = table[table["gene_id"].isin(["g0", "g1", "g2"])]
    assert family["homology_group"].nunique() == 1
    assert family["split"].nunique() == 1
    assert summary.n_genes == 60
    assert summary.largest_group_genes == 3
    assert sum(summary.split_transcripts.values()) == len(rows)


def test_read_paralogs_names_the_file_when_columns_are_missing(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("left,right\nA,B\n")
    with pytest.raises(ValueError, match="gene_A"):
        read_paralogs(path)
