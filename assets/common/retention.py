"""Retention of published versions: which version folders of an asset partition may go.

Each materialization writes a new folder `<utc stamp>-<run id>` (resources/storage.py), so versions
pile up. `prune_versions` keeps the newest `keep` and every protected one (the caller protects the
latest materialization and what the current merged model's lineage names) and removes the rest.
A version is first renamed to a hidden `.<name>.deleting-<hex>` and removed under its lock, so a
half-deleted folder never looks like a version, and a kill mid-delete leaves a leftover the sweep
(assets/common/atomic.py) finishes.
"""

import os
import re
import shutil
import uuid
from pathlib import Path

from assets.common.locks import hold_directory
from assets.common.object_store import remote_versions, unpublish

VERSION_NAME = re.compile(r"^\d{8}T\d{6}(\.\d{3})?Z-[0-9A-Za-z]+$")  # storage.new_location's names, nothing else


def version_folders(folder: Path) -> list[Path]:
    """The published version folders directly in `folder`, oldest first (names start with a UTC stamp)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if VERSION_NAME.fullmatch(p.name) and p.is_dir() and not p.is_symlink())


def prunable(folder: Path, keep: int, protected: set[Path]) -> list[Path]:
    """The versions in `folder` beyond the newest `keep` that no one protects (resolved paths)."""
    versions = version_folders(folder)
    newest = set(versions[-keep:]) if keep > 0 else set()
    return [v for v in versions if v not in newest and v.resolve() not in protected]


def prune_versions(folder: Path, keep: int, protected: set[Path]) -> list[Path]:
    """Remove what `prunable` lists; returns the versions removed."""
    removed = []
    for version in prunable(folder, keep, protected):
        doomed = version.with_name(f".{version.name}.deleting-{uuid.uuid4().hex[:8]}")
        try:
            version.rename(doomed)
        except OSError:
            continue  # removed by a concurrent prune
        lock = hold_directory(doomed)
        try:
            shutil.rmtree(doomed, ignore_errors=True)
        finally:
            os.close(lock)
        removed.append(version)
    return removed


def prune_remote_versions(folder_url: str, keep: int, protected: set[str | None]) -> list[str]:
    """`prune_versions` for a folder on object storage: the published versions beyond the newest
    `keep` that no one protects (URLs) are unpublished, manifest first; returns their URLs."""
    versions = [v.url for v in remote_versions(folder_url) if v.published and VERSION_NAME.fullmatch(v.name)]
    newest = set(versions[-keep:]) if keep > 0 else set()
    doomed = [url for url in versions if url not in newest and url not in protected]
    for url in doomed:
        unpublish(url)
    return doomed
