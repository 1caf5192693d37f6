"""Artifact storage: where every asset writes, always atomically and never over an older version."""

import os
import time
from pathlib import Path

import dagster as dg
from pydantic import Field

from assets.common.hashing import json_fingerprint

DEFAULT_ARTIFACTS_DIR = "data/artifacts"


class ArtifactStore(dg.ConfigurableResource):
    """Local artifact folders laid out as `<root>/<asset>/<domain>/<utc time>-<run id>/`.

    Each materialization gets a new folder, so an older adapter or merged model is never
    overwritten and the `path` recorded in a materialization's metadata stays valid.
    """

    root: str = Field(
        "",
        description="Artifacts root. Empty: $LORALINE_ARTIFACTS_DIR, else data/artifacts "
        "(relative paths resolve against the working directory).",
    )

    def root_path(self) -> Path:
        return Path(self.root or os.environ.get("LORALINE_ARTIFACTS_DIR") or DEFAULT_ARTIFACTS_DIR).resolve()

    def asset_dir(self, asset: str, partition: str | None = None) -> Path:
        return self.root_path() / asset / (partition or "_")

    def new_location(self, context: dg.AssetExecutionContext, asset: str) -> Path:
        """A fresh version folder for this run (write it with `atomic_directory`)."""
        partition = context.partition_key if context.has_partition_key else None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return self.asset_dir(asset, partition) / f"{stamp}-{context.run_id[:8]}"

    def checkpoint_dir(self, asset: str, partition: str, inputs: dict) -> Path:
        """Scratch space for resumable work, keyed by everything that decides the result.

        A retry or re-materialization with the same inputs resumes from here; different data, base
        or config gets a fresh folder, so a stale checkpoint is never resumed by mistake.
        """
        return self.asset_dir(asset, partition) / "checkpoints" / json_fingerprint(inputs)[:16]
