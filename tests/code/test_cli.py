import json

import pytest
import yaml
from typer.testing import CliRunner

from isoclr.cli import app
from tests.conftest import ROOT

runner = CliRunner()
STAGES = ["validate", "encode", "pairs", "train", "reconstruct", "probe", "gate", "register"]


@pytest.mark.parametrize("command", [*STAGES, "embed", "synth", "summary", "registry list", "registry rollback"])
def test_every_command_explains_itself(command):
    result = runner.invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_validate_help_names_inputs_and_outputs():
    text = runner.invoke(app, ["validate", "--help"]).output
    for word in ("GENCODE", "GTF", "quarantine", "--transcripts", "--params"):
        assert word in text


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("isoclr ")


def test_bad_params_fail_with_the_file_named(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["validate"]["max_length"] = -1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["gate", "--params", str(bad)])
    assert result.exit_code == 1
    assert "bad.yaml" in result.output and "max_length" in result.output


def test_summary_before_a_run_says_what_to_do(tmp_path):
    result = runner.invoke(app, ["summary", "--table", str(tmp_path / "none.md")])
    assert result.exit_code == 1
    assert "dvc repro" in result.output


def test_validate_stops_with_file_named_when_too_few_transcripts_remain(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"]["annotations"] = [
        {"name": "tiny", "format": "gencode_fasta", "fasta": "tiny.fa", "species": "homo_sapiens", "assembly": "GRCh38"}
    ]
    (tmp_path / "tiny.fa").write_text(
        ">ENST1|ENSG1|-|-|T-001|T|4|protein_coding|\nACGT\n>ENST2|ENSG2|-|-|U-001|U|9|protein_coding|\nACG\n"
    )
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "validate",
            "--params",
            str(params),
            "--data-dir",
            str(tmp_path),
            "--transcripts",
            str(out / "t.parquet"),
            "--quarantine",
            str(out / "q.tsv"),
            "--summary",
            str(out / "s.json"),
        ],
    )
    assert result.exit_code == 1
    assert "tiny.fa" in result.output
    assert not (out / "t.parquet").exists()
    quarantined = (out / "q.tsv").read_text()
    assert "ENST2" in quarantined and "truncated_record" in quarantined  # nothing lost: the reject is on file


@pytest.mark.parametrize("stage", ["train", "reconstruct", "probe", "finetune"])
def test_a_missing_track_store_says_to_run_encode(stage, tmp_path):
    result = runner.invoke(app, [stage, "--tracks", str(tmp_path / "tracks")])
    assert result.exit_code == 1
    assert (
        str(tmp_path / "tracks") in result.output
        and "isoclr encode" in result.output
        and "--no-tracks" in result.output
    )


def test_a_stale_track_store_fails_training_with_the_missing_ids(tmp_path):
    from isoclr.store import write_store
    from tests.helpers import synthetic_annotation

    transcripts, groups = synthetic_annotation()
    transcripts.to_parquet(tmp_path / "t.parquet")
    groups.to_parquet(tmp_path / "g.parquet")
    transcripts.iloc[1:].to_parquet(tmp_path / "older.parquet")
    write_store(tmp_path / "older.parquet", tmp_path / "tracks")
    result = runner.invoke(
        app,
        [
            "train",
            "--transcripts",
            str(tmp_path / "t.parquet"),
            "--groups",
            str(tmp_path / "g.parquet"),
            "--tracks",
            str(tmp_path / "tracks"),
            "--model-dir",
            str(tmp_path / "model"),
        ],
    )
    assert result.exit_code == 1
    assert transcripts["transcript_id"].iloc[0] in result.output and "isoclr encode" in result.output
    assert not (tmp_path / "model").exists()


def test_summary_says_per_task_whether_contrastive_beats_reconstruction(tmp_path):
    metrics = {
        "halflife": {"isoclr_minus_reconstruction": {"pearson_r": 0.11, "pearson_r_ci95": [0.04, 0.18]}},
        "mrl": {"isoclr_minus_reconstruction": {"pearson_r": -0.02, "pearson_r_ci95": [-0.09, 0.05]}},
        "coding": {"isoclr_minus_reconstruction": {"auroc": -0.06, "auroc_ci95": [-0.1, -0.02]}},
    }
    files = {
        "table": ("table.md", "# Linear probes\n"),
        "probe-metrics": ("metrics.json", json.dumps(metrics)),
        "decision": ("gate.json", json.dumps({"passed": True, "rules": []})),
        "record": ("registration.json", json.dumps({"registered": True})),
    }
    options = []
    for option, (name, text) in files.items():
        (tmp_path / name).write_text(text)
        options += [f"--{option}", str(tmp_path / name)]
    result = runner.invoke(app, ["summary", *options])
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert "contrastive vs reconstruction (paired, same splits; not gated):" in lines
    assert (
        "halflife: isoclr beats reconstruction (isoclr - reconstruction pearson_r +0.110 [+0.040, +0.180], 95% CI)"
        in lines
    )
    assert any(line.startswith("mrl: isoclr is within noise of reconstruction") for line in lines)
    assert any(
        line.startswith("coding: isoclr loses to reconstruction (isoclr - reconstruction auroc -0.060")
        for line in lines
    )

    (tmp_path / "metrics.json").write_text(json.dumps({"halflife": {"isoclr": {"pearson_r": 0.2}}}))  # an older run
    older = runner.invoke(app, ["summary", *options])
    assert older.exit_code == 0 and "no reconstruction baseline" in older.output
