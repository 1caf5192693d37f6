"""`merged_model`: the adapter merged into the full-precision base, with a model card of its lineage."""

from pathlib import Path

import dagster as dg

from assets.common.atomic import atomic_directory
from assets.common.retention import prune_versions
from assets.partitions import domain_partitions
from assets.release.merging import MergeReport, merge_adapter
from assets.release.model_card import model_lineage, write_model_card
from assets.settings.merge import MergeConfig
from resources.compute import ComputeSettings
from resources.landing import LandingZone
from resources.lineage import begin, kept_merged_model, latest_materialization, upstream_data_version
from resources.storage import ArtifactStore


class MergeRunConfig(dg.Config, MergeConfig):
    """Merge settings, editable in the launchpad (domain.yaml section `merge`)."""


# Upstream in the logical version (asset -> per domain); the eval split and the raw data version are
# read too, for the parity check and the lineage, and change only with the adapter.
UPSTREAM = {"qlora_adapter": True, "adapter_evaluation": True, "base_model": False}


@dg.asset(
    partitions_def=domain_partitions,
    deps=[*UPSTREAM, "training_dataset", "raw_corpus"],
    group_name="release",
    kinds={"transformers", "safetensors"},
    code_version="1",
    pool="accelerator",
    check_specs=[dg.AssetCheckSpec("merge_matches_adapter", asset="merged_model", blocking=True,
                                   description="Merged-model logits equal adapter-on-base logits within parity_tolerance; "
                                   "a merge that fails is not published.")],
)
def merged_model(
    context: dg.AssetExecutionContext, config: MergeRunConfig, landing: LandingZone, artifacts: ArtifactStore, compute: ComputeSettings
) -> dg.MaterializeResult:
    """A standard Hugging Face model directory (safetensors, tokenizer, README model card with the
    lineage from landed files to these weights), merged into the de-quantised base, never into 4-bit.
    Built only from an adapter whose adapter_beats_base check passed, and published only when its
    logits match adapter-on-base (merge_matches_adapter); otherwise the previous merged model stays
    in place."""
    from datasets import load_from_disk

    _require_passed_gate(context)
    step = begin(context, UPSTREAM, landing.effective_settings(context.partition_key, "merge", config))
    if step.reused:
        return step.reused
    eval_split = load_from_disk(str(step.path("training_dataset") / "eval"))
    location = artifacts.new_location(context, "merged_model")
    with atomic_directory(location) as staging:
        report = merge_adapter(step.path("base_model"), step.path("qlora_adapter"), staging, eval_split, step.settings, compute.resolved_device())
        write_model_card(staging, model_lineage(context.partition_key, _recorded(context), step.settings.dtype, report, context.run_id))
    passed = report.max_abs_logit_diff <= step.settings.parity_tolerance
    description = f"max |logit diff| {report.max_abs_logit_diff:.2e} (tolerance {step.settings.parity_tolerance:.0e})"
    if not passed:
        _refuse_unfaithful_merge(context, location, description, artifacts.keep_versions)  # raises
    check = dg.AssetCheckResult(check_name="merge_matches_adapter", passed=True, severity=dg.AssetCheckSeverity.ERROR, description=description)
    return step.publish(_metadata(location, report, step.settings), [check])


def _refuse_unfaithful_merge(context: dg.AssetExecutionContext, location: Path, description: str, keep: int) -> None:
    """A merge whose logits differ from adapter-on-base is not a materialization: published, it would
    become the latest merged model that readers (and the model card's lineage) take. The failed check
    is recorded on its own, and the folder moves to `unpublished/` beside the versions, for inspection
    (the newest `keep` refused merges stay there: full-size weights)."""
    unpublished = location.parent / "unpublished" / location.name
    unpublished.parent.mkdir(exist_ok=True)
    location.rename(unpublished)
    for old in prune_versions(unpublished.parent, keep, protected=set()):
        context.log.info(f"retention: deleted refused merge {old}")
    context.log_event(dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("merged_model"), check_name="merge_matches_adapter", passed=False, severity=dg.AssetCheckSeverity.ERROR,
        description=f"{description}; not published", partition=context.partition_key, metadata={"unpublished_path": dg.MetadataValue.path(str(unpublished))},
    ))
    raise dg.Failure(
        f"domain {context.partition_key!r}: merge_matches_adapter failed: {description}; the merge is not published "
        f"(kept for inspection at {unpublished}); {kept_merged_model(context)}",
        allow_retries=False,
    )


def _metadata(location: Path, report: MergeReport, settings: MergeConfig) -> dict:
    return {
        "path": dg.MetadataValue.path(str(location)),
        "max_abs_logit_diff": report.max_abs_logit_diff,
        "eval_loss_merged": report.eval_loss_merged,
        "parameters": report.parameters,
        "dtype": settings.dtype,
        "model_card": dg.MetadataValue.path(str(location / "README.md")),
        "settings": dg.MetadataValue.json(settings.model_dump()),
    }


def _recorded(context: dg.AssetExecutionContext) -> dict:
    """What the upstream materializations recorded: the lineage a model card carries."""
    domain = context.partition_key
    values = {asset: {k: v.value for k, v in latest_materialization(context, asset, None if asset == "base_model" else domain).metadata.items()}
              for asset in ("base_model", "qlora_adapter", "adapter_evaluation", "training_dataset")}
    versions = {asset: upstream_data_version(context, asset) for asset in ("raw_corpus", "training_dataset")}
    return values | {"data_versions": versions}


def _require_passed_gate(context: dg.AssetExecutionContext) -> None:
    """Refuse to merge unless the current adapter is the one evaluated, and it beat its base."""
    evaluation = latest_materialization(context, "adapter_evaluation", context.partition_key)
    current = upstream_data_version(context, "qlora_adapter")
    evaluated = evaluation.metadata.get("adapter_data_version")
    passed = evaluation.metadata.get("adapter_beats_base")
    if evaluated is not None and evaluated.value == current and passed is not None and passed.value:
        return
    reason = "did not beat its base" if evaluated is not None and evaluated.value == current else "has not been evaluated"
    raise dg.Failure(f"domain {context.partition_key!r}: the current adapter {reason}; not merging ({kept_merged_model(context)})")
