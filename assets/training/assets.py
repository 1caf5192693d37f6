"""`qlora_adapter`: LoRA adapters trained on the 4-bit NF4 base, saved in PEFT format."""

import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import dagster as dg

from assets.common.atomic import atomic_directory
from assets.partitions import domain_partitions
from assets.settings.training import QLoraConfig
from assets.training.curve import loss_curve_markdown
from assets.training.recipe import train_qlora
from assets.training.worker import error_path, read_request, write_request
from resources.compute import ComputeSettings
from resources.landing import LandingZone
from resources.lineage import logical_version, published, require_passed_checks, reuse_if_unchanged, upstream_path
from resources.storage import ArtifactStore


class QLoraRunConfig(dg.Config, QLoraConfig):
    """LoRA and optimiser settings, editable in the launchpad (domain.yaml section `training`)."""


@dg.asset(
    partitions_def=domain_partitions,
    deps=["training_dataset", "base_model"],
    group_name="training",
    kinds={"pytorch", "peft", "bitsandbytes"},
    code_version="3",
    pool="accelerator",
    retry_policy=dg.RetryPolicy(max_retries=1, delay=5),
    op_tags={"loraline/accelerator": "1"},
)
def qlora_adapter(
    context: dg.AssetExecutionContext,
    config: QLoraRunConfig,
    landing: LandingZone,
    artifacts: ArtifactStore,
    compute: ComputeSettings,
    pipes_subprocess_client: dg.PipesSubprocessClient,
) -> dg.MaterializeResult:
    """QLoRA: the base frozen in 4-bit NF4 (bitsandbytes, double quantization), LoRA adapters
    (peft) trained on packed examples; by default in a Dagster Pipes subprocess (or `torchrun`
    processes), progress in the run log; checkpoints let a retry resume after a crash.
    Unchanged data, base, code and settings reuse the previous adapter without training."""
    domain = context.partition_key
    require_passed_checks(context, "training_dataset")
    settings = landing.effective_settings(domain, "training", config)
    version = logical_version(context, {"training_dataset": True, "base_model": False}, settings.model_dump())
    if reused := reuse_if_unchanged(context, version):
        return reused
    dataset_dir = upstream_path(context, "training_dataset") / "train"
    base_dir = upstream_path(context, "base_model", partitioned=False)
    # Checkpoints are keyed by the logical version: a retry resumes, other inputs start afresh.
    checkpoints = artifacts.checkpoint_dir("qlora_adapter", domain, {"version": version})
    location = artifacts.new_location(context, "qlora_adapter")
    device = compute.resolved_device()
    with atomic_directory(location) as staging:
        if compute.training_launcher == "in_process":
            from datasets import load_from_disk

            trained = train_qlora(base_dir, load_from_disk(str(dataset_dir)), staging, checkpoints, settings, device, log=context.log.info)
            report = asdict(trained) | {"trainable_percent": trained.trainable_percent}
        else:
            request = write_request(checkpoints / "request.json", base_dir, dataset_dir, staging, checkpoints,
                                    settings.model_dump(), device, checkpoints / "report.json")
            launcher = [sys.executable]
            if compute.training_launcher == "torchrun":
                launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={compute.training_processes}"]
            failure = error_path(read_request(str(request)))
            failure.unlink(missing_ok=True)  # left by an earlier attempt
            try:
                pipes_subprocess_client.run(context=context, command=[*launcher, "-m", "assets.training.external", str(request)])
            except Exception as error:
                if not failure.exists():
                    raise  # killed or crashed without a word: the retry resumes from the checkpoint
                stopped = json.loads(failure.read_text())
                # The trainer said why (diverged, too little data): the same inputs would fail again.
                raise dg.Failure(f"domain {domain!r}: training stopped: {stopped['type']}: {stopped['message']}",
                                 allow_retries=False) from error
            report = json.loads(Path(checkpoints / "report.json").read_text())
    shutil.rmtree(checkpoints, ignore_errors=True)  # the adapter is published; scratch no longer needed
    return published(_metadata(report, location, device, compute.training_launcher, settings), version)


def _metadata(report: dict, location: Path, device: str, launcher: str, settings: QLoraConfig) -> dict:
    history = report["loss_history"]
    table = dg.MetadataValue.table(
        records=[dg.TableRecord({"step": int(p["step"]), "loss": float(p["loss"]), "learning_rate": float(p["learning_rate"])}) for p in history],
        schema=dg.TableSchema(columns=[dg.TableColumn("step", "int"), dg.TableColumn("loss", "float"), dg.TableColumn("learning_rate", "float")]),
    )
    return {
        "path": dg.MetadataValue.path(str(location)),
        "trainable_parameters": report["trainable_parameters"],
        "trainable_percent": float(report["trainable_percent"]),
        "final_train_loss": float(report["final_train_loss"]),
        "tokens_seen": report["tokens_seen"],
        "tokens_per_second": float(report["tokens_per_second"]),
        "pad_share": float(report["pad_share"]),
        "peak_memory_mb": float(report["peak_memory_mb"]),
        "duration_s": float(report["duration_s"]),
        "steps": report["steps"],
        "packing": report["packing"],
        "world_size": report["world_size"],
        "launcher": launcher,
        "compute_dtype": report["compute_dtype"],
        "adapted_layers": sum(report["target_counts"].values()),
        "device": device,
        "resumed_from": report["resumed_from"] or "-",
        "loss_curve": dg.MetadataValue.md(loss_curve_markdown(history)),
        "loss_table": table,
        "config": dg.MetadataValue.json(settings.model_dump()),
        # What the settings became on this model and machine ("auto", "all-linear" resolved).
        "resolved": dg.MetadataValue.json({
            "compute_dtype": report["compute_dtype"], "target_modules": report["target_modules"],
            "adapted_layers": sum(report["target_counts"].values()), "adapted_layers_by_name": report["target_counts"],
            "full_precision_layers": report["full_precision_layers"],
            "trainable_percent": round(float(report["trainable_percent"]), 4),
        }),
    }
