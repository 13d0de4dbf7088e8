import pytest
import yaml
from typer.testing import CliRunner

from isoclr.cli import app
from tests.conftest import ROOT

runner = CliRunner()
STAGES = ["validate", "pairs", "train", "probe", "gate", "register"]


@pytest.mark.parametrize("command", [*STAGES, "summary", "registry list", "registry rollback"])
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
