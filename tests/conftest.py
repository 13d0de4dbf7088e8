"""Shared fixtures: the repository's own params.yaml, shrunk for fast end-to-end runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"


def tiny_params() -> dict:
    """params.yaml with training and probing cut to seconds, and gates any model passes.

    The science settings stay as shipped; only sizes shrink, so end-to-end tests
    exercise the same code paths as `make run`.
    """
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"].update(stem_filters=8, stage_filters=[8, 8, 16, 16], projection_dims=[32, 16])
    params["train"].update(steps=3, batch_genes=8, max_length=512, warmup_steps=1)
    params["probe"]["seeds"] = 2
    for task in params["probe"]["tasks"]:
        task["max_rows"] = 400
    for rule in params["gate"]["rules"]:
        rule["min"] = -1.0
    return params


@pytest.fixture
def sample_data() -> Path:
    if not (DATA / "gencode_v28_chr1p_transcripts.fa").exists():
        pytest.skip("sample data missing: run `dvc pull` (make test does)")
    return DATA
