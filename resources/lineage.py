"""Reading upstream artifacts through the Dagster instance, not by guessing paths.

An asset reads exactly the version its upstream recorded in its latest materialization (the
`path` metadata), so lineage in the UI and the bytes actually used always agree.
"""

from pathlib import Path

import dagster as dg


def latest_materialization(context: dg.AssetExecutionContext, asset: str, partition: str | None) -> dg.AssetMaterialization:
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None),
        limit=1,
    ).records
    if not records:
        where = f" for domain {partition!r}" if partition else ""
        raise dg.Failure(f"{asset} has not been materialized{where}; materialize it first")
    return records[0].asset_materialization


def upstream_path(context: dg.AssetExecutionContext, asset: str, partitioned: bool = True) -> Path:
    partition = context.partition_key if partitioned else None
    materialization = latest_materialization(context, asset, partition)
    path = Path(materialization.metadata["path"].value)
    if not path.exists():
        raise dg.Failure(f"{asset} recorded {path}, which no longer exists; re-materialize {asset}")
    return path


def upstream_data_version(context: dg.AssetExecutionContext, asset: str, partitioned: bool = True) -> str:
    partition = context.partition_key if partitioned else None
    return latest_materialization(context, asset, partition).tags.get("dagster/data_version", "unknown")
