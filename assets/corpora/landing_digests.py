"""The landing sensor's file digests: hashed once per file version, and only so many bytes per tick.

A domain of tens of GB must not be re-hashed whole on every change, nor push a sensor tick past
Dagster's 60 s limit (a tick that times out saves nothing, so it would time out again forever):
- each file's sha256 is cached under the key (size, mtime_ns, ctime_ns, inode). A change re-hashes
  the changed files only. ctime is in the key because a copy that restores mtime (`cp -p`,
  `touch -r`) cannot restore it;
- a tick hashes at most `budget` bytes over all domains, and for at most 30 s whatever the disk's
  speed. A file left unfinished keeps its hash state in this process (the sensor's code server is
  long-lived) and goes on next tick; if the process restarted, that file starts over. Files
  finished are cached, so no finished work is lost across ticks.
The cache is a small JSON file per domain, in a folder the sensor owns (not the landing root,
which producers write: a forged cache would forge fingerprints). A cache that is missing, stale or
corrupt only costs hashing: an entry is used only while the file's key still matches.

Pure module (stdlib, never dagster).
"""

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from assets.common.hashing import digests_fingerprint
from assets.corpora.listing import os_error

_CHUNK_BYTES = 1 << 20
# Dagster stops a sensor evaluation after 60 s and keeps nothing of it: hashing stops well before.
HASH_SECONDS_PER_TICK = 30.0
FileKey = tuple[int, int, int, int]  # (size, mtime_ns, ctime_ns, inode) of the file a digest describes

# One hash in progress per domain folder: (relative name, key, sha256 state, bytes hashed so far).
# hashlib states cannot be saved to disk, so this lives in the process; at most one entry per domain.
_IN_PROGRESS: dict[str, tuple[str, FileKey, "hashlib._Hash", int]] = {}


class ScanError(Exception):
    """A domain cannot be scanned this tick (a file vanished, is unreadable, or changed while hashed)."""


def file_key(path: Path) -> FileKey:
    stat = path.stat()  # follows the allowed links: the key describes the bytes that are read
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


class HashBudget:
    """Bytes a tick may still hash, shared by every domain of the tick. The time limit is a guard
    for slow storage (a network disk at 50 MB/s reads 2 GB in 40 s): past it, no byte is left."""

    def __init__(self, limit: int, seconds: float = HASH_SECONDS_PER_TICK) -> None:
        self.limit, self._left = limit, limit
        self.deadline = time.monotonic() + seconds

    @property
    def left(self) -> int:
        return self._left if time.monotonic() < self.deadline else 0

    def spend(self, size: int) -> None:
        self._left -= size

    @property
    def spent(self) -> int:
        return self.limit - self._left


@dataclass(frozen=True)
class Digests:
    done: dict[str, str]   # relative name -> sha256 hex, for every file finished
    hashed: int            # bytes of the files to hash that are hashed (finished or in progress)
    to_hash: int           # bytes of the files whose cached digest did not match

    @property
    def complete(self) -> bool:
        return self.hashed == self.to_hash


def domain_digests(folder: Path, files: dict[str, tuple[Path, FileKey]], cache: dict[str, list],
                   budget: HashBudget) -> Digests:
    """The sha256 of every file: from `cache` where its key matches, else hashed within `budget`.

    `cache` (relative name -> [size, mtime_ns, ctime_ns, inode, sha256]) is updated in place with
    what was hashed; entries of files no longer present are dropped. Raises ScanError naming the file.
    """
    for name in set(cache) - set(files):
        del cache[name]
    done: dict[str, str] = {}
    stale = []
    for name, (path, key) in sorted(files.items()):
        entry = cache.get(name)
        if entry and tuple(entry[:4]) == key:
            done[name] = entry[4]
        else:
            stale.append((name, path, key))
    to_hash = sum(key[0] for _, _, key in stale)
    hashed = 0
    for name, path, key in stale:
        digest, offset = _hash_within(str(folder), name, path, key, budget)
        hashed += offset
        if digest is None:
            continue
        done[name] = digest
        cache[name] = [*key, digest]
    return Digests(done, hashed, to_hash)


def _hash_within(slot: str, name: str, path: Path, key: FileKey, budget: HashBudget) -> tuple[str | None, int]:
    """(sha256 hex or None if the budget ran out first, bytes of the file hashed so far)."""
    progress = _IN_PROGRESS.get(slot)
    if progress and progress[0] == name and progress[1] == key:
        hasher, offset = progress[2], progress[3]
    else:
        hasher, offset = hashlib.sha256(), 0
    if budget.left <= 0 and offset < key[0]:
        return None, offset
    try:
        with open(path, "rb") as handle:
            if _key_of(os.fstat(handle.fileno())) != key:
                raise ScanError(f"file {name} changed while it was being scanned; looking again next tick")
            handle.seek(offset)
            while budget.left > 0 and (chunk := handle.read(min(_CHUNK_BYTES, budget.left))):
                hasher.update(chunk)
                offset += len(chunk)
                budget.spend(len(chunk))
            unchanged = _key_of(os.fstat(handle.fileno())) == key
    except OSError as error:  # vanished between listing and hashing, or unreadable
        _IN_PROGRESS.pop(slot, None)
        raise ScanError(f"file {name}: {os_error(error)}; looking again next tick") from None
    if not unchanged or offset > key[0]:
        _IN_PROGRESS.pop(slot, None)
        raise ScanError(f"file {name} was written to while it was hashed; looking again next tick")
    if offset < key[0]:
        _IN_PROGRESS[slot] = (name, key, hasher, offset)
        return None, offset
    if progress and progress[0] == name:
        _IN_PROGRESS.pop(slot, None)
    return hasher.hexdigest(), offset


def _key_of(stat: os.stat_result) -> FileKey:
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino


def fingerprint_of(digests: dict[str, str], chars: int) -> str:
    """The landing fingerprint from per-file digests (equal to landing_fingerprint of the folder)."""
    return digests_fingerprint(digests)[:chars]


class DigestCache:
    """One JSON file per domain under `folder`; None keeps the cache in memory for this tick only."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.errors: list[str] = []  # saves that failed (read-only disk...): the sensor logs them

    def load(self, domain: str) -> dict[str, list]:
        if self.folder is None:
            return {}
        try:
            entries = json.loads((self.folder / f"{domain}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):  # missing or corrupt: costs hashing, never a wrong digest
            return {}
        if not isinstance(entries, dict):
            return {}
        return {name: entry for name, entry in entries.items()
                if isinstance(entry, list) and len(entry) == 5 and isinstance(entry[4], str)}

    def save(self, domain: str, entries: dict[str, list]) -> None:
        """Write atomically (temp file then rename), so a killed tick leaves the old cache or the new."""
        if self.folder is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=self.folder, prefix=f".{domain}.", suffix=".tmp")
        except OSError as error:
            self.errors.append(f"{domain}: digest cache not saved in {self.folder}: {os_error(error)}")
            return
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(entries, out, separators=(",", ":"), sort_keys=True)
            os.replace(temp, self.folder / f"{domain}.json")
        except OSError as error:
            self.errors.append(f"{domain}: digest cache not saved in {self.folder}: {os_error(error)}")
        finally:
            Path(temp).unlink(missing_ok=True)  # gone already after the rename
