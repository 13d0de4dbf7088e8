import pytest
import yaml
from typer.testing import CliRunner

from isoclr.cli import app
from tests.conftest import ROOT

runner = CliRunner()
STAGES = ["validate", "encode", "pairs", "train", "probe", "gate", "register"]


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


@pytest.mark.parametrize("stage", ["train", "probe", "finetune"])
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
