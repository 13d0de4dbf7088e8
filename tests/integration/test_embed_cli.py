"""`isoclr embed` against file:// and gs:// registries: the CLI, the API and the pipeline's embedding agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from isoclr import Encoder, embed, registry
from isoclr.artifacts import MODEL_CHECKPOINT
from isoclr.checkpoint import FORMAT_VERSION, checkpoint_header
from isoclr.cli import app
from isoclr.config import ModelConfig
from isoclr.embed_inputs import NOT_EMBEDDED
from isoclr.embedding_files import read_embeddings
from tests.helpers import synthetic_annotation

pytestmark = pytest.mark.integration
runner = CliRunner()
TINY = ModelConfig(stem_filters=8, stage_filters=[8, 8, 16, 16], projection_dims=[32, 16])


def save_model(folder, seed: int = 0):
    """A model folder as the train stage writes it (random weights: the test is about plumbing, not training)."""
    folder.mkdir(parents=True)
    model = embed.random_encoder(TINY, seed)
    checkpoint = {"state_dict": model.state_dict(), **checkpoint_header(), "model_config": TINY.model_dump(mode="json")}
    torch.save(checkpoint, folder / MODEL_CHECKPOINT)
    return folder


def publish(uri: str, model_dir) -> str:
    version = registry.register(uri, model_dir, {}, {"note": "embed test"})
    registry.set_champion(uri, version)
    return version


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_annotation(seed=7)[0]


def test_cli_api_and_pipeline_agree_on_a_file_registry(tmp_path, table):
    uri = f"file://{tmp_path / 'registry'}"
    model_dir = save_model(tmp_path / "model")
    publish(uri, save_model(tmp_path / "older", seed=1))
    version = publish(uri, model_dir)  # the champion now
    table.to_parquet(tmp_path / "t.parquet")

    result = runner.invoke(
        app, ["embed", "--model", uri, "--table", str(tmp_path / "t.parquet"), "--out", str(tmp_path / "e.parquet")]
    )
    assert result.exit_code == 0, result.output
    assert version in result.output
    ids, cli = read_embeddings(tmp_path / "e.parquet")
    api = Encoder.from_registry(uri)  # version="champion"
    assert api.version == version and ids == table["transcript_id"].tolist()
    np.testing.assert_array_equal(cli, api.embed(table=table).pooled)
    pipeline = embed.embed_table(embed.load_encoder(model_dir), table, batch_size=embed.DEFAULT_BATCH_SIZE)
    np.testing.assert_array_equal(cli, pipeline)
    assert (tmp_path / "e.skipped.tsv").read_text().startswith("transcript_id\treason\taction")

    # .npy + ids, from a model folder instead of the registry.
    result = runner.invoke(
        app,
        ["embed", "--model", str(model_dir), "--table", str(tmp_path / "t.parquet"), "--out", str(tmp_path / "e.npy")],
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), cli)
    assert (tmp_path / "e.ids.txt").read_text().split() == ids
    # --precision bf16: the API's bf16 embedding; a precision that does not exist is refused.
    result = runner.invoke(
        app,
        [
            "embed",
            "--model",
            str(model_dir),
            "--table",
            str(tmp_path / "t.parquet"),
            "--out",
            str(tmp_path / "b.npy"),
            "--precision",
            "bf16",
        ],
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(
        np.load(tmp_path / "b.npy"), Encoder.from_dir(model_dir, precision="bf16").embed(table=table).pooled
    )
    result = runner.invoke(
        app,
        [
            "embed",
            "--model",
            str(model_dir),
            "--table",
            str(tmp_path / "t.parquet"),
            "--out",
            str(tmp_path / "c.npy"),
            "--precision",
            "int4",
        ],
    )
    assert result.exit_code == 1 and "precision must be one of" in result.output
    # An older version by id.
    older = next(v["version"] for v in registry.list_versions(uri) if v["version"] != version)
    np.testing.assert_array_equal(
        Encoder.from_registry(uri, version=older).embed(table=table).pooled,
        embed.embed_table(embed.random_encoder(TINY, 1), table, embed.DEFAULT_BATCH_SIZE),
    )


def test_unembeddable_sequences_go_to_the_side_file(tmp_path, table):
    model_dir = save_model(tmp_path / "model")
    fasta = tmp_path / "mine.fa"
    fasta.write_text(">good one\n" + "ACGT" * 30 + "\n>bad\nACGTQQ\n>empty\n\n>long\n" + "A" * 500 + "\n")
    args = [
        "embed",
        "--model",
        str(model_dir),
        "--fasta",
        str(fasta),
        "--out",
        str(tmp_path / "o.parquet"),
        "--max-length",
        "400",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 transcript(s) not embedded" in result.output and "o.skipped.tsv" in result.output
    skipped = pd.read_csv(tmp_path / "o.skipped.tsv", sep="\t")
    expected = dict.fromkeys(["bad", "empty", "long"], NOT_EMBEDDED)
    assert dict(zip(skipped["transcript_id"], skipped["action"], strict=True)) == expected
    assert read_embeddings(tmp_path / "o.parquet")[0] == ["good"]
    assert runner.invoke(app, [*args, "--strict"]).exit_code == 2
    # Nothing embeddable: an error, not an empty file.
    fasta.write_text(">bad\nACGTQQ\n")
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "no transcript could be embedded" in result.output


def test_a_model_from_an_incompatible_version_is_refused_by_the_cli(tmp_path):
    model_dir = save_model(tmp_path / "model")
    checkpoint = torch.load(model_dir / MODEL_CHECKPOINT, weights_only=True)
    torch.save({**checkpoint, "format_version": FORMAT_VERSION + 1}, model_dir / MODEL_CHECKPOINT)
    (tmp_path / "s.fa").write_text(">a\nACGT\n")
    result = runner.invoke(
        app,
        ["embed", "--model", str(model_dir), "--fasta", str(tmp_path / "s.fa"), "--out", str(tmp_path / "o.parquet")],
    )
    assert result.exit_code == 1 and f"checkpoint format {FORMAT_VERSION + 1}" in result.output
    assert not (tmp_path / "o.parquet").exists()


def test_from_registry_on_gcs(tmp_path, table, gcs_bucket):
    uri = f"gs://{gcs_bucket}/models"
    model_dir = save_model(tmp_path / "model")
    version = publish(uri, model_dir)
    encoder = Encoder.from_registry(uri)
    assert encoder.version == version
    np.testing.assert_array_equal(
        encoder.embed(table=table).pooled,
        embed.embed_table(embed.load_encoder(model_dir), table, embed.DEFAULT_BATCH_SIZE),
    )
