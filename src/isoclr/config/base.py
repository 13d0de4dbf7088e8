"""The base of every config section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    # A typo in params.yaml must fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)
