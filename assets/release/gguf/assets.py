"""`gguf_export`: the merged model as GGUF files (llama.cpp, Ollama) with an Ollama Modelfile."""

import json
import time
from pathlib import Path

import dagster as dg

from assets.common.atomic import atomic_directory
from assets.partitions import domain_partitions
from assets.release.gguf.export import ExportReport, export_gguf
from assets.settings.gguf import GgufConfig
from resources.lineage import begin
from resources.storage import ArtifactStore


class GgufRunConfig(dg.Config, GgufConfig):
    """GGUF export settings, editable in the launchpad."""


UPSTREAM = {"merged_model": True}  # the eval split, read for the parity tokens, changes only with it
CHECK = "gguf_matches_merged"


@dg.asset(
    partitions_def=domain_partitions,
    deps=[*UPSTREAM, "training_dataset"],
    group_name="release",
    kinds={"gguf", "ollama"},
    code_version="1",
    check_specs=[dg.AssetCheckSpec(CHECK, asset="gguf_export", blocking=True,
                                   description="The f16 GGUF reads back with gguf's reader (tensor names, shapes, count, "
                                   "metadata keys) and, loaded by transformers, gives the merged model's logits within "
                                   "parity_tolerance (relative to the largest logit).")],
)
def gguf_export(context: dg.AssetExecutionContext, config: GgufRunConfig, artifacts: ArtifactStore) -> dg.MaterializeResult:
    """The domain's merged model written as GGUF (f16 and q8_0 by default; tokenizer, special ids
    and chat template inside) plus an Ollama `Modelfile`, so `ollama create` or llama.cpp's
    `llama-cli -m` run it. A model family the writer does not support yet is recorded as skipped,
    with the reason, not as a failure."""
    from datasets import load_from_disk

    step = begin(context, UPSTREAM, config, gate="merged_model")
    if step.reused:
        return step.reused
    eval_split = load_from_disk(str(step.path("training_dataset") / "eval"))
    rows = eval_split.select(range(min(config.parity_examples, len(eval_split))))["input_ids"]
    inputs = [list(ids[: config.parity_tokens]) for ids in rows]
    location = artifacts.new_location(context, "gguf_export")
    started = time.perf_counter()
    with atomic_directory(location) as staging:
        report = export_gguf(step.path("merged_model"), staging, context.partition_key, config, inputs)
        (staging / "export.json").write_text(json.dumps(report.summary(), indent=2), encoding="utf-8")
    seconds = time.perf_counter() - started
    return step.publish(_metadata(location, report, config, seconds), [_check(report, config)])


def _check(report: ExportReport, config: GgufConfig) -> dg.AssetCheckResult:
    if report.skipped:
        # Nothing was written, so nothing can mismatch; the warning keeps the skip visible in the UI.
        return dg.AssetCheckResult(check_name=CHECK, passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   description=f"not run: {report.skipped}")
    parity = report.parity
    passed = not report.problems and parity.relative_diff <= config.parity_tolerance
    described = (f"f16 max |logit diff| {parity.max_abs_diff:.2e} = {parity.relative_diff:.2e} of the largest logit "
                 f"(tolerance {config.parity_tolerance:.0e}) on {parity.tokens} tokens")
    return dg.AssetCheckResult(check_name=CHECK, passed=passed, severity=dg.AssetCheckSeverity.ERROR,
                               description="; ".join([described, *report.problems]))


def _metadata(location: Path, report: ExportReport, config: GgufConfig, seconds: float) -> dict:
    metadata = {
        "path": dg.MetadataValue.path(str(location)),
        "export_seconds": round(seconds, 2),
        "settings": dg.MetadataValue.json(config.model_dump()),
    }
    if report.skipped:
        return metadata | {"skipped": report.skipped}
    summary = report.summary()
    metadata |= {
        "files": dg.MetadataValue.json(summary["files"]),
        "quant_types": dg.MetadataValue.json(list(summary["files"])),
        "max_abs_logit_diff": report.parity.max_abs_diff,
        "relative_logit_diff": report.parity.relative_diff,
        "parity_tolerance": config.parity_tolerance,
        "modelfile": dg.MetadataValue.path(str(location / "Modelfile")),
        "modelfile_template": summary["modelfile_template"],
        "reloaded_by_transformers": dg.MetadataValue.json(summary["reloaded_by_transformers"]),
    }
    for quant, entry in summary["files"].items():
        metadata[f"{quant}_size_bytes"] = entry["size_bytes"]
    return metadata
