"""`merged_model`: the adapter merged into the full-precision base, with a model card of its lineage."""

import json
import time

import dagster as dg

from assets.common.atomic import atomic_directory
from assets.common.versions import library_versions
from assets.partitions import domain_partitions
from assets.release.merging import merge_adapter
from assets.settings.merge import MergeConfig
from assets.release.model_card import render_model_card
from resources.compute import ComputeSettings
from resources.landing import LandingZone
from resources.lineage import latest_materialization, latest_record, logical_version, published, reuse_if_unchanged, upstream_data_version, upstream_path
from resources.storage import ArtifactStore


class MergeRunConfig(dg.Config, MergeConfig):
    """Merge settings, editable in the launchpad (domain.yaml section `merge`)."""


@dg.asset(
    partitions_def=domain_partitions,
    deps=["adapter_evaluation", "qlora_adapter", "training_dataset", "base_model", "raw_corpus"],
    group_name="release",
    kinds={"transformers", "safetensors"},
    code_version="1",
    pool="accelerator",
    check_specs=[dg.AssetCheckSpec("merge_matches_adapter", asset="merged_model",
                                   description="Merged-model logits equal adapter-on-base logits within parity_tolerance.")],
)
def merged_model(
    context: dg.AssetExecutionContext, config: MergeRunConfig, landing: LandingZone, artifacts: ArtifactStore, compute: ComputeSettings
) -> dg.MaterializeResult:
    """A standard Hugging Face model directory (safetensors, tokenizer, README model card with the
    lineage from landed files to these weights), merged into the de-quantised base, never into 4-bit.
    Built only from an adapter whose adapter_beats_base check passed; otherwise the previous merged
    model stays in place."""
    from datasets import load_from_disk

    domain = context.partition_key
    settings = landing.effective_settings(domain, "merge", config)
    base = latest_materialization(context, "base_model", None)
    evaluation = latest_materialization(context, "adapter_evaluation", domain)
    adapter = latest_materialization(context, "qlora_adapter", domain)
    _require_passed_gate(context, evaluation)
    version = logical_version(context, {"qlora_adapter": True, "adapter_evaluation": True, "base_model": False}, settings.model_dump())
    if reused := reuse_if_unchanged(context, version):
        return reused
    eval_split = load_from_disk(str(upstream_path(context, "training_dataset") / "eval"))
    location = artifacts.new_location(context, "merged_model")
    with atomic_directory(location) as staging:
        report = merge_adapter(
            upstream_path(context, "base_model", partitioned=False), upstream_path(context, "qlora_adapter"),
            staging, eval_split, settings, compute.resolved_device(),
        )
        lineage = {
            "domain": domain,
            "base_model": {key: base.metadata[key].value for key in ("spec", "revision", "fingerprint")},
            "data_versions": {
                "raw_corpus": upstream_data_version(context, "raw_corpus"),
                "training_dataset": upstream_data_version(context, "training_dataset"),
            },
            "adapter_path": adapter.metadata["path"].value,
            "training": adapter.metadata["config"].value,
            "training_resolved": _value(adapter, "resolved"),
            "chat_template": _value(latest_materialization(context, "training_dataset", domain), "template"),
            "evaluation": {key: evaluation.metadata[key].value for key in ("eval_loss_base", "eval_loss_adapter", "perplexity_base", "perplexity_adapter")},
            "merge": {"dtype": settings.dtype, "max_abs_logit_diff": report.max_abs_logit_diff, "eval_loss_merged": report.eval_loss_merged},
            "dagster_run_id": context.run_id,
            "library_versions": library_versions(),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / "lineage.json").write_text(json.dumps(lineage, indent=2, sort_keys=True, default=str))
        (staging / "README.md").write_text(render_model_card(lineage))
    parity_ok = report.max_abs_logit_diff <= settings.parity_tolerance
    metadata = {
        "path": dg.MetadataValue.path(str(location)),
        "max_abs_logit_diff": report.max_abs_logit_diff,
        "eval_loss_merged": report.eval_loss_merged,
        "parameters": report.parameters,
        "dtype": settings.dtype,
        "model_card": dg.MetadataValue.path(str(location / "README.md")),
        "settings": dg.MetadataValue.json(settings.model_dump()),
    }
    check = dg.AssetCheckResult(
        check_name="merge_matches_adapter",
        passed=parity_ok,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"max |logit diff| {report.max_abs_logit_diff:.2e} (tolerance {settings.parity_tolerance:.0e})",
    )
    return published(metadata, version, [check])


def _value(materialization: dg.AssetMaterialization, key: str) -> dict:
    """A JSON metadata entry, or {} for materializations made before it existed."""
    entry = materialization.metadata.get(key)
    return entry.value if entry is not None else {}


def _require_passed_gate(context: dg.AssetExecutionContext, evaluation: dg.AssetMaterialization) -> None:
    """Refuse to merge unless the current adapter is the one evaluated, and it beat its base."""
    current = upstream_data_version(context, "qlora_adapter")
    evaluated = evaluation.metadata.get("adapter_data_version")
    passed = evaluation.metadata.get("adapter_beats_base")
    if evaluated is not None and evaluated.value == current and passed is not None and passed.value:
        return
    previous = latest_record(context, "merged_model", context.partition_key)
    kept = f"the previous merged model stays at {previous.asset_materialization.metadata['path'].value}" if previous else "no merged model exists yet"
    reason = "did not beat its base" if evaluated is not None and evaluated.value == current else "has not been evaluated"
    raise dg.Failure(f"domain {context.partition_key!r}: the current adapter {reason}; not merging ({kept})")
