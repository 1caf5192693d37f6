"""Reading upstream artifacts through the Dagster instance, and skipping work whose inputs are unchanged.

An asset reads exactly the version its upstream recorded in its latest materialization (the
`path` metadata), so lineage in the UI and the bytes actually used always agree.

Every per-domain asset returns a *logical* data version: a hash of its code version, its upstream
data versions and its effective settings. The UI marks exactly the downstream of a change stale,
and an asset whose logical version equals its latest materialization's re-publishes that version
(same path, same check results) instead of redoing the work.

On object storage, `path` is the version's URL: reading stages it into the local mirror (checked
against its manifest), and a version counts as existing only while its manifest does.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from assets.common.hashing import json_fingerprint
from assets.common.object_store import UnpublishedVersion, cache_root, is_published, is_url, mirror_path, stage_in, url_of

DATA_VERSION_TAG = "dagster/data_version"
# Settings that bound how long a run may take, not what it makes: a run past its limit publishes
# nothing, so changing one never makes a published version stale.
RUN_LIMITS = {"max_train_minutes"}


def instance_latest_record(instance: dg.DagsterInstance, asset: str, partition: str | None) -> dg.EventLogRecord | None:
    """The latest materialization record of an asset (partition), from any instance (sensors, scripts)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None),
        limit=1,
    ).records
    return records[0] if records else None


def latest_record(context: dg.AssetExecutionContext, asset: str, partition: str | None) -> dg.EventLogRecord | None:
    return instance_latest_record(context.instance, asset, partition)


def latest_materialization(context: dg.AssetExecutionContext, asset: str, partition: str | None) -> dg.AssetMaterialization:
    record = latest_record(context, asset, partition)
    if record is None:
        where = f" for domain {partition!r}" if partition else ""
        raise dg.Failure(f"{asset} has not been materialized{where}; materialize it first")
    return record.asset_materialization


def upstream_path(context: dg.AssetExecutionContext, asset: str, partitioned: bool = True) -> Path:
    partition = context.partition_key if partitioned else None
    materialization = latest_materialization(context, asset, partition)
    return local_copy(materialization.metadata["path"].value, asset)


def local_copy(recorded: str, asset: str = "the upstream asset") -> Path:
    """A recorded `path` as a local folder: itself, or a URL's published version staged into the
    local mirror (downloaded once, checked against its manifest)."""
    if is_url(recorded):
        try:
            return stage_in(recorded, mirror_path(recorded, cache_root()))
        except UnpublishedVersion:
            raise dg.Failure(f"{asset} recorded {recorded}, which is not published (no manifest); re-materialize {asset}") from None
    path = Path(recorded)
    if not path.exists():
        raise dg.Failure(f"{asset} recorded {path}, which no longer exists; re-materialize {asset}")
    return path


def still_there(recorded: str) -> bool:
    """A recorded location can still be read: the folder exists, or the URL's manifest does."""
    return is_published(recorded) if is_url(recorded) else Path(recorded).exists()


def as_recorded(metadata: dict) -> dict:
    """Path entries that point into an object-storage mirror, recorded as their URLs (what other
    machines can read); local paths stay as they are."""
    return {key: dg.MetadataValue.path(url) if isinstance(value, dg.PathMetadataValue) and (url := url_of(Path(value.value))) else value
            for key, value in metadata.items()}


def upstream_data_version(context: dg.AssetExecutionContext, asset: str, partitioned: bool = True) -> str:
    partition = context.partition_key if partitioned else None
    return latest_materialization(context, asset, partition).tags.get(DATA_VERSION_TAG, "unknown")


def require_passed_checks(context: dg.AssetExecutionContext, asset: str) -> None:
    """Refuse to build on an upstream whose blocking checks failed, also across runs.

    Dagster skips downstream steps of a failed blocking check only within the same run; a later
    run that selects just this asset must not consume the data the check stopped.
    """
    materialization = latest_materialization(context, asset, context.partition_key)
    failed = [c for c in materialization.metadata.get("checks", dg.MetadataValue.json([])).value
              if not c["passed"] and c["severity"] == dg.AssetCheckSeverity.ERROR.value]
    if failed:
        reasons = "; ".join(f"{c['name']}: {c['description']}" for c in failed)
        raise dg.Failure(f"domain {context.partition_key!r}: {asset} failed its blocking checks ({reasons}); fix the data first")


