"""Compute settings: which device the heavy steps use, and the trainer launcher (how training runs)."""

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from assets.common.locks import describe_holder, lock_holder
from assets.models.loading import pick_device
from resources.kubernetes import PodSettings, load_pod_settings

K8S_LAUNCHERS = ("k8s", "k8s_multinode")
DEFAULT_POD_SETTINGS = "deploy/k8s/training.yaml"
TRAINING_STEP = "qlora_adapter"  # the step that trains: a run with it warms the trainer up as it starts


class ComputeSettings(dg.ConfigurableResource):
    """The accelerator for training, evaluation and merging, and the training launcher."""

    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' uses CUDA when torch sees a GPU, else the CPU."
    )
    training_launcher: Literal["subprocess", "torchrun", "in_process", "k8s", "k8s_multinode"] = Field(
        "subprocess",
        description="How qlora_adapter trains. 'subprocess': one process through Dagster Pipes, so a crash or "
        "a memory spike ends that process, not Dagster's (costs a process start-up; README, Training); 'torchrun': "
        "`training_processes` data-parallel processes through Pipes (gloo on CPU, nccl on GPUs); "
        "'in_process': inside the Dagster step (debugging); 'k8s': a GPU pod of its own through dagster-k8s' "
        "PipesK8sClient (`pod_settings`); 'k8s_multinode': `nodes` such pods under torchrun (c10d rendezvous).",
    )
    warm_trainer: bool = Field(
        True,
        description="With the 'subprocess' launcher on a Linux CPU: fork each trainer from a server that imported torch, "
        "transformers, peft and bitsandbytes when the run began (resources/warm_trainer.py), instead of starting "
        "`python -m assets.training` (~7 s of imports on 2 cores). Still a process of its own per training. "
        "Off: a fresh interpreter per training.",
    )
    training_processes: int = Field(
        2, ge=1, le=64, strict=True, description="Processes per node for 'torchrun' (1 to 64); the optimiser step sums their gradients."
    )

    pod_settings_file: str = Field(
        "",
        description="YAML of the GPU pods (resources/kubernetes.py PodSettings: image, GPUs, CPU, memory, node selector, "
        "tolerations, cache volume claim, nodes) for the 'k8s' launchers and the k8s executor. Empty: "
        f"$LORALINE_POD_SETTINGS, else {DEFAULT_POD_SETTINGS} (relative to the working directory).",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A run that may train starts the warm trainer server now: its imports overlap the steps before training.
        # Only a speed-up: a server that cannot start is retried, and then fails, where training needs it.
        if TRAINING_STEP in _steps_of(context):
            try:
                self.warm_up_trainer()
            except (OSError, RuntimeError) as error:
                context.log.warning(f"the warm trainer server did not start ({error}); training will try again")

    def uses_warm_trainer(self) -> bool:
        from resources import warm_trainer

        return self.training_launcher == "subprocess" and self.warm_trainer and warm_trainer.usable(self.resolved_device())

    def warm_up_trainer(self) -> None:
        """Start the warm trainer server in the background, when training would use it."""
        if self.uses_warm_trainer():
            from resources import warm_trainer

            warm_trainer.warm_up()

    def pod_settings(self) -> PodSettings:
        return load_pod_settings(Path(self.pod_settings_file or os.environ.get("LORALINE_POD_SETTINGS") or DEFAULT_POD_SETTINGS))

    def resolved_device(self) -> str:
        """The device training, evaluation and merging use. With a 'k8s' launcher the step that launches
        training runs in a pod without a GPU, so 'auto' follows the GPU count of the pod settings (the
        GPU steps get the same pods from the k8s executor), not what torch sees here."""
        if self.training_launcher not in K8S_LAUNCHERS:
            return pick_device(self.device)
        gpus = self.pod_settings().gpus
        if self.device == "cuda" and not gpus:
            raise ValueError(f"device 'cuda' with training_launcher {self.training_launcher!r}, but the pod settings ask for 0 GPUs")
        return self.device if self.device != "auto" else ("cuda" if gpus else "cpu")

    def train(self, context: dg.AssetExecutionContext, pipes: dg.PipesSubprocessClient, request: Path,
              run_in_process: Callable[[dict[str, Any], Callable[[str], None]], dict[str, Any]]) -> dict[str, Any]:
        """Run a training request (assets/training/worker.py) as `training_launcher` says; its report.

        Out of process, `python -m assets.training REQUEST` runs through Pipes (under torchrun for
        several processes): a subprocess here (on a Linux CPU forked from the warm trainer server,
        `warm_trainer`), or with 'k8s' / 'k8s_multinode' a GPU pod / an Indexed
        Job of them (resources/k8s_launch.py), which see `request` through the shared cache volume;
        `in_process` calls `run_in_process` here instead (debugging). Each
        attempt's request names its own report and error files. First the checkpoint folder's lock
        (held by a trainer for its whole life) is checked: another live attempt at the same inputs
        fails this one at once, retriably, naming its pid. A trainer that stops on purpose (diverged,
        too little data, past max_train_minutes) writes `retry: false` to `error_path`: the step
        fails without a retry, since the same inputs would stop again. Any other error (disk full,
        out of memory, an NCCL timeout, a process killed without a word) fails it retriably: the
        asset's retry policy runs it again, resuming from the last checkpoint.
        """
        spec = json.loads(request.read_text())
        domain = context.partition_key if context.has_partition_key else spec.get("domain") or "-"
        holder = lock_holder(Path(spec["lock_path"])) if spec.get("lock_path") else None
        if holder is not None:
            raise dg.Failure(f"domain {domain!r}: another attempt is training domain {domain!r} on these inputs "
                             f"({describe_holder(holder)}); this attempt stops without touching its checkpoints",
                             metadata={"retriable": True}, allow_retries=True)
        failure = Path(spec["error_path"])
        failure.unlink(missing_ok=True)
        try:
            if self.training_launcher == "in_process":
                return run_in_process(spec, context.log.info)
            if self.training_launcher in K8S_LAUNCHERS:
                # The trainer pod sees `request` (and writes its report) through the shared cache volume.
                from resources.k8s_launch import run_training_job, run_training_pod

                launch = run_training_pod if self.training_launcher == "k8s" else run_training_job
                launch(context, self.pod_settings(), str(request))
            elif self.uses_warm_trainer():
                from resources import warm_trainer

                warm_trainer.run(context, pipes, request)
            else:
                launcher = [sys.executable]
                if self.training_launcher == "torchrun":
                    launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={self.training_processes}"]
                pipes.run(context=context, command=[*launcher, "-m", "assets.training", str(request)])
        except Exception as error:
            raise _training_failure(domain, failure, error) from error
        return json.loads(Path(spec["report_path"]).read_text())


def _steps_of(context: dg.InitResourceContext) -> list[str]:
    """The step keys the run executes (a run's asset selection is often unrecorded, e.g. in process)."""
    run = context.dagster_run
    if run is None:
        return []
    if run.step_keys_to_execute is not None:
        return list(run.step_keys_to_execute)
    plan = context.instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id) if run.execution_plan_snapshot_id else None
    return [step.key for step in plan.steps] if plan else []


def _training_failure(domain: str, error_path: Path, error: Exception) -> dg.Failure:
    """The step failure for a trainer that failed: retriable unless it stopped on purpose."""
    try:
        reported = json.loads(error_path.read_text())
    except (OSError, ValueError):
        reported = None  # killed without a word (OOM killer, SIGKILL), or a disk too full to say why
    if reported is None:
        what = f"the trainer ended without a report ({type(error).__name__}: {error})"
    else:
        what = f"{reported.get('type', 'error')}: {reported.get('message', '')}"
        if reported.get("retry") is False:
            return dg.Failure(f"domain {domain!r}: training stopped: {what}", metadata={"retriable": False}, allow_retries=False)
    return dg.Failure(f"domain {domain!r}: training failed: {what}; a retry (the asset's retry policy) resumes from the last checkpoint",
                      metadata={"retriable": True}, allow_retries=True)
