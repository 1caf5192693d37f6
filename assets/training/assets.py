"""`qlora_adapter`: LoRA adapters trained on the 4-bit NF4 base, saved in PEFT format."""

import uuid
from pathlib import Path

import dagster as dg

from assets.common.atomic import atomic_directory
from assets.partitions import domain_partitions
from assets.settings.training import QLoraConfig
from assets.training.checkpoint import remove_checkpoints
from assets.training.curve import loss_curve_markdown
from assets.training.worker import attempt_files, run_request, write_request
from resources.compute import ComputeSettings
from resources.landing import LandingZone
from resources.lineage import begin
from resources.storage import ArtifactStore
from resources.tracking import ExperimentTracking


class QLoraRunConfig(dg.Config, QLoraConfig):
    """LoRA and optimiser settings, editable in the launchpad (domain.yaml section `training`)."""


UPSTREAM = {"training_dataset": True, "base_model": False}  # asset -> per domain


@dg.asset(
    partitions_def=domain_partitions,
    deps=list(UPSTREAM),
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
    tracking: ExperimentTracking,
) -> dg.MaterializeResult:
    """QLoRA: the base frozen in 4-bit NF4 (bitsandbytes, double quantization), LoRA adapters
    (peft) trained on packed examples; by default in a Dagster Pipes subprocess (or `torchrun`
    processes), progress in the run log; checkpoints let a retry resume after a crash.
    Unchanged data, base, code and settings reuse the previous adapter without training."""
    domain = context.partition_key
    step = begin(context, UPSTREAM, landing.effective_settings(domain, "training", config), gate="training_dataset")
    if step.reused:
        return step.reused
    # Checkpoints are keyed by the logical version, what decides the adapter: a retry resumes, other inputs
    # start afresh. It leaves out the time limit (RUN_LIMITS), so a run with a higher one resumes where the last stopped.
    checkpoints = artifacts.checkpoint_dir("qlora_adapter", domain, {"version": step.version}, log=context.log.info)
    location = artifacts.new_location(context, "qlora_adapter")
    attempt = f"{context.run_id[:8]}-{context.retry_number}-{uuid.uuid4().hex[:6]}"  # its own request, report, error files
    request, report_path, error_path = attempt_files(checkpoints, attempt)
    with atomic_directory(location) as staging:
        write_request(request, step.path("base_model"), step.path("training_dataset") / "train", staging, checkpoints,
                      step.settings.model_dump(), compute.resolved_device(), report_path, error_path, domain, attempt)
        report = compute.train(context, pipes_subprocess_client, request, run_in_process=run_request)
    if not remove_checkpoints(checkpoints):  # the adapter is published; its scratch goes, unless another attempt holds it
        context.log.warning(f"domain {domain!r}: checkpoints {checkpoints} kept: another attempt holds them")
    tracked = tracking.log_training(step, report, location, device=compute.resolved_device(), launcher=compute.training_launcher)
    return step.publish(_metadata(report, location, compute.resolved_device(), compute.training_launcher, step.settings) | tracked)


def _metadata(report: dict, location: Path, device: str, launcher: str, settings: QLoraConfig) -> dict:
    history, adapted = report["loss_history"], sum(report["target_counts"].values())
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
        "adapted_layers": adapted,
        "device": device,
        "resumed_from": report["resumed_from"] or "-",
        "loss_curve": dg.MetadataValue.md(loss_curve_markdown(history)),
        "loss_table": table,
        "config": dg.MetadataValue.json(settings.model_dump()),
        # What the settings became on this model and machine ("auto", "all-linear" resolved).
        "resolved": dg.MetadataValue.json({
            "compute_dtype": report["compute_dtype"], "target_modules": report["target_modules"],
            "adapted_layers": adapted, "adapted_layers_by_name": report["target_counts"],
            "full_precision_layers": report["full_precision_layers"],
            "trainable_percent": round(float(report["trainable_percent"]), 4),
        }),
    }
