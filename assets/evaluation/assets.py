"""`adapter_evaluation`: the adapter against its base on the domain's held-out split."""

import json

import dagster as dg

from assets.common.atomic import atomic_directory
from assets.evaluation.metrics import EvaluationConfig, evaluate_adapter, generations_markdown
from assets.partitions import domain_partitions
from resources.compute import ComputeSettings
from resources.lineage import upstream_path
from resources.storage import ArtifactStore


class EvaluationRunConfig(dg.Config, EvaluationConfig):
    """Evaluation settings, editable in the launchpad."""


@dg.asset(
    partitions_def=domain_partitions,
    deps=["qlora_adapter", "training_dataset", "base_model"],
    group_name="evaluation",
    kinds={"pytorch", "peft"},
    code_version="1",
    check_specs=[dg.AssetCheckSpec("adapter_beats_base", asset="adapter_evaluation", blocking=True,
                                   description="The adapter's eval loss is below the base's by more than min_improvement.")],
)
def adapter_evaluation(context: dg.AssetExecutionContext, config: EvaluationRunConfig, artifacts: ArtifactStore, compute: ComputeSettings) -> dg.MaterializeResult:
    """Eval loss and perplexity of the base and of base + adapter on the same held-out tokens, with
    sample generations side by side. A blocking gate: an adapter that does not beat its base is not merged."""
    from datasets import load_from_disk

    eval_split = load_from_disk(str(upstream_path(context, "training_dataset") / "eval"))
    adapter_dir = upstream_path(context, "qlora_adapter")
    report = evaluate_adapter(upstream_path(context, "base_model", partitioned=False), adapter_dir, eval_split, config, compute.resolved_device())
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
    passed = improvement > config.min_improvement
    context.log.info(f"eval loss {report.eval_loss_base:.4f} (base) -> {report.eval_loss_adapter:.4f} (adapter)")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(location)),
            **numbers,
            "adapter_path": dg.MetadataValue.path(str(adapter_dir)),
            "generations": dg.MetadataValue.md(generations_markdown(report.generations)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="adapter_beats_base",
                passed=passed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"eval loss {report.eval_loss_base:.4f} -> {report.eval_loss_adapter:.4f} "
                f"(improvement {improvement:.4f}, required > {config.min_improvement})",
                metadata={"improvement": improvement, "adapter_path": dg.MetadataValue.path(str(adapter_dir))},
            )
        ],
    )
