"""The encoder, described as data (CNN or Mamba, with presets)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from isoclr.config.base import Strict

# Published encoder sizes, selected with ``model.size``; keys given beside
# ``size`` override the preset. "small": ~0.87M parameters, 256-d; "medium": ~7.2M, 512-d.
MODEL_PRESETS: dict[str, dict] = {
    "small": {
        "stem_filters": 64,
        "stem_kernel": 7,
        "stage_filters": [64, 128, 128, 256],
        "stage_blocks": [1, 1, 1, 1],
        "dilations": [1, 2, 4, 8],
        "kernel_size": 5,
        "projection_dims": [512, 512, 128],
    },
    "medium": {
        "stem_filters": 64,
        "stem_kernel": 7,
        "stage_filters": [64, 128, 256, 512],
        "stage_blocks": [3, 4, 6, 3],
        "dilations": [1, 2, 4, 8],
        "kernel_size": 3,
        "projection_dims": [2048, 2048, 512],
    },
}


# Orthrus's Mamba sizes, selected with ``model.mamba.size``: d_model 256 x 3 layers, and 512 x 4
# (x 6 with ``n_layers: 6``). mamba_tiny (64 x 2: 65,920 encoder parameters, ~0.12M with the default
# projection head) is smaller than the default CNN (218,400; ~0.28M with the head) for CPU runs on the
# sample; it is not an Orthrus size.
MAMBA_PRESETS: dict[str, dict] = {
    "mamba_tiny": {"d_model": 64, "n_layers": 2},
    "mamba_small": {"d_model": 256, "n_layers": 3},
    "mamba_base": {"d_model": 512, "n_layers": 4},
}


class MambaConfig(Strict):
    """The Mamba (selective state-space) encoder of ``model.arch: mamba`` (isoclr.mamba)."""

    size: Literal["mamba_tiny", "mamba_small", "mamba_base"] | None = None  # preset: fills d_model / n_layers not given
    d_model: int = Field(256, gt=0)
    n_layers: int = Field(3, gt=0)
    d_state: int = Field(16, gt=0)
    d_conv: int = Field(4, gt=0)
    expand: int = Field(2, gt=0)
    bidirectional: bool = False  # a second scan over each sequence reversed within its own length

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data):
        if isinstance(data, dict) and data.get("size") is not None:
            if data["size"] not in MAMBA_PRESETS:
                raise ValueError(f"model.mamba.size must be one of {sorted(MAMBA_PRESETS)}, got {data['size']!r}")
            data = {**MAMBA_PRESETS[data["size"]], **data}
        return data

    def encoder_arguments(self) -> dict:
        return self.model_dump(exclude={"size"})


class ModelConfig(Strict):
    """The encoder, described as data: the dilated residual CNN (stem, conv tower) or Mamba, and the
    projection head."""

    # cnn: the dilated residual CNN below; mamba: the Mamba encoder of ``mamba``
    arch: Literal["cnn", "mamba"] = "cnn"
    mamba: MambaConfig = MambaConfig()
    # preset: fills the architecture keys below that are not given explicitly
    size: Literal["small", "medium"] | None = None
    # stem
    stem_filters: int = Field(32, gt=0)
    stem_kernel: int = Field(7, gt=0)
    # conv tower: one entry per stage
    stage_filters: list[int] = [32, 64, 64, 128]
    stage_blocks: list[int] = [1, 1, 1, 1]
    dilations: list[int] = [1, 2, 4, 8]
    kernel_size: int = Field(5, gt=0)
    # projection head (training only)
    projection_dims: list[int] = Field([256, 128], min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data):
        if isinstance(data, dict) and data.get("size") is not None:
            if data["size"] not in MODEL_PRESETS:
                raise ValueError(f"model.size must be one of {sorted(MODEL_PRESETS)}, got {data['size']!r}")
            data = {**MODEL_PRESETS[data["size"]], **data}
        return data

    @model_validator(mode="after")
    def _stages_agree(self) -> ModelConfig:
        n = len(self.stage_filters)
        if not (len(self.stage_blocks) == len(self.dilations) == n) or n == 0:
            raise ValueError("stage_filters, stage_blocks and dilations need one entry per stage")
        if self.kernel_size % 2 == 0 or self.stem_kernel % 2 == 0:
            raise ValueError("kernel sizes must be odd so padding keeps the length")
        return self
