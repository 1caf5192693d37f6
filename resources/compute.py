"""Compute settings: which device the heavy steps use."""

from typing import Literal

import dagster as dg
from pydantic import Field

from assets.training.loading import pick_device


class ComputeSettings(dg.ConfigurableResource):
    """The accelerator for training, evaluation and merging."""

    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' uses CUDA when torch sees a GPU, else the CPU."
    )

    def resolved_device(self) -> str:
        return pick_device(self.device)
