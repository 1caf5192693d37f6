"""`adapter_evaluation`: the adapter against its base on the domain's held-out split."""

import json
from pathlib import Path

import dagster as dg
from pydantic import model_validator

from assets.common.atomic import atomic_directory
from assets.evaluation.metrics import EvaluationReport, evaluate_adapter, generations_markdown
from assets.partitions import domain_partitions
from assets.settings.evaluation import EvaluationConfig
from resources.compute import ComputeSettings
from resources.landing import LandingZone
from resources.lineage import (
    begin,
    kept_merged_model,
    upstream_data_version,
)
from resources.storage import ArtifactStore
from resources.tracking import ExperimentTracking


class EvaluationRunConfig(dg.Config, EvaluationConfig):
    """Evaluation settings, editable in the launchpad (domain.yaml section `evaluation`)."""

    @model_validator(mode="after")
    def _gate_is_consistent(self) -> "EvaluationRunConfig":
        # The launchpad may set gate_margin for a gate_metric named in domain.yaml: the cross-field
        # rule is checked on the merged settings (effective_settings), not on either part alone.
        return self


TASK_SAMPLES_SHOWN = 5  # scored answers shown in the UI; evaluation.json keeps all of them
UPSTREAM = {"qlora_adapter": True, "training_dataset": True, "base_model": False}  # asset -> per domain


@dg.asset(
    partitions_def=domain_partitions,
    deps=list(UPSTREAM),
    group_name="evaluation",
    kinds={"pytorch", "peft"},
    code_version="2",
    pool="accelerator",
    check_specs=[dg.AssetCheckSpec("adapter_beats_base", asset="adapter_evaluation", blocking=True,
                                   description="The adapter's eval loss is below the base's by more than min_improvement; or, when "
                                   "evaluation.gate_metric names a task metric, its score is >= the base's + gate_margin.")],
)
def adapter_evaluation(
    context: dg.AssetExecutionContext, config: EvaluationRunConfig, landing: LandingZone, artifacts: ArtifactStore, compute: ComputeSettings,
    tracking: ExperimentTracking,
) -> dg.MaterializeResult:
    """Eval loss, perplexity and bits per byte of the base and of base + adapter on the same held-out
    tokens; exact match and ROUGE-L of their greedy answers to held-out prompts (instruction and chat
    domains); sample generations side by side. A blocking gate: an adapter that does not beat its base
    (on loss, or on the task metric domain.yaml names) is not merged."""
    from datasets import load_from_disk

    step = begin(context, UPSTREAM, landing.effective_settings(context.partition_key, "evaluation", config))
    if step.reused:
        return step.reused
    eval_split = load_from_disk(str(step.path("training_dataset") / "eval"))
    adapter_dir = step.path("qlora_adapter")
    report = evaluate_adapter(step.path("base_model"), adapter_dir, eval_split, step.settings, compute.resolved_device())
    location = artifacts.new_location(context, "adapter_evaluation")
    with atomic_directory(location) as staging:
        (staging / "evaluation.json").write_text(json.dumps({**report.numbers(), "adapter": str(adapter_dir), "generations": report.generations,
                                                             "task_metrics": report.task.describe(), "task_samples": report.task.samples}, indent=2))
    passed, decided = report.gate(step.settings)
    description = f"{decided}; " + ("passed" if passed else f"failed: adapter not merged; {kept_merged_model(context)}")
    (context.log.info if passed else context.log.error)(f"domain {context.partition_key!r}: adapter_beats_base {description}")
    metadata = _metadata(location, report, passed, adapter_dir, step.settings) | _scored_versions(context, step.settings, compute.resolved_device())
    metadata |= tracking.log_evaluation(step, report.numbers() | {"adapter_beats_base": passed}, location)
    check = dg.AssetCheckResult(check_name="adapter_beats_base", passed=passed, severity=dg.AssetCheckSeverity.ERROR, description=description)
    return step.publish(metadata, [check])


def _scored_versions(context: dg.AssetExecutionContext, settings: EvaluationConfig, device: str) -> dict:
    """What the losses were computed from. adapter_data_version is read by merged_model's gate and the
    registry; all four by domain_leaderboard, which reuses eval_loss_base and eval_loss_adapter as its
    base row and diagonal when they match what it would score."""
    from assets.models.loading import pick_compute_dtype

    return {
        "adapter_data_version": upstream_data_version(context, "qlora_adapter"),
        "eval_data_version": upstream_data_version(context, "training_dataset"),
        "base_data_version": upstream_data_version(context, "base_model", partitioned=False),
        "compute_dtype": str(pick_compute_dtype(settings.compute_dtype, device)).removeprefix("torch."),
    }


def _metadata(location: Path, report: EvaluationReport, passed: bool, adapter_dir: Path, settings: EvaluationConfig) -> dict:
    # adapter_beats_base is read by merged_model's gate and the registry.
    return {
        "path": dg.MetadataValue.path(str(location)),
        **report.numbers(),
        "adapter_beats_base": passed,
        "adapter_path": dg.MetadataValue.path(str(adapter_dir)),
        "generations": dg.MetadataValue.md(generations_markdown(report.generations)),
        "task_metrics": report.task.describe(),
        "task_samples": dg.MetadataValue.md(generations_markdown(report.task.samples[:TASK_SAMPLES_SHOWN]) if report.task.samples else "-"),
        "gate_metric": settings.gate_metric,
        "settings": dg.MetadataValue.json(settings.model_dump()),
    }
