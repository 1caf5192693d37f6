"""`adapter_registry`: every domain's promoted adapter, laid out for serving (assets/serving/registry.py)."""

import json
from pathlib import Path

import dagster as dg
from pydantic import Field

from assets.partitions import domain_partitions
from assets.serving.registry import (
    Candidate,
    Decision,
    decide,
    publish,
    read_manifest,
    record_history,
    served,
    vllm_problems,
    write_registry_file,
)
from resources.lineage import DATA_VERSION_TAG, latest_record, local_copy
from resources.registry import AdapterRegistry

INPUT_VERSION_TAG = "dagster/input_data_version/"  # Dagster records each upstream's data version on a materialization


class RegistryRunConfig(dg.Config):
    """What the registry accepts, editable in the launchpad."""

    max_lora_rank: int = Field(
        64, ge=1, le=512,
        description="Largest LoRA rank registered: vLLM's --max-lora-rank must be at least this (its default is 16; "
        "memory for every LoRA slot is reserved at this rank). 1 to 512.",
    )


@dg.asset(
    deps=[dg.AssetDep(key, partition_mapping=dg.AllPartitionMapping()) for key in ("adapter_evaluation", "qlora_adapter")] + ["base_model"],
    group_name="release",
    kinds={"peft", "safetensors"},
    code_version="1",
    check_specs=[
        dg.AssetCheckSpec("vllm_compatible", asset="adapter_registry", blocking=True,
                          description="Every registered adapter (and every candidate that passed its gate) is a plain LoRA vLLM "
                          "serves: rank <= max_lora_rank, no modules_to_save, no DoRA, no rank patterns, targets among "
                          "vLLM's LoRA-capable linear projections (a name check; vLLM itself is not run here)."),
        dg.AssetCheckSpec("same_base", asset="adapter_registry", blocking=True,
                          description="Every registered adapter was trained on the registry's base model fingerprint."),
    ],
)
def adapter_registry(context: dg.AssetExecutionContext, config: RegistryRunConfig, registry: AdapterRegistry) -> dg.MaterializeResult:
    """The promoted adapter of every domain whose current adapter passed adapter_beats_base, as
    `<registry>/<domain>/` (adapter_config.json, adapter_model.safetensors, manifest.json): the layout
    `loraline serve` and vLLM's `--lora-modules` read. A worse retrain never replaces a promoted
    adapter; every decision goes to history.jsonl."""
    root = registry.root_path()
    base = _served_base(context)
    problems: dict[str, list[str]] = {}  # domain -> why vLLM would refuse its gated adapter
    decisions = [decision for domain in sorted(context.instance.get_dynamic_partitions(domain_partitions.name))
                 if (decision := _offer(context, root, base, domain, config.max_lora_rank, problems)) is not None]
    registered = {domain: read_manifest(version) for domain, version in served(root).items()}
    write_registry_file(root, base, registered)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(root)),
            "domains": len(registered),
            "base_model_name_or_path": base["name"],
            "base_fingerprint": base["fingerprint"],
            "registry": dg.MetadataValue.md(_table(decisions, registered)),
            "decisions": dg.MetadataValue.json([d.__dict__ for d in decisions]),
        },
        check_results=[_compatibility_check(root, registered, problems, config.max_lora_rank), _same_base_check(registered, base)],
    )


def _offer(context: dg.AssetExecutionContext, root: Path, base: dict[str, str], domain: str, max_rank: int,
           problems: dict[str, list[str]]) -> Decision | None:
    """Decide on one domain's current adapter (promote, keep, refuse), publish it when promoted, log
    and record the decision; None when the domain has no adapter yet."""
    candidate = _candidate(context, domain)
    if candidate is None:
        return None
    current = served(root).get(domain)
    promoted = read_manifest(current) if current else None
    found = vllm_problems(json.loads((Path(candidate.adapter_path) / "adapter_config.json").read_text()), max_rank)
    if found and candidate.passed_gate:
        problems[domain] = found
    decision = decide(candidate, promoted, base["fingerprint"], found)
    if decision.action == "promoted":
        publish(root, candidate, base)
    (context.log.info if decision.action in ("promoted", "unchanged") else context.log.warning)(
        f"domain {domain!r}: {decision.action}: {decision.reason}")
    if decision.action != "unchanged":
        record_history(root, decision, context.run_id)
    return decision


