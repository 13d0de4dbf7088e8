import pandas as pd
import pytest

from isoclr.config import SplitsConfig
from isoclr.pairs import build_groups, homology_groups, read_paralogs

NO_EDGES = pd.DataFrame({"gene_a": [], "gene_b": []}, dtype=str)


def _transcripts(rows):
    return pd.DataFrame(rows, columns=["transcript_id", "gene_id", "gene_name"]).assign(species="homo_sapiens")


def test_paralog_pairs_are_closed_transitively():
    rows = [("t1", "g1", "A"), ("t2", "g2", "B"), ("t3", "g3", "C"), ("t4", "g4", "D")]
    paralogs = pd.DataFrame({"gene_A": ["A", "B", "X"], "gene_B": ["B", "C", "D"]})
    table, summary = build_groups(_transcripts(rows), paralogs, SplitsConfig())
    labels = table.set_index("gene_id")["homology_group"]
    assert labels["g1"] == labels["g2"] == labels["g3"]  # A~B, B~C
    assert labels["g4"] != labels["g1"]  # X is not in the annotation, so D stays alone
    assert summary.n_paralog_edges == 2


def test_genes_without_symbol_stay_alone_and_labels_are_stable():
    genes = pd.DataFrame({"gene_id": ["XLOC_2", "XLOC_1"], "gene_name": [None, None], "species": "homo_sapiens"})
    labels = homology_groups(genes, NO_EDGES)
    assert labels.sort_index().tolist() == ["hg000001", "hg000000"]  # numbered in gene-id order


def test_one_symbol_on_two_gene_ids_joins_one_group():
    genes = pd.DataFrame(
        {"gene_id": ["ENSG1", "ENSG1_PAR_Y"], "gene_name": ["SHOX", "SHOX"], "species": "homo_sapiens"}
    )
    labels = homology_groups(genes, NO_EDGES)
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


def _sets(rows):
    table = pd.DataFrame(rows, columns=["transcript_id", "gene_id", "gene_name", "annotation"])
    return table.assign(species="homo_sapiens")


def test_a_gene_in_two_sets_forms_one_isoform_group():
    table = _sets(
        [
            ("ENST1.1", "ENSG00000000001.5", "ABC", "gencode"),  # versioned Ensembl id
            ("ENST2.1", "ENSG00000000001.5", "ABC", "gencode"),
            ("ENST3", "ENSG00000000001", "ABC", "table"),  # the same gene, unversioned
            ("TCONS_1", "XLOC_1", "ABC", "cufflinks"),  # no Ensembl id: joined by symbol
            ("TCONS_2", "XLOC_2", "ABC", "cufflinks"),
            ("TCONS_3", "XLOC_3", "DEF", "cufflinks"),  # symbol of no Ensembl gene: XLOC_3 and DEF join
            ("ENST9", "DEF", "DEF", "table"),
            ("ENST4.1", "ENSG00000000002.1", "ABC", "gencode"),  # a second Ensembl gene named ABC ...
            ("ENST5.1", "ENSG00000000003.1", "GHI", "gencode"),
            ("TCONS_4", "XLOC_4", None, "cufflinks"),  # no symbol, no Ensembl id: alone
        ]
    )
    groups, summary = build_groups(table, pd.DataFrame({"gene_A": [], "gene_B": []}), SplitsConfig())
    gene = groups.set_index("transcript_id")["gene_id"]
    # ... makes ABC ambiguous: the XLOCs named ABC then join neither Ensembl gene, only each other
    assert gene[["ENST1.1", "ENST2.1", "ENST3"]].tolist() == ["ENSG00000000001"] * 3
    assert gene["ENST4.1"] == "ENSG00000000002"
    assert gene["TCONS_1"] == gene["TCONS_2"] == "XLOC_1"
    assert gene["TCONS_3"] == gene["ENST9"] == "DEF"
    assert gene["TCONS_4"] == "XLOC_4" and gene["ENST5.1"] == "ENSG00000000003"
    assert groups.set_index("transcript_id").loc["ENST3", "n_isoforms"] == 3
    assert summary.n_genes == 6 and summary.n_genes_in_several_sets == 2


