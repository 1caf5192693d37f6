"""`domain_leaderboard`: every domain's evaluation in one table, and the forgetting matrix."""

import json
from pathlib import Path

import dagster as dg

from assets.common.atomic import atomic_directory
from assets.evaluation.leaderboard import CrossDomainReport, DomainEval, cache_from, cells_table, cross_domain_losses, forgetting_markdown, leaderboard_markdown
from assets.partitions import domain_partitions
from resources.compute import ComputeSettings
from resources.lineage import DATA_VERSION_TAG, as_recorded, latest_record, local_copy, still_there, upstream_data_version, upstream_path
from resources.storage import ArtifactStore

CELLS_FILE = "cells.json"  # every cell's loss and key: the next leaderboard's cache


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
    return dg.MaterializeResult(metadata=as_recorded(_board_metadata(location, rows, report)))


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




def _previous_cells(context: dg.AssetExecutionContext) -> dict[str, float]:
    """{cell key: loss} of the previous leaderboard; empty when there is none (or it predates cells.json)."""
    record = latest_record(context, "domain_leaderboard", None)
    recorded = record.asset_materialization.metadata["path"].value if record else None
    path = local_copy(recorded, "domain_leaderboard") / CELLS_FILE if recorded and still_there(recorded) else None
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
        split = local_copy(dataset.asset_materialization.metadata["path"].value, "training_dataset") / "eval"
        # A cell is keyed by data versions; a record without one is keyed by its folder (never overwritten).
        eval_version = dataset.asset_materialization.tags.get(DATA_VERSION_TAG) or f"path:{split}"
        # The evaluation's own losses are this leaderboard's cells only if it scored the same split, base and dtype.
        same = (meta.get("eval_data_version"), meta.get("base_data_version"), meta.get("compute_dtype")) == (eval_version, base_version, dtype)
        domains[domain] = DomainEval(
            adapter_dir=_adapter_folder(meta["adapter_path"]), adapter_version=meta.get("adapter_data_version") or f"path:{meta['adapter_path']}",
            eval_version=eval_version,
            load_eval=lambda split=split: load_from_disk(str(split)),
            evaluated={"base": meta["eval_loss_base"], "adapter": meta["eval_loss_adapter"]} if same else {},
        )
    return rows, domains


def _adapter_folder(recorded: str) -> Path:
    """An adapter's folder: a local one as recorded (read only if a cell needs it), a URL's version
    staged into the local mirror (downloaded once, checked against its manifest)."""
    return local_copy(recorded, "qlora_adapter") if "://" in recorded else Path(recorded)