def _served_base(context: dg.AssetExecutionContext) -> dict[str, str]:
    """The base the registry serves: a hub id is what vLLM's --model names; else its local folder."""
    record = latest_record(context, "base_model", None)
    if record is None:
        raise dg.Failure("base_model has not been materialized; materialize it first")
    meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    local = str(local_copy(meta["path"], "base_model"))
    name = meta["spec"] if meta.get("source") == "hub" else local
    return {"name": name, "path": local, "fingerprint": meta["fingerprint"], "spec": meta["spec"]}


def _candidate(context: dg.AssetExecutionContext, domain: str) -> Candidate | None:
    """The domain's current adapter and whether adapter_beats_base passed for exactly that version
    (the same rule merged_model applies); None when it has no adapter yet."""
    adapter, evaluation = latest_record(context, "qlora_adapter", domain), latest_record(context, "adapter_evaluation", domain)
    if adapter is None:
        return None
    version = adapter.asset_materialization.tags.get(DATA_VERSION_TAG, "unknown")
    meta = {k: v.value for k, v in evaluation.asset_materialization.metadata.items()} if evaluation else {}
    passed = bool(meta.get("adapter_beats_base")) and meta.get("adapter_data_version") == version
    tags = adapter.asset_materialization.tags
    inputs = {k.removeprefix(INPUT_VERSION_TAG): v for k, v in tags.items() if k.startswith(INPUT_VERSION_TAG)}
    return Candidate(
        domain=domain,
        adapter_path=str(local_copy(adapter.asset_materialization.metadata["path"].value, "qlora_adapter")),
        adapter_version=version,
        base_fingerprint=inputs.get("base_model", "unknown"),
        passed_gate=passed,
        eval_loss=meta.get("eval_loss_adapter") if passed else None,
        # Every number the evaluation recorded (losses, perplexities, task metrics), whatever their names.
        evaluation={k: v for k, v in meta.items() if isinstance(v, int | float) and not isinstance(v, bool)} if passed else {},
        data_versions={"qlora_adapter": version, **inputs},
        run_id=adapter.run_id,
    )


def _compatibility_check(root: Path, registered: dict[str, dict], refused: dict[str, list[str]], max_rank: int) -> dg.AssetCheckResult:
    for domain in registered:
        found = vllm_problems(json.loads((root / domain / "adapter_config.json").read_text()), max_rank)
        if found:
            refused.setdefault(domain, found)
    description = "; ".join(f"{d}: {', '.join(p)}" for d, p in sorted(refused.items())) or f"{len(registered)} adapter(s) vLLM-compatible"
    return dg.AssetCheckResult(check_name="vllm_compatible", passed=not refused, severity=dg.AssetCheckSeverity.ERROR, description=description)


def _same_base_check(registered: dict[str, dict], base: dict[str, str]) -> dg.AssetCheckResult:
    other = {d: m["base_fingerprint"][:16] for d, m in registered.items() if m["base_fingerprint"] != base["fingerprint"]}
    description = (f"trained on another base than {base['fingerprint'][:16]}: " + ", ".join(f"{d} ({f})" for d, f in sorted(other.items()))
                   if other else f"{len(registered)} adapter(s) on base {base['fingerprint'][:16]}")
    return dg.AssetCheckResult(check_name="same_base", passed=not other, severity=dg.AssetCheckSeverity.ERROR, description=description)


def _table(decisions: list[Decision], registered: dict[str, dict]) -> str:
    lines = ["| domain | decision | serving version | eval loss | reason |", "|---|---|---|---|---|"]
    for d in decisions:
        entry = registered.get(d.domain, {})
        loss = entry.get("eval_loss")
        lines.append(f"| {d.domain} | {d.action} | {entry.get('version', '-')} | {f'{loss:.4f}' if loss is not None else '-'} | {d.reason} |")
    return "\n".join(lines)
