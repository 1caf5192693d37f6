"""Artifact and landing roots on object storage (`s3://`, `gs://`, `file://`, any fsspec URL), seen
through a local mirror, because torch, transformers, datasets and polars want local files.

A URL maps to one local folder, `<cache>/remote/<protocol>/<bucket and key>` (`mirror_path`); a
marker file at `<cache>/remote/<protocol>/` lets code that only holds a local path find its URL again
(`url_of`), so metadata records `s3://...` while the heavy libraries read and write the mirror.

Publishing is atomic without a rename (object stores have none): every file of a finished local
version is uploaded under its final prefix, then `_manifest.json` (each file's size and sha256) is
written last. A version exists for readers only when its manifest does; a publish killed half-way
leaves objects without a manifest, which nobody reads and `sweep_unpublished` removes after a grace
period. Staging in downloads into a hidden locked sibling, checks every file against the manifest's
sizes and sha256, then renames, so a local copy is always complete and equal to what was published.

Clients come from fsspec with their own configuration: for S3, s3fs reads the standard AWS variables
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL or
AWS_ENDPOINT_URL_S3 for MinIO, Ceph, R2 and the like) and profiles.
"""

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assets.common.hashing import file_sha256
from assets.common.locks import hold_directory

MANIFEST = "_manifest.json"
MARKER = ".loraline-remote.json"  # in <cache>/remote/<protocol>/: which protocol the tree below mirrors
MANIFEST_FORMAT = 1
# Variables that pick an S3 client's endpoint and identity: a client made under other values is not reused.
_CLIENT_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
               "AWS_PROFILE", "AWS_SESSION_TOKEN")
_CLIENTS: dict[tuple, Any] = {}


class UnpublishedVersion(FileNotFoundError):
    """A remote version has no manifest: never published, or removed."""


def is_url(root: str) -> bool:
    return "://" in root


def cache_root(configured: str = "") -> Path:
    """The local cache: `configured`, else $LORALINE_CACHE_DIR, else $XDG_CACHE_HOME/loraline (~/.cache/loraline)."""
    chosen = configured or os.environ.get("LORALINE_CACHE_DIR") or ""
    if not chosen:
        chosen = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "loraline")
    return Path(chosen).expanduser().resolve()


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path without protocol) for `url`. Listings are never cached: another
    process publishes and prunes, and a stale listing would show a version that is gone."""
    import fsspec

    protocol = url.split("://", 1)[0]
    key = (protocol, tuple(os.environ.get(name, "") for name in _CLIENT_ENV))
    if key not in _CLIENTS:
        try:
            local = {"auto_mkdir": True} if protocol in ("file", "local") else {}  # object stores have no folders to make
            _CLIENTS[key] = fsspec.filesystem(protocol, use_listings_cache=False, skip_instance_cache=True, **local)
        except (ImportError, ValueError) as error:
            raise ValueError(f"cannot open {url!r}: {error} (s3:// needs s3fs, gs:// gcsfs)") from error
    fs = _CLIENTS[key]
    return fs, fs._strip_protocol(url).rstrip("/")


def _segments(path: str, url: str) -> list[str]:
    parts = path.strip("/").split("/")
    if not path.strip("/") or any(part in ("", ".", "..") or "\\" in part for part in parts):
        raise ValueError(f"unsafe object storage URL {url!r}: empty, '.' or '..' segments, or backslashes")
    return parts


def mirror_path(url: str, cache: Path) -> Path:
    """The local folder that mirrors `url` (nothing is downloaded); writes the protocol's marker."""
    fs, path = filesystem(url)
    protocol = url.split("://", 1)[0]
    if not protocol.isalnum():
        raise ValueError(f"unsupported URL {url!r}: the protocol must be letters and digits (s3, gs, file)")
    base = cache / "remote" / protocol
    marker = base / MARKER
    if not marker.is_file():
        base.mkdir(parents=True, exist_ok=True)
        temporary = base / f".{MARKER}.{uuid.uuid4().hex[:8]}"
        temporary.write_text(json.dumps({"protocol": protocol, "absolute": path.startswith("/")}))
        temporary.replace(marker)
    return base.joinpath(*_segments(path, url))


def url_of(local: Path) -> str | None:
    """The URL a mirrored local path stands for; None for a path outside every mirror (a local root)."""
    local = Path(local).absolute()
    for parent in local.parents:
        marker = parent / MARKER
        if marker.is_file():
            about = json.loads(marker.read_text())
            relative = local.relative_to(parent).as_posix()
            return f"{about['protocol']}://{'/' if about.get('absolute') else ''}{relative}"
    return None