def logical_version(context: dg.AssetExecutionContext, upstream: dict[str, bool], settings: dict, asset: str | None = None) -> str:
    """Hash of an asset's code version, its upstream data versions ({asset: partitioned}) and settings.

    `asset` names the output of a multi-asset; a single asset is the context's own.
    """
    key = dg.AssetKey(asset) if asset else context.asset_key
    return json_fingerprint(
        {
            "code": context.assets_def.code_versions_by_key[key],
            "inputs": {asset: upstream_data_version(context, asset, partitioned) for asset, partitioned in sorted(upstream.items())},
            "settings": settings,
        }
    )


def reuse_if_unchanged(context: dg.AssetExecutionContext, version: str, asset: str | None = None) -> dg.MaterializeResult | None:
    """The latest materialization again, when it has this logical version and its files still exist."""
    partition = context.partition_key if context.has_partition_key else None
    asset = asset or context.asset_key.to_user_string()
    record = latest_record(context, asset, partition)
    if record is None or record.asset_materialization.tags.get(DATA_VERSION_TAG) != version:
        return None
    metadata = dict(record.asset_materialization.metadata)
    if "path" not in metadata or not still_there(metadata["path"].value):
        return None
    context.log.info(f"inputs unchanged since run {record.run_id[:8]}: reusing {metadata['path'].value}, no work done")
    metadata["reused_from_run"] = record.run_id
    checks = [
        dg.AssetCheckResult(
            asset_key=asset,
            check_name=check["name"],
            passed=check["passed"],
            severity=dg.AssetCheckSeverity(check["severity"]),
            description=check["description"],
        )
        for check in metadata.get("checks", dg.MetadataValue.json([])).value
    ]
    return dg.MaterializeResult(asset_key=asset, metadata=metadata, data_version=dg.DataVersion(version), check_results=checks)


def published(metadata: dict, version: str, checks: list[dg.AssetCheckResult] | None = None, asset: str | None = None) -> dg.MaterializeResult:
    """A materialization with its logical version; check outcomes are also kept in metadata for reuse."""
    checks = checks or []
    summary = [
        {"name": c.check_name, "passed": c.passed, "severity": c.severity.value, "description": c.description or ""}
        for c in checks
    ]
    return dg.MaterializeResult(
        asset_key=asset,
        metadata={**as_recorded(metadata), "checks": dg.MetadataValue.json(summary), "reused_from_run": "-"},
        data_version=dg.DataVersion(version),
        check_results=checks,
    )


def kept_merged_model(context: dg.AssetExecutionContext) -> str:
    """What stays in place when an adapter is not merged: the domain's previous merged model, if any."""
    previous = latest_record(context, "merged_model", context.partition_key)
    if previous is None:
        return "this domain has no merged model yet"
    return f"the previous merged model stays in place at {previous.asset_materialization.metadata['path'].value}"


@dataclass(frozen=True)
class Step:
    """One per-domain materialization under the house protocol, begun by `begin`: its effective
    settings, its logical version, and the previous materialization to re-publish when nothing
    changed (`reused`). Upstream names are given once, as the asset's `deps` are."""

    context: dg.AssetExecutionContext
    upstream: dict[str, bool]  # asset -> partitioned (per domain) or not (base_model)
    settings: Any
    version: str
    reused: dg.MaterializeResult | None

    def path(self, asset: str) -> Path:
        """The folder `asset` recorded in its latest materialization (the bytes its lineage names);
        an asset outside `upstream` is read per domain."""
        return upstream_path(self.context, asset, self.upstream.get(asset, True))

    def publish(self, metadata: dict, checks: list[dg.AssetCheckResult] | None = None) -> dg.MaterializeResult:
        return published(metadata, self.version, checks)


def begin(context: dg.AssetExecutionContext, upstream: dict[str, bool], settings: Any, gate: str | None = None) -> Step:
    """Refuse an upstream (`gate`) whose blocking checks failed, then hash code, upstream data
    versions and `settings` (already merged with the domain's domain.yaml) into the logical version."""
    if gate:
        require_passed_checks(context, gate)
    version = logical_version(context, upstream, settings.model_dump(exclude=RUN_LIMITS))
    return Step(context, upstream, settings, version, reuse_if_unchanged(context, version))
