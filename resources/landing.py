"""The landing zone: one folder per domain, where raw corpora arrive.

The root may be an object-storage URL (`s3://bucket/landing`): `<url>/<domain>/...` objects are then
mirrored into the local cache (only what changed, by size and ETag or modification time; each file
keeps its object's modification time, so `settle_seconds` works as on a disk), and everything
downstream (the sensor's hashing, raw_corpus) reads the mirror. A domain name is validated before
any local path is built from it, and object keys with '.', '..' or empty segments are never written.
"""

import os
from pathlib import Path
from typing import NamedTuple

import dagster as dg
from pydantic import BaseModel, Field

from assets.common.domains import InvalidDomainKey, UnsafeDomainFolder, check_domain_folder, is_domain_folder_name, validate_domain_key
from assets.common.object_store import cache_root, is_url, mirror_path, mirror_prefix
from assets.settings.domain_file import SECTIONS, DomainSettingsError, effective_config, load_domain_folder_settings

DEFAULT_LANDING_DIR = "data/landing"


class LandingFolders(NamedTuple):
    valid: list[str]                 # domain keys whose folder may be read
    invalid: list[str]               # folder names that are not valid domain keys
    refused: list[tuple[str, str]]   # (name, reason): folders never registered nor read


class LandingZone(dg.ConfigurableResource):
    """`<root>/<domain>/` holds a domain's files (jsonl, json, parquet, csv, txt)."""

    root: str = Field(
        "",
        description="Landing root: a folder, or an object-storage URL (s3://bucket/landing, gs://..., file:///...; "
        "S3 credentials and endpoint from the standard AWS_* variables), mirrored into $LORALINE_CACHE_DIR "
        "(else ~/.cache/loraline) before it is read. Empty: $LORALINE_LANDING_DIR, else data/landing "
        "(relative paths resolve against the working directory).",
    )

    settle_seconds: float = Field(
        30.0,
        ge=0,
        le=86_400,
        description="The landing sensor waits until every file of a domain is this many seconds "
        "old, so files still being written are not picked up (at most a day: a larger value would "
        "hold a domain back for good after every touch).",
    )

    max_hash_bytes_per_tick: int = Field(
        2 * 1024**3,
        ge=1024**2,
        le=16 * 1024**3,
        description="Bytes the landing sensor hashes per tick at most, over all domains (sha256 runs at "
        "about 1.5 GB/s on one core; the disk may be slower). A domain with more to hash is carried "
        "over to the next tick. Keeps every tick well under Dagster's 60 s sensor limit (hashing also "
        "stops after 30 s of a tick, whatever this says); higher notices big new domains sooner.",
    )

    max_run_retries: int = Field(
        3,
        ge=0,
        le=10,
        description="Automatic retries of a failed or canceled run launched by the landing sensor (a "
        "domain's chain on the same data, or the base_model build). After that the sensor logs a "
        "warning each tick and waits until the data changes or a run launched by hand succeeds.",
    )

    def remote_root(self) -> str | None:
        """The root URL when the landing is on object storage; None for a local folder."""
        root = self.root or os.environ.get("LORALINE_LANDING_DIR") or ""
        return root.rstrip("/") if is_url(root) else None

    def root_path(self) -> Path:
        """The local root: the folder itself, or the URL's mirror (filled by scan_folders and domain_dir)."""
        if (url := self.remote_root()) is not None:
            return mirror_path(url, cache_root())
        return Path(self.root or os.environ.get("LORALINE_LANDING_DIR") or DEFAULT_LANDING_DIR).resolve()

    def domain_dir(self, domain: str) -> Path:
        """The domain's folder; the key is validated before any path is built from it, and a folder
        that is a symlink is refused (also one that became a link after the domain was registered).
        On object storage, the domain's objects are mirrored first, so the folder is what the bucket holds now."""
        key = validate_domain_key(domain)
        if (url := self.remote_root()) is not None:
            self._mirror(url, only=key)
        try:
            return check_domain_folder(self.root_path() / key)
        except UnsafeDomainFolder as error:
            raise dg.Failure(str(error)) from None

    def domain_settings(self, domain: str) -> dict[str, dict]:
        """The validated sections of the domain's domain.yaml or domain.yml ({} without one)."""
        try:
            return load_domain_folder_settings(self.domain_dir(domain))
        except DomainSettingsError as error:
            raise dg.Failure(f"domain {domain!r}: {error}") from error

    def effective_settings(self, domain: str, section: str, launchpad: BaseModel) -> BaseModel:
        """What a step uses for this domain: defaults < its domain.yaml section < launchpad changes."""
        return effective_config(SECTIONS[section], launchpad, self.domain_settings(domain).get(section, {}))

    def domain_folders(self) -> tuple[list[str], list[str]]:
        """(valid domain keys, folder names that are not valid keys), both sorted; see scan_folders."""
        folders = self.scan_folders()
        return folders.valid, folders.invalid

    def scan_folders(self) -> LandingFolders:
        """The landing root's folders, sorted. Hidden ones are never domains (shared files may live
        there); a symlink to a folder is refused with its reason, never registered nor read."""
        root = self.root_path()
        if (url := self.remote_root()) is not None:
            names = self._mirror(url)
            valid = [name for name in names if is_domain_folder_name(name) and (root / name).is_dir()]
            invalid = [name for name in names if not is_domain_folder_name(name) and not name.startswith(".")]
            return LandingFolders(valid, invalid, [])
        if not root.is_dir():
            return LandingFolders([], [], [])
        valid, invalid, refused = [], [], []
        for child in sorted(root.iterdir()):
            if not child.is_dir() or child.name.startswith("."):
                continue
            try:
                check_domain_folder(child)
                valid.append(validate_domain_key(child.name))
            except InvalidDomainKey:
                invalid.append(child.name)
            except UnsafeDomainFolder as error:
                refused.append((child.name, str(error)))
        return LandingFolders(valid, invalid, refused)

    def _mirror(self, url: str, only: str | None = None) -> list[str]:
        """Mirror the landing (or one domain) from `url`; the top-level names it holds, sorted."""
        listed = mirror_prefix(url, self.root_path(), is_domain_folder_name, only)
        for key in listed["skipped"]:
            dg.get_dagster_logger().warning(f"landing {url}: skipping object {key!r}: '.', '..' or empty path segments")
        return listed["names"]