def local_manifest(folder: Path) -> dict:
    """Every regular file under `folder` (relative posix name -> size, sha256); symlinks are refused."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise ValueError(f"{path} is a symlink; an artifact version holds regular files only")
        if path.is_file():
            files[path.relative_to(folder).as_posix()] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    return {"format": MANIFEST_FORMAT, "files": files}


def manifest_digest(manifest: dict) -> str:
    """The content key of a version: sha256 of its files' names, sizes and digests."""
    return hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()


def read_manifest(url: str) -> dict | None:
    """A remote version's manifest; None when it has none (not published, or pruned)."""
    fs, path = filesystem(url)
    try:
        return json.loads(fs.cat_file(f"{path}/{MANIFEST}"))
    except FileNotFoundError:
        return None


def is_published(url: str) -> bool:
    return read_manifest(url) is not None


def publish_directory(folder: Path, url: str, after_upload: Callable[[], None] | None = None) -> dict:
    """Upload `folder`'s files under `url`, then its manifest (the commit point); the manifest.

    Publishing again the same bytes is a no-op (content-addressed folders: the base model); other
    bytes where a manifest exists raise FileExistsError, as a local published folder would.
    A failure before the manifest removes what was uploaded (a kill leaves it to the sweep).
    """
    manifest = local_manifest(folder)
    existing = read_manifest(url)
    if existing is not None:
        if existing.get("files") == manifest["files"]:
            return existing
        raise FileExistsError(f"artifact version {url} is already published with other content; refusing to overwrite it")
    fs, path = filesystem(url)
    try:
        for name in manifest["files"]:
            fs.put_file(str(folder / name), f"{path}/{name}")
        if after_upload is not None:
            after_upload()
        _check_uploaded(fs, path, manifest, url)
        fs.pipe_file(f"{path}/{MANIFEST}", json.dumps({**manifest, "published_at": time.time()}, sort_keys=True).encode())
    except BaseException:
        if read_manifest(url) is None:
            _remove_prefix(fs, path)
        raise
    return manifest


def _check_uploaded(fs: Any, path: str, manifest: dict, url: str) -> None:
    # One listing before the commit point: a sweep that took this upload for a dead one (a single
    # file uploading for longer than the grace period) must fail the publish, not leave a manifest
    # that names missing objects.
    found = {key[len(path):].lstrip("/"): info.get("size") for key, info in fs.find(path, detail=True).items()}
    missing = [name for name, entry in manifest["files"].items() if found.get(name) != entry["size"]]
    if missing:
        raise RuntimeError(f"publishing {url}: {len(missing)} uploaded file(s) are missing or of another size "
                           f"({', '.join(missing[:3])}); removed meanwhile? Nothing was published")


def _remove_prefix(fs: Any, path: str) -> None:
    try:
        fs.rm(path, recursive=True)
    except FileNotFoundError:
        pass


@contextmanager
def _locked_staging(final: Path) -> Iterator[Path]:
    # Named like atomic_directory's staging folders, so the artifact store's sweep removes a dead one.
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    lock = hold_directory(staging)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        os.close(lock)


def matches(folder: Path, manifest: dict) -> bool:
    """A local copy holds every file of `manifest` at its size (versions are immutable, so sizes
    catch a truncated or foreign folder; the bytes were checked against sha256 when staged in)."""
    try:
        return all((folder / name).stat().st_size == entry["size"] for name, entry in manifest["files"].items())
    except OSError:
        return False


def stage_in(url: str, local: Path) -> Path:
    """A complete local copy of the published version `url` at `local` (its mirror path), downloaded
    only when missing; every file is checked against the manifest's sha256 before it is used."""
    manifest = read_manifest(url)
    if manifest is None:
        raise UnpublishedVersion(f"{url} is not a published version (no {MANIFEST}): never published, or pruned")
    if local.is_dir():
        if matches(local, manifest):
            return local
        raise ValueError(f"local copy {local} of {url} differs from its manifest; remove it and run again")
    fs, path = filesystem(url)
    with _locked_staging(local) as staging:
        for name, entry in manifest["files"].items():
            target = staging.joinpath(*_segments(name, f"{url}/{name}"))
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(f"{path}/{name}", str(target))
            if file_sha256(target) != entry["sha256"]:
                raise ValueError(f"{url}/{name} does not match its manifest's sha256; the version is damaged")
        try:
            staging.rename(local)
        except OSError:
            if not (local.is_dir() and matches(local, manifest)):
                raise  # else another process staged the same version in meanwhile
    return local


@dataclass(frozen=True)
class RemoteVersion:
    name: str
    url: str
    published: bool
    newest: float  # latest modification of its objects, seconds since the epoch (0 when unknown)


