"""Compute settings: which device the heavy steps use, and the trainer launcher (how training runs)."""

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

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
        "a memory spike ends that process, not Dagster's (costs a process start-up; README, Training); 'torchrun': "
        "`training_processes` data-parallel processes through Pipes (gloo on CPU, nccl on GPUs); "
        "'in_process': inside the Dagster step (debugging).",
    )
    training_processes: int = Field(
        2, ge=1, le=64, strict=True, description="Processes per node for 'torchrun' (1 to 64); the optimiser step sums their gradients."
    )

    def resolved_device(self) -> str:
        return pick_device(self.device)

    def train(self, context: dg.AssetExecutionContext, pipes: dg.PipesSubprocessClient, request: Path,
              run_in_process: Callable[[dict[str, Any], Callable[[str], None]], dict[str, Any]]) -> dict[str, Any]:
        """Run a training request (assets/training/worker.py) as `training_launcher` says; its report.

        Out of process, `python -m assets.training REQUEST` runs through Pipes (under torchrun for
        several processes). A trainer that stops for a reason (diverged, too little data) writes
        the request's `error_path`: that fails the step without a retry, since the same inputs would
        fail again. A process killed without a word is retried, and the retry resumes from the last
        checkpoint. `in_process` calls `run_in_process` here instead (debugging).
        """
        spec = json.loads(request.read_text())
        if self.training_launcher == "in_process":
            return run_in_process(spec, context.log.info)
        launcher = [sys.executable]
        if self.training_launcher == "torchrun":
            launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={self.training_processes}"]
        failure = Path(spec["error_path"])
        failure.unlink(missing_ok=True)  # left by an earlier attempt
        try:
            pipes.run(context=context, command=[*launcher, "-m", "assets.training", str(request)])
        except Exception as error:
            if not failure.exists():
                raise
            stopped = json.loads(failure.read_text())
            raise dg.Failure(f"domain {context.partition_key!r}: training stopped: {stopped['type']}: {stopped['message']}",
                             allow_retries=False) from error
        return json.loads(Path(spec["report_path"]).read_text())