def test_a_symbol_of_one_ensembl_gene_joins_it():
    table = _sets(
        [
            ("ENST1.1", "ENSG00000000001.5", "ABC", "gencode"),
            ("TCONS_1", "XLOC_1", "ABC", "cufflinks"),
            ("ENST3", "ABC", "ABC", "table"),  # a symbol the gene map could not place
        ]
    )
    groups, summary = build_groups(table, pd.DataFrame({"gene_A": [], "gene_B": []}), SplitsConfig())
    assert set(groups["gene_id"]) == {"ENSG00000000001"} and groups["n_isoforms"].tolist() == [3, 3, 3]
    assert summary.n_genes_in_several_sets == 1


def test_dropped_paralog_pairs_are_counted_per_reason():
    rows = [(f"t{g}", f"g{g}", f"S{g}") for g in range(6)] + [("t6", "g6", None)]
    paralogs = pd.DataFrame(
        {"gene_A": ["S0", "S1", "X1", "X2", "S3", "X3"], "gene_B": ["S1", "X9", "S2", "X4", "S4", "X3"]}
    )
    _, summary = build_groups(_transcripts(rows), paralogs, SplitsConfig(), empty_symbol_rows=2)
    assert summary.n_paralog_edges == 2  # S0~S1, S3~S4
    assert summary.paralog_pairs_dropped == {
        "empty_symbol": 2,
        "one_symbol_not_in_annotation": 2,  # S1~X9, X1~S2
        "both_symbols_not_in_annotation": 2,  # X2~X4, X3~X3
        **dict.fromkeys(["one_id_not_in_annotation", "both_ids_not_in_annotation"], 0),
        **dict.fromkeys(["symbol_and_id_not_in_annotation", "cross_species"], 0),
    }


def test_pairs_stage_counts_every_paralog_row_in_pairs_json(tmp_path):
    import json

    from isoclr import stage
    from isoclr.artifacts import Paths
    from isoclr.pairs import DROP_REASONS
    from tests.helpers import synthetic_annotation, tiny_config

    transcripts, _ = synthetic_annotation()  # genes GENE0..GENE9
    data = tmp_path / "data"
    data.mkdir()
    (data / "pairs.csv").write_text(
        "gene_A,gene_B\nGENE0,GENE1\nGENE2,GENE3\nGENE1,NOTHERE\nGONE1,GONE2\n,GENE4\nGENE5,\nGENE6,GENE7\n"
    )
    table = tmp_path / "transcripts.parquet"
    transcripts.to_parquet(table)
    cfg = tiny_config()
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"paralogs": "pairs.csv"})})
    paths = Paths.under(tmp_path / "out", data_dir=data).replace(transcripts=table)
    result = stage.run("pairs", cfg, paths)
    written = json.loads(paths.pairs_summary.read_text())
    dropped = {"empty_symbol": 2, "one_symbol_not_in_annotation": 1, "both_symbols_not_in_annotation": 1}
    assert written["paralog_pairs_dropped"] == {**dict.fromkeys(DROP_REASONS, 0), **dropped}
    assert written["n_paralog_edges"] == 3
    assert written["n_paralog_edges"] + sum(dropped.values()) == 7  # every row of the file accounted for
    assert '"one_symbol_not_in_annotation": 1' in result.summary()


def test_read_paralog_rows_counts_blank_symbols(tmp_path):
    from isoclr.pairs import read_paralog_rows

    path = tmp_path / "pairs.csv"
    path.write_text("gene_A,gene_B\nA,B\n,C\nD,\nE,F\n")
    pairs, blank = read_paralog_rows(path)
    assert pairs.values.tolist() == [["A", "B"], ["E", "F"]]
    assert blank == 2
