"""Advisory locks (flock) that die with their process: who is writing a folder, and is it still alive.

A writer holds an exclusive `flock` for as long as it writes; the kernel drops it when the process
ends, SIGKILL and OOM kills included. So a lock that can be taken means its writer is gone, and a
lock that cannot means a live process still owns the folder. Two kinds:

- a lock *file* (`hold_lock_file`), whose content says who holds it (pid, host, what it does):
  the training checkpoints of one logical version, shared by every attempt;
- the *directory* itself (`hold_directory`): staging folders, where an extra file would end up in
  the published artifact.

flock is per open file, so two opens in one process exclude each other too (threads, in-process
runs). Local filesystems only: flock over NFS is not reliable.
"""

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FOLDER_LOCK = "folder.lock"  # the lock file inside a scratch folder shared by attempts (training checkpoints)


class LockBusy(RuntimeError):
    """The lock is held by a live process; `holder` is what that process wrote about itself."""

    def __init__(self, path: Path, holder: dict[str, Any]):
        self.path, self.holder = path, holder
        super().__init__(f"{path} is held by {describe_holder(holder)}")


def describe_holder(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process (it wrote nothing about itself)"
    parts = [f"pid {holder.get('pid', '?')}"]
    if holder.get("host") and holder.get("host") != socket.gethostname():
        parts.append(f"on {holder['host']}")
    if holder.get("attempt"):
        parts.append(f"attempt {holder['attempt']}")
    if holder.get("since"):
        parts.append(f"since {time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime(holder['since']))}")
    return ", ".join(parts)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        return json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}


@contextmanager
def hold_lock_file(path: Path, **about: Any) -> Iterator[None]:
    """Hold `path` (created if missing) exclusively for the block, or raise `LockBusy` at once.

    The holder writes `about` (plus pid, host and time) into the file, so whoever finds it busy can
    say who holds it. The lock may be deleted by its holder (with the folder it guards): after
    locking, the path is checked to still name the locked file, else the lock is taken again.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(10):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if not _try_flock(fd):
            holder = _read_holder(fd)
            os.close(fd)
            raise LockBusy(path, holder)
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # removed (or replaced) by the previous holder between our open and our lock
    else:
        raise LockBusy(path, {})
    try:
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), **about}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (a later holder reuses it)


def lock_holder(path: Path) -> dict[str, Any] | None:
    """Who holds the lock file `path` now ({} when it wrote nothing), or None when nobody does."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        return None if _try_flock(fd) else _read_holder(fd)
    finally:
        os.close(fd)


def hold_directory(path: Path) -> int:
    """Lock the directory `path` itself; returns the descriptor (closing it releases the lock).
    Raises LockBusy if a live process holds it."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    if not _try_flock(fd):
        os.close(fd)
        raise LockBusy(path, {})
    return fd
