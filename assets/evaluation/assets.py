"""`adapter_evaluation`: the adapter against its base on the domain's held-out split."""

import json
from pathlib import Path

import dagster as dg

from assets.common.atomic import atomic_directory
from assets.evaluation.leaderboard import cross_domain_losses, forgetting_markdown, leaderboard_markdown
from assets.evaluation.metrics import evaluate_adapter, generations_markdown
from assets.settings.evaluation import EvaluationConfig
from assets.partitions import domain_partitions
from resources.compute import ComputeSettings
from resources.landing import LandingZone
from resources.lineage import latest_record, logical_version, published, reuse_if_unchanged, upstream_data_version, upstream_path
from resources.storage import ArtifactStore


class EvaluationRunConfig(dg.Config, EvaluationConfig):
    """Evaluation settings, editable in the launchpad (domain.yaml section `evaluation`)."""


@dg.asset(
    partitions_def=domain_partitions,
    deps=["qlora_adapter", "training_dataset", "base_model"],
    group_name="evaluation",
    kinds={"pytorch", "peft"},
    code_version="1",
    pool="accelerator",
    check_specs=[dg.AssetCheckSpec("adapter_beats_base", asset="adapter_evaluation", blocking=True,
                                   description="The adapter's eval loss is below the base's by more than min_improvement.")],
)
def adapter_evaluation(
    context: dg.AssetExecutionContext, config: EvaluationRunConfig, landing: LandingZone, artifacts: ArtifactStore, compute: ComputeSettings
) -> dg.MaterializeResult:
    """Eval loss and perplexity of the base and of base + adapter on the same held-out tokens, with
    sample generations side by side. A blocking gate: an adapter that does not beat its base is not merged."""
    from datasets import load_from_disk

    domain = context.partition_key
    settings = landing.effective_settings(domain, "evaluation", config)
    version = logical_version(context, {"qlora_adapter": True, "training_dataset": True, "base_model": False}, settings.model_dump())
    if reused := reuse_if_unchanged(context, version):
        return reused
    eval_split = load_from_disk(str(upstream_path(context, "training_dataset") / "eval"))
    adapter_dir = upstream_path(context, "qlora_adapter")
    report = evaluate_adapter(upstream_path(context, "base_model", partitioned=False), adapter_dir, eval_split, settings, compute.resolved_device())
    numbers = {
        "eval_loss_base": report.eval_loss_base,
        "eval_loss_adapter": report.eval_loss_adapter,
        "perplexity_base": report.perplexity_base,
        "perplexity_adapter": report.perplexity_adapter,
        "eval_tokens": report.eval_tokens,
    }
    location = artifacts.new_location(context, "adapter_evaluation")
    with atomic_directory(location) as staging:
        (staging / "evaluation.json").write_text(json.dumps({**numbers, "adapter": str(adapter_dir), "generations": report.generations}, indent=2))
    improvement = report.eval_loss_base - report.eval_loss_adapter
    passed = improvement > settings.min_improvement
    verdict = "passed" if passed else f"failed: adapter not merged; {_kept_model(context)}"
    description = (
        f"eval loss {report.eval_loss_base:.4f} -> {report.eval_loss_adapter:.4f} (improvement {improvement:.4f}, "
        f"required > {settings.min_improvement}); {verdict}"
    )
    (context.log.info if passed else context.log.error)(f"domain {domain!r}: adapter_beats_base {description}")
    metadata = {
        "path": dg.MetadataValue.path(str(location)),
        **numbers,
        "adapter_beats_base": passed,
        "adapter_path": dg.MetadataValue.path(str(adapter_dir)),
        "adapter_data_version": upstream_data_version(context, "qlora_adapter"),
        "generations": dg.MetadataValue.md(generations_markdown(report.generations)),
        "settings": dg.MetadataValue.json(settings.model_dump()),
    }
    check = dg.AssetCheckResult(check_name="adapter_beats_base", passed=passed, severity=dg.AssetCheckSeverity.ERROR, description=description)
    return published(metadata, version, [check])


def _kept_model(context: dg.AssetExecutionContext) -> str:
    previous = latest_record(context, "merged_model", context.partition_key)
    if previous is None:
        return "this domain has no merged model yet"
    return f"the previous merged model stays in place at {previous.asset_materialization.metadata['path'].value}"


@dg.asset(
    deps=[dg.AssetDep(key, partition_mapping=dg.AllPartitionMapping()) for key in ("adapter_evaluation", "qlora_adapter", "training_dataset")] + ["base_model"],
    group_name="evaluation",
    kinds={"pytorch", "peft"},
    code_version="1",
    pool="accelerator",
)
def domain_leaderboard(context: dg.AssetExecutionContext, artifacts: ArtifactStore, compute: ComputeSettings) -> dg.MaterializeResult:
    """Every domain's latest evaluation in one table, and the forgetting matrix: each adapter on
    every other domain's held-out split against the base, so tuning that hurt other domains shows."""
    from datasets import load_from_disk

    domains = sorted(context.instance.get_dynamic_partitions(domain_partitions.name))
    rows, adapters, eval_sets = [], {}, {}
    for domain in domains:
        evaluation, dataset = latest_record(context, "adapter_evaluation", domain), latest_record(context, "training_dataset", domain)
        if evaluation is None or dataset is None:
            continue
        meta = {k: v.value for k, v in evaluation.asset_materialization.metadata.items()}
        rows.append({"domain": domain, **meta})
        adapters[domain] = Path(meta["adapter_path"])
        eval_sets[domain] = load_from_disk(str(Path(dataset.asset_materialization.metadata["path"].value) / "eval"))
    if not rows:
        raise dg.Failure("no domain has an adapter_evaluation yet; materialize at least one domain first")
    report = cross_domain_losses(upstream_path(context, "base_model", partitioned=False), adapters, eval_sets, compute.resolved_device())
    location = artifacts.new_location(context, "domain_leaderboard")
    matrix = {a: {e: report.delta(a, e) for e in report.domains} for a in report.loss}
    with atomic_directory(location) as staging:
        (staging / "leaderboard.json").write_text(json.dumps({"rows": rows, "base_loss": report.base_loss, "loss": report.loss, "delta": matrix}, indent=2, default=str))
    worst = max(((a, e) for a in matrix for e in matrix[a] if a != e), key=lambda p: matrix[p[0]][p[1]], default=None)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(location)),
            "domains": len(rows),
            "leaderboard": dg.MetadataValue.md(leaderboard_markdown(rows)),
            "forgetting_matrix": dg.MetadataValue.md(forgetting_markdown(report)),
            "worst_forgetting": matrix[worst[0]][worst[1]] if worst else 0.0,
            "worst_forgetting_pair": f"{worst[0]} on {worst[1]}" if worst else "-",
        }
    )
