"""The classification_metrics component in kfp's local runner: it logs sklearn's ROC curve and the confusion matrix
at the val-chosen thresholds from a probe output folder, and logs nothing (with the reason) for an absent task."""

# (No `from __future__ import annotations` here: kfp reads the real annotations of the pipeline below.)

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, roc_curve


def _predictions(folder: Path) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for term, threshold in (("GO:1", 0.4), ("GO:2", 0.6)):
        measured = rng.integers(0, 2, 40)
        predicted = np.clip(0.3 * measured + rng.random(40) * 0.7, 0, 1)
        rows.append(
            pd.DataFrame(
                {
                    "task": "go",
                    "model": "isoclr",
                    "term": term,
                    "measured": measured,
                    "predicted": predicted,
                    "threshold": threshold,
                }
            )
        )
    frame = pd.concat(rows, ignore_index=True)
    folder.mkdir()
    frame.to_csv(folder / "predictions.csv", index=False)
    return frame


@pytest.mark.slow
@pytest.mark.integration
def test_local_run_logs_roc_and_confusion_matrix(tmp_path, monkeypatch):
    import kfp.local
    from kfp import dsl
    from kfp.dsl import ClassificationMetrics, Dataset

    from components.classification_metrics.component import classification_metrics

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"))
    frame = _predictions(tmp_path / "probe")

    @dsl.pipeline
    def show(folder: str, task: str) -> ClassificationMetrics:
        results = dsl.importer(artifact_uri=folder, artifact_class=Dataset, reimport=False)
        return classification_metrics(task=task, model="isoclr", results=results.output).outputs["curves"]

    logged = show(folder=str(tmp_path / "probe"), task="go").output.metadata
    fpr, tpr, _ = roc_curve(frame["measured"], frame["predicted"])
    points = logged["confidenceMetrics"]
    assert np.allclose([p["falsePositiveRate"] for p in points], fpr)
    assert np.allclose([p["recall"] for p in points], tpr)
    expected = confusion_matrix(frame["measured"], frame["predicted"] >= frame["threshold"])
    assert [r["row"] for r in logged["confusionMatrix"]["rows"]] == expected.tolist()
    assert logged["thresholds"] == {"GO:1": 0.4, "GO:2": 0.6} and "pooled over 2 labels" in logged["about"]

    absent = show(folder=str(tmp_path / "probe"), task="not_probed").output.metadata
    assert "confidenceMetrics" not in absent and "no classification predictions" in absent["about"]
