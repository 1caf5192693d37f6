"""`qlora_adapter`: LoRA adapters trained on the 4-bit NF4 base, saved in PEFT format."""

import shutil

import dagster as dg

from assets.common.atomic import atomic_directory
from assets.partitions import domain_partitions
from assets.training.config import QLoraConfig
from assets.training.recipe import train_qlora
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
    code_version="1",
    pool="accelerator",
    retry_policy=dg.RetryPolicy(max_retries=1, delay=5),
    op_tags={"loraline/accelerator": "1"},
)
def qlora_adapter(
    context: dg.AssetExecutionContext, config: QLoraRunConfig, landing: LandingZone, artifacts: ArtifactStore, compute: ComputeSettings
) -> dg.MaterializeResult:
    """QLoRA: the base frozen in 4-bit NF4 (bitsandbytes, double quantization), LoRA adapters
    (peft) trained with transformers' Trainer; progress in the run log; checkpoints resume a retry.
    Unchanged data, base, code and settings reuse the previous adapter without training."""
    from datasets import load_from_disk

    domain = context.partition_key
    require_passed_checks(context, "training_dataset")
    settings = landing.effective_settings(domain, "training", config)
    version = logical_version(context, {"training_dataset": True, "base_model": False}, settings.model_dump())
    if reused := reuse_if_unchanged(context, version):
        return reused
    dataset_dir = upstream_path(context, "training_dataset")
    base_dir = upstream_path(context, "base_model", partitioned=False)
    # Checkpoints are keyed by the logical version: a retry resumes, other inputs start afresh.
    checkpoints = artifacts.checkpoint_dir("qlora_adapter", domain, {"version": version})
    location = artifacts.new_location(context, "qlora_adapter")
    device = compute.resolved_device()
    with atomic_directory(location) as staging:
        report = train_qlora(base_dir, load_from_disk(str(dataset_dir / "train")), staging, checkpoints, settings, device, log=context.log.info)
    shutil.rmtree(checkpoints, ignore_errors=True)  # the adapter is published; scratch no longer needed
    curve = "\n".join(["| step | loss | learning rate |", "|---|---|---|"] + [
        f"| {p['step']} | {p['loss']:.4f} | {p['learning_rate']:.2e} |" for p in report.loss_history
    ])
    metadata = {
        "path": dg.MetadataValue.path(str(location)),
        "trainable_parameters": report.trainable_parameters,
        "trainable_percent": report.trainable_percent,
        "final_train_loss": report.final_train_loss,
        "tokens_seen": report.tokens_seen,
        "tokens_per_second": report.tokens_per_second,
        "peak_memory_mb": report.peak_memory_mb,
        "duration_s": report.duration_s,
        "steps": report.steps,
        "compute_dtype": report.compute_dtype,
        "device": device,
        "resumed_from": report.resumed_from or "-",
        "loss_curve": dg.MetadataValue.md(curve),
        "config": dg.MetadataValue.json(settings.model_dump()),
    }
    return published(metadata, version)
