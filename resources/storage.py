"""Artifact storage: where every asset writes, always atomically and never over an older version;
what dead writers left is swept, and old versions are pruned, at the start of each step.

The root is a local folder or an object-storage URL (`s3://bucket/prefix`, `gs://...`, `file://...`).
With a URL, assets still write local folders, in the root's mirror under the local cache
($LORALINE_CACHE_DIR, else ~/.cache/loraline); `atomic_directory` publishes each finished version
to the bucket (files, then `_manifest.json`), metadata records the URL, and readers stage
published versions back into the mirror (assets/common/object_store.py, resources/lineage.py).
"""

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
from pydantic import Field

from assets.common.atomic import sweep_leftovers, sweep_locked_folders
from assets.common.domains import validate_domain_key
from assets.common.hashing import json_fingerprint
from assets.common.object_store import cache_root, filesystem, is_url, mirror_path, sweep_unpublished, url_of
from assets.common.retention import prune_remote_versions, prune_versions
from resources.lineage import DATA_VERSION_TAG, instance_latest_record

DEFAULT_ARTIFACTS_DIR = "data/artifacts"
ASSET_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")  # a Dagster asset name: never '.', '/' or empty
LINEAGE_SCAN = 1000  # materializations searched for the versions a merged model's lineage names


class ArtifactStore(dg.ConfigurableResource):
    """Local artifact folders laid out as `<root>/<asset>/<domain>/<utc time>-<run id>/`
    (e.g. `20250301T120000.123Z-1a2b3c4d`).

    Each materialization gets a new folder, so an older adapter or merged model is never
    overwritten and the `path` recorded in a materialization's metadata stays valid (until
    retention removes a version nothing needs any more: `keep_versions`).
    """

    root: str = Field(
        "",
        description="Artifacts root: a folder, or an object-storage URL (s3://bucket/prefix, gs://..., "
        "file:///...; S3 credentials and endpoint from the standard AWS_* variables). Empty: "
        "$LORALINE_ARTIFACTS_DIR, else data/artifacts (relative paths resolve against the working directory). "
        "With a URL, steps read and write a local mirror under $LORALINE_CACHE_DIR (else ~/.cache/loraline) "
        "and publish each version to the URL, manifest last.",
    )
    keep_versions: int = Field(
        3,
        ge=1,
        le=100_000,
        description="Published versions kept per asset and domain, newest first, when a step starts writing a new "
        "one; older ones are deleted (and logged) unless they are the latest materialization or named by the "
        "domain's current merged model (its adapter, its training data). Raise it to keep more history on disk.",
    )
    leftover_grace_minutes: float = Field(
        10.0,
        ge=0,
        le=10_080,
        description="Scratch folders of writers that died (staging, base-model builds, checkpoints of other "
        "inputs) are removed at step start once their lock is free and nothing in them changed for this long.",
    )

    def remote_root(self) -> str | None:
        """The root URL when artifacts live on object storage; None for a local folder."""
        root = self.root or os.environ.get("LORALINE_ARTIFACTS_DIR") or ""
        return root.rstrip("/") if is_url(root) else None

    def root_path(self) -> Path:
        """The local root: the folder itself, or the URL's mirror in the local cache."""
        if (url := self.remote_root()) is not None:
            return mirror_path(url, cache_root())
        return Path(self.root or os.environ.get("LORALINE_ARTIFACTS_DIR") or DEFAULT_ARTIFACTS_DIR).resolve()

    def folder(self, asset: str, partition: str | None = None) -> Path:
        """`<root>/<asset>/<domain or _>`, from a validated asset name and domain key (no side effect).

        Checked here, whatever the caller checked before: a partition key typed in the UI may hold
        '/' or '..', and a path is never built from one.
        """
        if not isinstance(asset, str) or not ASSET_NAME.fullmatch(asset):
            raise ValueError(f"invalid asset name {asset!r} for the artifact store: letters, digits and '_' only")
        return self.root_path() / asset / ("_" if partition is None else validate_domain_key(partition))

    def asset_dir(self, asset: str, partition: str | None = None) -> Path:
        """The folder an asset (partition) writes its versions to, cleaned of dead writers' leftovers."""
        folder = self.folder(asset, partition)
        for path in sweep_leftovers(folder, self.leftover_grace_minutes * 60):
            dg.get_dagster_logger().info(f"removed {path}, left by a writer that died")
        if (remote := url_of(folder)) is not None:
            for url in sweep_unpublished(remote, self.leftover_grace_minutes * 60):
                dg.get_dagster_logger().info(f"removed {url}: objects of a publish that never wrote its manifest")
        return folder

    def new_location(self, context: dg.AssetExecutionContext, asset: str) -> Path:
        """A fresh version folder for this run (write it with `atomic_directory`); before it, dead
        writers' leftovers are swept and old versions pruned (`keep_versions`)."""
        partition = context.partition_key if context.has_partition_key else None
        folder = self.asset_dir(asset, partition)
        for version in self.prune(context.instance, asset, partition):
            context.log.info(f"retention: deleted {asset} version {version} (beyond the newest {self.keep_versions}, "
                             "not the latest materialization, not in the current merged model's lineage)")
        now = time.time()  # milliseconds too: names sort in creation order, which retention relies on
        stamp = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}.{int(now * 1000) % 1000:03d}Z"
        return folder / f"{stamp}-{context.run_id[:8]}"

    def checkpoint_dir(self, asset: str, partition: str, inputs: dict, log: Callable[[str], None] | None = None) -> Path:
        """Scratch space for resumable work, keyed by everything that decides the result.

        A retry or re-materialization with the same inputs resumes from here; different data, base
        or config gets a fresh folder, so a stale checkpoint is never resumed by mistake. Folders of
        other inputs whose lock is free (no attempt trains on them) and that went untouched for the
        grace period are removed.
        """
        checkpoints = self.folder(asset, partition) / "checkpoints"
        current = checkpoints / json_fingerprint(inputs)[:16]
        for path in sweep_locked_folders(checkpoints, self.leftover_grace_minutes * 60, keep=current.name):
            (log or dg.get_dagster_logger().info)(f"removed checkpoints {path} of inputs no longer current")
        return current

    def prune(self, instance: dg.DagsterInstance, asset: str, partition: str | None) -> list[Path]:
        """Delete the versions of `asset` (partition) that retention lets go; the folders deleted.
        Runs at each new_location; callable on its own (a script, a maintenance job) with any instance.
        On object storage the published versions go the same way (manifest first), and the mirror's copies too."""
        folder, needed = self.folder(asset, partition), self.needed_versions(instance, asset, partition)
        removed = prune_versions(folder, self.keep_versions, needed)
        if (remote := url_of(folder)) is not None:
            urls = prune_remote_versions(remote, self.keep_versions, {url_of(path) for path in needed})
            removed += [folder / url.rsplit("/", 1)[1] for url in urls if folder / url.rsplit("/", 1)[1] not in removed]
        return removed

    def needed_versions(self, instance: dg.DagsterInstance, asset: str, partition: str | None) -> set[Path]:
        """Versions of `asset` that retention keeps whatever their age: the latest materialization
        (what downstream steps read, what reuse re-publishes), and, per domain, what the current
        merged model's lineage.json names (its adapter folder, its data versions)."""
        needed = {_recorded_path(instance_latest_record(instance, asset, partition))}
        merged = instance_latest_record(instance, "merged_model", partition) if partition else None
        lineage = _lineage(merged)
        if lineage is not None:
            if asset == "qlora_adapter" and lineage.get("adapter_path"):
                needed.add(_local(lineage["adapter_path"]))
            wanted = lineage.get("data_versions", {}).get(asset)
            if wanted:
                records = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=LINEAGE_SCAN).records
                needed |= {_recorded_path(r) for r in records if r.asset_materialization.tags.get(DATA_VERSION_TAG) == wanted}
        return needed - {None}


def _local(value: str) -> Path:
    """A recorded location as a local path: a URL's mirror folder, or the folder itself."""
    return mirror_path(value, cache_root()) if is_url(value) else Path(value).resolve()


def _recorded_path(record: dg.EventLogRecord | None) -> Path | None:
    if record is None or "path" not in record.asset_materialization.metadata:
        return None
    return _local(record.asset_materialization.metadata["path"].value)


def _lineage(merged: dg.EventLogRecord | None) -> dict | None:
    """The lineage.json of a merged model, from its folder or, when not staged in here, its bucket."""
    path = _recorded_path(merged)
    if path is None:
        return None
    if (path / "lineage.json").is_file():
        return json.loads((path / "lineage.json").read_text())
    if (url := url_of(path)) is not None:
        fs, key = filesystem(url)
        try:
            return json.loads(fs.cat_file(f"{key}/lineage.json"))
        except FileNotFoundError:
            return None
    return None
