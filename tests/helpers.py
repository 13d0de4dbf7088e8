"""Test helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

from isoclr.config import Config
from tests.conftest import tiny_params

# --------------------------------------------------------------------------- registry and the register stage

MODEL_FILES = {"encoder.pt": b"\x00weights" * 500, "meta.json": b'{"out_dim": 16}', "sub/extra.txt": b"nested"}


def make_model(root: Path, tag: str) -> Path:
    """A model folder (nested files included) whose bytes differ by ``tag``."""
    for name, data in MODEL_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data + tag.encode())
    return root


def registry_config(uri: str) -> Config:
    """The tiny test config with its registry at ``uri``."""
    params = tiny_params()
    params["registry"] = {"uri": uri}
    return Config.model_validate(params)


def write_inputs(folder: Path, passed: bool) -> tuple[Path, Path]:
    """Probe metrics and a gate decision (``passed`` or not) in ``folder``: (metrics.json, gate.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics = folder / "metrics.json"
    metrics.write_text(json.dumps({"halflife": {"isoclr": {"pearson_r": 0.3}}}))
    decision = folder / "gate.json"
    rule = {"task": "mrl", "metric": "pearson_r", "passed": passed, "reason": "ok" if passed else "metric missing"}
    decision.write_text(json.dumps({"passed": passed, "rules": [rule]}))
    return metrics, decision
