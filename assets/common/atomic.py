"""Atomic artifact directories: readers never see a half-written model or dataset; and the sweep of
what killed writers leave behind.

Every staging folder is locked (flock on the folder itself, assets/common/locks.py) by its writer
for as long as it writes. A process killed mid-write (OOM, SIGKILL, a lost pod) cannot clean up,
but its lock dies with it: `sweep_leftovers` removes staging folders whose lock is free and that
are older than a grace period, and never one a live writer holds.
"""

import fnmatch
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from assets.common.locks import FOLDER_LOCK, LockBusy, hold_directory, hold_lock_file
from assets.common.object_store import publish_directory, url_of

# Names of writers' scratch folders, hidden siblings of what they publish: atomic_directory's
# `.<name>.staging-<hex>`, the base model build's `.build-<name>-<random>` (foundation/resolve.py) and
# retention's `.<version>.deleting-<hex>` (retention.py) and the pickled-weights conversion's
# `.<name>.pickled-<random>` (foundation/model_files.py).
# clean_corpus's `.spool-*` lives inside its staging folder and goes with it.
LEFTOVER_PATTERNS = (".*.staging-*", ".build-*", ".*.deleting-*", ".*.pickled-*")


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a staging folder beside `final`; rename it to `final` only if the block succeeds.

    The staging folder is a hidden sibling so the rename stays on one filesystem (atomic on
    POSIX). An existing `final` is never replaced: artifacts are immutable once published. The
    staging folder is locked while the block runs, so a sweep never takes it from a live writer.
    When `final` lies in the local mirror of an object-storage root (assets/common/object_store.py),
    the finished folder is first published there (files, then the manifest), still under the lock:
    the local rename happens only once the remote version is visible.
    """
    if final.exists():
        raise FileExistsError(f"artifact folder {final} already exists; refusing to overwrite it")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    lock = hold_directory(staging)
    try:
        yield staging
        # Checked again at the end: rename(2) would silently replace an empty folder that another
        # writer published meanwhile. Version folders carry the run id, so this is a last guard.
        if final.exists():
            raise FileExistsError(f"artifact folder {final} appeared while writing; refusing to overwrite it")
        if (remote := url_of(final)) is not None:
            publish_directory(staging, remote)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.close(lock)


@contextmanager
def locked_temp_directory(parent: Path, prefix: str) -> Iterator[Path]:
    """A new folder `<parent>/<prefix><random>`, locked while the block runs, removed after it."""
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    lock = hold_directory(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(lock)


def newest_mtime(path: Path) -> float:
    """The latest modification time of a folder and its direct children (what a writer touches)."""
    times = [path.lstat().st_mtime]
    try:
        times += [child.lstat().st_mtime for child in path.iterdir()]
    except OSError:
        pass
    return max(times)


def sweep_leftovers(folder: Path, grace_s: float, patterns: tuple[str, ...] = LEFTOVER_PATTERNS) -> list[Path]:
    """Remove the scratch folders of dead writers directly inside `folder`; the paths removed.

    A leftover goes when its lock is free (its writer is dead, or wrote with no lock before locks
    existed) and nothing in it changed for `grace_s` seconds (a writer between creating its folder
    and locking it is not mistaken for a dead one). It is removed while this sweep holds its lock.
    Symlinks are never followed.
    """
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for path in sorted(folder.iterdir()):
        if not any(fnmatch.fnmatchcase(path.name, pattern) for pattern in patterns):
            continue
        if path.is_symlink() or not path.is_dir():
            continue
        try:
            lock = hold_directory(path)
        except (LockBusy, OSError):
            continue  # a live writer, or gone meanwhile (published or cleaned by its writer)
        try:
            if now - newest_mtime(path) < grace_s:
                continue
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
        finally:
            os.close(lock)
    return removed


def sweep_locked_folders(folder: Path, grace_s: float, keep: str | None = None, lock_name: str = FOLDER_LOCK) -> list[Path]:
    """Remove the sub-folders of `folder` guarded by a lock file `<sub>/<lock_name>` (training
    checkpoints) that no live process holds and that went untouched for `grace_s` seconds, except
    `keep`; the paths removed. Each is removed while this sweep holds its lock."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for path in sorted(folder.iterdir()):
        if path.name == keep or path.name.startswith(".") or path.is_symlink() or not path.is_dir():
            continue
        if now - newest_mtime(path) < grace_s:  # before locking: taking the lock writes into the folder
            continue
        try:
            with hold_lock_file(path / lock_name, doing="removing checkpoints of inputs no longer current"):
                shutil.rmtree(path, ignore_errors=True)
        except (LockBusy, OSError):
            continue  # an attempt is training on it, or it went meanwhile
        if not path.exists():
            removed.append(path)
    return removed