def _modified(info: dict) -> float:
    value = info.get("LastModified") or info.get("mtime") or info.get("updated") or info.get("created") or 0
    if hasattr(value, "timestamp"):
        return value.timestamp()
    if isinstance(value, str):
        from datetime import datetime

        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value)


def remote_versions(folder_url: str) -> list[RemoteVersion]:
    """The sub-prefixes of `folder_url` (one per version), with whether each is published, sorted by name."""
    fs, path = filesystem(folder_url)
    try:
        found = fs.find(path, detail=True)
    except FileNotFoundError:
        return []
    versions: dict[str, dict] = {}
    for key, info in found.items():
        relative = key[len(path):].lstrip("/")
        if "/" not in relative:
            continue  # a loose object, not a version
        name, rest = relative.split("/", 1)
        entry = versions.setdefault(name, {"published": False, "newest": 0.0})
        entry["published"] |= rest == MANIFEST
        entry["newest"] = max(entry["newest"], _modified(info))
    return [RemoteVersion(name, f"{folder_url.rstrip('/')}/{name}", v["published"], v["newest"]) for name, v in sorted(versions.items())]


def unpublish(url: str) -> None:
    """Remove a version: its manifest first (readers stop seeing it at once), then its objects."""
    fs, path = filesystem(url)
    try:
        fs.rm_file(f"{path}/{MANIFEST}")
    except FileNotFoundError:
        pass
    _remove_prefix(fs, path)


def sweep_unpublished(folder_url: str, grace_s: float, now: float | None = None) -> list[str]:
    """Remove versions under `folder_url` that have objects but no manifest and went untouched for
    `grace_s` seconds (a killed publish); the URLs removed. A live upload keeps touching its prefix."""
    now = time.time() if now is None else now
    removed = []
    for version in remote_versions(folder_url):
        if not version.published and now - version.newest >= grace_s:
            unpublish(version.url)
            removed.append(version.url)
    return removed


def mirror_prefix(url: str, local: Path, accept: Callable[[str], bool], only: str | None = None) -> dict[str, list[str]]:
    """Make `local` hold the objects under `url` whose first segment `accept`s (only `<url>/<only>/`
    when given, an accepted name), downloading only what changed (size and ETag or modification
    time), removing what vanished; each file's modification time is its object's. Returns
    {"names": every first segment listed (also refused ones), "skipped": keys with unsafe segments,
    never written}."""
    fs, path = filesystem(url)
    try:
        found = fs.find(f"{path}/{only}" if only else path, detail=True)
    except FileNotFoundError:
        found = {}
    local.mkdir(parents=True, exist_ok=True)
    index_file = local / ".index.json"
    index = json.loads(index_file.read_text()) if index_file.is_file() else {}
    names, skipped, wanted = set(), [], {}
    for key, info in found.items():
        relative = key[len(path):].lstrip("/")
        if not relative or info.get("type") == "directory":
            continue
        names.add(relative.split("/", 1)[0])
        if relative.endswith("/"):
            continue  # a zero-byte "folder" object some tools create
        if relative.startswith(".") or not accept(relative.split("/", 1)[0]):
            continue
        try:
            _segments(relative, f"{url}/{relative}")
        except ValueError:
            skipped.append(relative)
            continue
        wanted[relative] = info
    downloads = local / ".downloads"
    for relative, info in sorted(wanted.items()):
        signal = [info.get("size"), str(info.get("ETag") or info.get("etag") or info.get("md5Hash") or ""), _modified(info)]
        target = local.joinpath(*relative.split("/"))
        if index.get(relative) == signal and target.is_file():
            continue
        downloads.mkdir(exist_ok=True)
        part = downloads / uuid.uuid4().hex
        fs.get_file(f"{path}/{relative}", str(part))
        os.utime(part, (signal[2], signal[2]))
        target.parent.mkdir(parents=True, exist_ok=True)
        part.replace(target)
        index[relative] = signal
    for relative in sorted(set(index) - set(wanted)):
        first = relative.split("/", 1)[0]
        if (only and first != only) or not accept(first):
            continue
        (local.joinpath(*relative.split("/"))).unlink(missing_ok=True)
        del index[relative]
    _prune_empty(local)
    temporary = local / f".index.json.{uuid.uuid4().hex[:8]}"
    temporary.write_text(json.dumps(index, sort_keys=True))
    temporary.replace(index_file)
    return {"names": sorted(names), "skipped": skipped}


def _prune_empty(local: Path) -> None:
    for folder in sorted((p for p in local.rglob("*") if p.is_dir() and not p.is_symlink()), key=lambda p: -len(p.parts)):
        if folder.name != ".downloads" and not any(folder.iterdir()):
            folder.rmdir()
