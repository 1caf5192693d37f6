"""`adapter_evaluation`: the adapter against its base on the domain's held-out split."""

import json
from pathlib import Path

import dagster as dg
from pydantic import model_validator

from assets.common.atomic import atomic_directory
from assets.evaluation.leaderboard import CrossDomainReport, DomainEval, cache_from, cells_table, cross_domain_losses, forgetting_markdown, leaderboard_markdown
from assets.evaluation.metrics import EvaluationReport, evaluate_adapter, generations_markdown
from assets.partitions import domain_partitions
from assets.settings.evaluation import EvaluationConfig
from resources.compute import ComputeSettings
from resources.landing import LandingZone
from resources.lineage import DATA_VERSION_TAG, begin, kept_merged_model, latest_record, upstream_data_version, upstream_path
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


@dg.asset(
    deps=[dg.AssetDep(key, partition_mapping=dg.AllPartitionMapping()) for key in ("adapter_evaluation", "qlora_adapter", "training_dataset")] + ["base_model"],
    group_name="evaluation",
    kinds={"pytorch", "peft"},
    code_version="2",
    pool="accelerator",
)
def domain_leaderboard(context: dg.AssetExecutionContext, artifacts: ArtifactStore, compute: ComputeSettings) -> dg.MaterializeResult:
    """Every domain's latest evaluation in one table, and the forgetting matrix: each adapter on
    every other domain's held-out split against the base, so tuning that hurt other domains shows.
    Only cells whose adapter, eval split, base or dtype changed are computed: the diagonal and the
    base row come from adapter_evaluation, the rest from the previous leaderboard's cells.json."""
    from assets.models.loading import pick_compute_dtype

    device = compute.resolved_device()
    dtype = pick_compute_dtype("auto", device)
    base_version = upstream_data_version(context, "base_model", partitioned=False)
    rows, domains = _evaluated_domains(context, base_version, str(dtype).removeprefix("torch."))
    if not rows:
        raise dg.Failure("no domain has an adapter_evaluation yet; materialize at least one domain first")
    report = cross_domain_losses(upstream_path(context, "base_model", partitioned=False), base_version, domains, _previous_cells(context), dtype, device)
    sources = report.sources()
    context.log.info(f"forgetting matrix: {sources['computed']} cells computed, {sources['cache']} reused from the previous leaderboard, "
                     f"{sources['evaluation']} taken from adapter_evaluation")
    location = artifacts.new_location(context, "domain_leaderboard")
    with atomic_directory(location) as staging:
        (staging / "leaderboard.json").write_text(json.dumps(
            {"rows": rows, "base_loss": report.base_loss, "loss": report.loss, "delta": report.matrix()}, indent=2, default=str))
        (staging / CELLS_FILE).write_text(json.dumps({"base_data_version": base_version, "cells": cells_table(report)}, indent=2))
    return dg.MaterializeResult(metadata=_board_metadata(location, rows, report))


def _board_metadata(location: Path, rows: list[dict], report: CrossDomainReport) -> dict:
    worst, sources = report.worst_forgetting(), report.sources()
    return {
        "path": dg.MetadataValue.path(str(location)),
        "domains": len(rows),
        "leaderboard": dg.MetadataValue.md(leaderboard_markdown(rows)),
        "forgetting_matrix": dg.MetadataValue.md(forgetting_markdown(report)),
        "worst_forgetting": worst[2] if worst else 0.0,
        "worst_forgetting_pair": f"{worst[0]} on {worst[1]}" if worst else "-",
        # Cells of the matrix and the base row: forward passes this time, against numbers reused.
        "cells_computed": sources["computed"],
        "cells_reused": sources["cache"],
        "cells_from_evaluation": sources["evaluation"],
        "computed_cells": dg.MetadataValue.json(sorted(f"{c.adapter} on {c.evaluated}" for c in report.cells if c.source == "computed")),
    }


CELLS_FILE = "cells.json"  # every cell's loss and key: the next leaderboard's cache


def _previous_cells(context: dg.AssetExecutionContext) -> dict[str, float]:
    """{cell key: loss} of the previous leaderboard; empty when there is none (or it predates cells.json)."""
    record = latest_record(context, "domain_leaderboard", None)
    path = Path(record.asset_materialization.metadata["path"].value) / CELLS_FILE if record else None
    if path is None or not path.is_file():
        return {}
    return cache_from(json.loads(path.read_text())["cells"])


def _evaluated_domains(context: dg.AssetExecutionContext, base_version: str, dtype: str) -> tuple[list[dict], dict[str, DomainEval]]:
    """Every domain with an evaluation: its numbers, and its adapter and held-out split (by version)."""
    from datasets import load_from_disk

    rows, domains = [], {}
    for domain in sorted(context.instance.get_dynamic_partitions(domain_partitions.name)):
        evaluation, dataset = latest_record(context, "adapter_evaluation", domain), latest_record(context, "training_dataset", domain)
        if evaluation is None or dataset is None:
            continue
        meta = {k: v.value for k, v in evaluation.asset_materialization.metadata.items()}
        rows.append({"domain": domain, **meta})
        split = Path(dataset.asset_materialization.metadata["path"].value) / "eval"
        # A cell is keyed by data versions; a record without one is keyed by its folder (never overwritten).
        eval_version = dataset.asset_materialization.tags.get(DATA_VERSION_TAG) or f"path:{split}"
        # The evaluation's own losses are this leaderboard's cells only if it scored the same split, base and dtype.
        same = (meta.get("eval_data_version"), meta.get("base_data_version"), meta.get("compute_dtype")) == (eval_version, base_version, dtype)
        domains[domain] = DomainEval(
            adapter_dir=Path(meta["adapter_path"]), adapter_version=meta.get("adapter_data_version") or f"path:{meta['adapter_path']}",
            eval_version=eval_version,
            load_eval=lambda split=split: load_from_disk(str(split)),
            evaluated={"base": meta["eval_loss_base"], "adapter": meta["eval_loss_adapter"]} if same else {},
        )
    return rows, domains
