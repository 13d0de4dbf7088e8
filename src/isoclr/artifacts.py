"""Every artifact's name, in one place.

:class:`Paths` says where each stage reads and writes. Its defaults are the
layout under ``outputs/`` that ``dvc.yaml`` declares (a test holds the two
together); the CLI's options, the Kubeflow components and the tests build a
:class:`Paths` instead of spelling file names themselves. :data:`STAGE_OUTPUTS`
and :data:`STAGE_INPUTS` name, per stage, the fields it writes and reads: the
stage runner stages the outputs and moves them into place whole.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

OUTPUTS = Path("outputs")

# Files inside the artifact folders.
MODEL_CHECKPOINT = "encoder.pt"  # in Paths.model: weights, config, provenance
MODEL_META = "meta.json"  # in Paths.model: the same metadata as JSON, for people and the registry
LAST_CHECKPOINT = "last.pt"  # in Paths.checkpoints: the resumable training state
PROBE_METRICS = "metrics.json"  # in Paths.probe: every score the gate and the report read
PROBE_TABLE = "table.md"
PROBE_REPORT = "report.html"
PROBE_PER_SEED = "per_seed.csv"
PROBE_LOW_DATA = "low_data.csv"
PROBE_TASKS = "tasks.json"
PROBE_PREDICTIONS = "predictions.csv"
PROBE_PLOTS = "plots"
STORE_INDEX = "index.parquet"  # in Paths.tracks
LATENT_SUMMARY = "latent.json"  # in Paths.latent: kNN label agreement, model vs random init, with CIs
LATENT_MAPS = "maps"  # in Paths.latent: t-SNE / UMAP PNGs
FINETUNE_SUMMARY = "finetune.json"  # in Paths.finetune: Pearson r and MSE by train fraction, pretrained vs scratch
FINETUNE_PER_SEED = "per_seed.csv"  # in Paths.finetune
FINETUNE_PLOTS = "plots"  # in Paths.finetune: the two curve panels per task
FINETUNE_REPORT = "report.html"  # in Paths.finetune: the table and the curves, self-contained (Kubeflow UI)


@dataclass(frozen=True)
class Paths:
    """Where the stages read and write; defaults are the ``dvc repro`` layout."""

    data_dir: Path | None = None  # input files named in params.yaml; None: data.dir there
    transcripts: Path = OUTPUTS / "transcripts.parquet"
    quarantine: Path = OUTPUTS / "quarantine.tsv"
    validate_summary: Path = OUTPUTS / "validate.json"
    tracks: Path = OUTPUTS / "tracks"
    groups: Path = OUTPUTS / "groups.parquet"
    pairs_summary: Path = OUTPUTS / "pairs.json"
    model: Path = OUTPUTS / "model"
    train_log: Path = OUTPUTS / "train_log.csv"
    train_summary: Path = OUTPUTS / "train.json"
    checkpoints: Path = OUTPUTS / "checkpoints"
    # The reconstruction arm: the same encoder trained with masked-nucleotide reconstruction on the same data.
    reconstruction_model: Path = OUTPUTS / "reconstruction" / "model"
    reconstruction_log: Path = OUTPUTS / "reconstruction" / "train_log.csv"
    reconstruction_summary: Path = OUTPUTS / "reconstruction" / "train.json"
    reconstruction_checkpoints: Path = OUTPUTS / "reconstruction" / "checkpoints"
    latent: Path = OUTPUTS / "latent"
    finetune: Path = OUTPUTS / "finetune"
    probe: Path = OUTPUTS / "probe"
    decision: Path = OUTPUTS / "gate.json"
    registration: Path = OUTPUTS / "registration.json"

    @classmethod
    def under(cls, root: Path, data_dir: Path | None = None) -> Paths:
        """The same names under another folder (tests, a Kubeflow task's workdir)."""
        moved = {
            f.name: Path(root) / getattr(cls(), f.name).relative_to(OUTPUTS)
            for f in dataclasses.fields(cls)
            if f.name != "data_dir"
        }
        return cls(data_dir=data_dir, **moved)

    @classmethod
    def task(cls, data_dir: Path | str | None = None, **given: Path | str) -> Paths:
        """For one Kubeflow task: the artifact paths kfp gives it, every other path under a fresh scratch folder
        (a task writes side files, such as a stage summary, that no later task reads)."""
        scratch = cls.under(Path(tempfile.mkdtemp(prefix="isoclr-task-")))
        return scratch.replace(data_dir=data_dir, **given)

    def replace(self, **changes: Path | None) -> Paths:
        """A copy with some paths changed (``None`` values are ignored, so CLI options can pass through)."""
        return dataclasses.replace(self, **{k: Path(v) for k, v in changes.items() if v is not None})

    @property
    def probe_metrics(self) -> Path:
        return self.probe / PROBE_METRICS

    @property
    def probe_table(self) -> Path:
        return self.probe / PROBE_TABLE

    @property
    def probe_report(self) -> Path:
        return self.probe / PROBE_REPORT


# Per stage, the Paths fields it writes. The runner writes them under a staging name and moves them
# into place only when the stage succeeds. Training checkpoints are left out on purpose: they must
# survive a killed run so that `--resume` can continue from them (they are written atomically).
STAGE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "validate": ("transcripts", "quarantine", "validate_summary"),
    "encode": ("tracks",),
    "pairs": ("groups", "pairs_summary"),
    "train": ("model", "train_log", "train_summary"),
    "reconstruct": ("reconstruction_model", "reconstruction_log", "reconstruction_summary"),
    "latent": ("latent",),
    "finetune": ("finetune",),
    "probe": ("probe",),
    "gate": ("decision",),
    "register": ("registration",),
}

# Per stage, the Paths fields it reads (besides the data files params.yaml names).
STAGE_INPUTS: dict[str, tuple[str, ...]] = {
    "validate": (),
    "encode": ("transcripts",),
    "pairs": ("transcripts",),
    "train": ("transcripts", "groups", "tracks"),
    "reconstruct": ("transcripts", "groups", "tracks"),
    "latent": ("transcripts", "groups", "tracks", "model"),
    "finetune": ("transcripts", "groups", "tracks", "model"),
    "probe": ("transcripts", "groups", "tracks", "model", "reconstruction_model"),
    "gate": ("probe",),
    "register": ("model", "probe", "decision"),
}

STAGES: tuple[str, ...] = tuple(STAGE_OUTPUTS)
