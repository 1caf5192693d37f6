"""Compute settings: which device the heavy steps use, and how training is launched."""

from typing import Literal

import dagster as dg
from pydantic import Field

from assets.models.loading import pick_device


class ComputeSettings(dg.ConfigurableResource):
    """The accelerator for training, evaluation and merging, and the training launcher."""

    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' uses CUDA when torch sees a GPU, else the CPU."
    )
    training_launcher: Literal["subprocess", "torchrun", "in_process"] = Field(
        "subprocess",
        description="How qlora_adapter trains. 'subprocess': one process through Dagster Pipes, so a crash or "
        "a memory spike ends that process, not Dagster's (costs ~5 s of start-up); 'torchrun': "
        "`training_processes` data-parallel processes through Pipes (gloo on CPU, nccl on GPUs); "
        "'in_process': inside the Dagster step (debugging).",
    )
    training_processes: int = Field(
        2, ge=1, le=64, description="Processes per node for 'torchrun'; the optimiser step sums their gradients."
    )

    def resolved_device(self) -> str:
        return pick_device(self.device)
