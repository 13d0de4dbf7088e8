"""The validate stage through the stage runner: outputs, metrics, and the limits that stop a run."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow
import pyarrow.parquet
import pytest

from isoclr import stage
from isoclr.artifacts import Paths
from isoclr.config import MetricsConfig
from isoclr.ingest import ValidationError
from isoclr.metrics import StageRun
from isoclr.schemas import TRANSCRIPTS, TRANSCRIPTS_ARROW
from isoclr.validate import ValidateResult, run
from tests.helpers import (
    GOOD_GTF,
    SEQS,
    fasta,
    gencode_annotation,
    gencode_header,
    gencode_records,
    gtf_annotation,
    make_config,
    rand_seq,
)


def paths_of(tmp_path) -> Paths:
    """Outputs under tmp_path/out, inputs in tmp_path."""
    return Paths.under(tmp_path / "out", data_dir=tmp_path)


def test_validate_writes_tables_and_summary(tmp_path):
    anns = [gtf_annotation(tmp_path, GOOD_GTF, fasta(SEQS)), gencode_annotation(tmp_path, fasta(gencode_records()))]
    paths = paths_of(tmp_path)
    result = stage.run("validate", make_config(anns, max_quarantine_fraction=0.6), paths)
    assert isinstance(result, ValidateResult)
    assert result.n_transcripts == 4 + 4
    assert result.n_quarantined == 6
    assert result.by_rule["truncated_record"] == 1
    assert result.to_dict()["by_rule"] == result.by_rule

    table = pyarrow.parquet.read_table(paths.transcripts)
    assert table.schema.field("exon_ends").type == pyarrow.list_(pyarrow.int64())
    assert table.schema.field("cds_start").type == pyarrow.int64()
    assert table.schema.remove_metadata() == TRANSCRIPTS_ARROW
    frame = table.to_pandas().set_index("transcript_id")
    assert list(frame.loc["TM"].exon_ends) == [7, 19]
    assert frame.loc["ENST1.1"].exon_ends is None
    # Written while the schema checked it, the file holds the checked frame, down to the pandas dtypes it records.
    checked = TRANSCRIPTS.validate(frame.reset_index())
    checked = pyarrow.Table.from_pandas(checked, schema=TRANSCRIPTS_ARROW, preserve_index=False)
    assert table.schema.pandas_metadata["columns"] == checked.schema.pandas_metadata["columns"]

    quarantine = pd.read_csv(paths.quarantine, sep="\t")
    assert list(quarantine.columns) == ["file", "record", "rule", "detail", "action"]
    assert len(quarantine) == 6

    summary = json.loads(paths.validate_summary.read_text())
    assert summary["by_annotation"]["gc"]["by_rule"]["truncated_record"] == 1
    assert summary["by_annotation"]["toy"]["n_transcripts"] == 4
    assert summary["by_annotation"]["toy"]["cds_source"] == {"annotated": 3, "none": 1}  # TN is non-coding
    assert summary["n_transcripts"] == 8
    assert not list((tmp_path / "out").glob(f"{stage.STAGING_PREFIX}*"))  # nothing left staged


def test_result_records_its_metrics_and_says_what_it_did():
    result = ValidateResult(n_transcripts=8, n_quarantined=3, by_rule={"too_long": 2, "duplicate_id": 1})
    meter = StageRun(MetricsConfig(), "validate")
    result.record(meter)
    value = meter.registry.get_sample_value
    assert value("isoclr_records_validated_total") == 8
    assert value("isoclr_records_quarantined_total", {"rule": "too_long"}) == 2
    assert value("isoclr_records_quarantined_total", {"rule": "duplicate_id"}) == 1
    assert result.summary().splitlines() == ["8 transcripts; 3 quarantined", "  duplicate_id: 1", "  too_long: 2"]


def test_data_dir_defaults_to_the_one_in_params(tmp_path):
    ann = gtf_annotation(tmp_path, GOOD_GTF, fasta(SEQS))
    cfg = make_config([ann])
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"dir": str(tmp_path)})})
    result = stage.run("validate", cfg, Paths.under(tmp_path / "out"))
    assert result.n_transcripts == 4
    assert json.loads((tmp_path / "out" / "validate.json").read_text())["by_annotation"]["toy"]["files"] == [
        str(tmp_path / "toy.gtf"),
        str(tmp_path / "toy.fa"),
    ]


def test_empty_quarantine_still_has_header(tmp_path):
    ann = gtf_annotation(tmp_path, GOOD_GTF, fasta(SEQS))
    paths = paths_of(tmp_path)
    stage.run("validate", make_config([ann]), paths)
    assert paths.quarantine.read_text().strip() == "file\trecord\trule\tdetail\taction"


def test_duplicate_ids_across_annotation_sets(tmp_path):
    first = gtf_annotation(tmp_path, GOOD_GTF, fasta(SEQS), name="first")
    second = gtf_annotation(tmp_path, GOOD_GTF, fasta(SEQS), name="second")
    paths = paths_of(tmp_path)
    result = stage.run("validate", make_config([first, second], max_quarantine_fraction=1.0), paths)
    assert result.n_transcripts == 4 and result.by_rule == {"duplicate_id": 4}
    quarantine = pd.read_csv(paths.quarantine, sep="\t")
    assert set(quarantine.file.str.rsplit("/", n=1).str[-1]) == {"second.fa"}
    assert (pd.read_parquet(paths.transcripts).annotation == "first").all()


def test_too_few_transcripts_stops_and_names_the_file(tmp_path):
    """Called directly, the stage writes the report to look at and removes a stale table before it stops."""
    ann = gencode_annotation(tmp_path, fasta(gencode_records()))
    paths = paths_of(tmp_path)
    paths.transcripts.parent.mkdir(parents=True)
    paths.transcripts.write_text("from an earlier run")
    with pytest.raises(ValidationError) as err:
        run(make_config([ann], min_transcripts=10), paths)
    message = str(err.value)
    assert "gc.fa" in message and "only 4 usable" in message and "min_transcripts" in message
    assert "truncated_record" in message
    assert not paths.transcripts.exists()  # no stale table for the next stage to read
    assert len(pd.read_csv(paths.quarantine, sep="\t")) == 6  # the report is written to look at


def test_large_quarantined_share_stops_the_stage_and_names_the_rule(tmp_path):
    records = [(gencode_header(f"ENST{i}", "ENSG1", 40), rand_seq(30, i)) for i in range(6)]
    records += [(gencode_header("ENST9", "ENSG2", 30), rand_seq(30, 9))]
    ann = gencode_annotation(tmp_path, fasta(records))
    paths = paths_of(tmp_path)
    with pytest.raises(ValidationError, match=r"gc\.fa.*6 of 7.*max_quarantine_fraction.*truncated_record \(6\)"):
        stage.run("validate", make_config([ann], max_quarantine_fraction=0.2), paths)
    assert not paths.transcripts.exists()


def test_a_missing_input_is_one_error_line(tmp_path, capsys):
    ann = gencode_annotation(tmp_path, fasta(gencode_records()))
    (tmp_path / "gc.fa").unlink()
    with pytest.raises(SystemExit) as exit_:
        stage.execute("validate", make_config([ann]), paths_of(tmp_path))
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "gc.fa: file not found" in err
