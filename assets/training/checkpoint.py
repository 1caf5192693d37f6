"""Resumable training state: adapter weights, optimiser, schedule and counters, written atomically.

A checkpoint is written to a temporary folder and renamed into place, so a process killed with
SIGKILL mid-write leaves either the previous checkpoint or the new one, never half of one. Data order
and dropout are pure functions of (seed, step), so no RNG state needs saving.

The folder of one logical version is shared by every attempt at it (a retry resumes there), so one
attempt at a time holds it: `claim_checkpoints` takes the lock file `folder.lock` inside it for the
life of the training (it dies with the process, so a retry after a kill resumes), and
`remove_checkpoints` deletes the folder only while holding that lock.
"""

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from assets.common.locks import FOLDER_LOCK, LockBusy, describe_holder, hold_lock_file

STATE_FILE = "state.pt"
KEEP = 2  # checkpoints kept: the newest, and one before it in case the newest is unreadable


class AttemptInProgress(RuntimeError):
    """Another live attempt holds this version's checkpoints; a retry later may find them free."""


def save_checkpoint(checkpoint_dir: Path, step: int, state: dict[str, Any]) -> Path:
    import torch

    final = checkpoint_dir / f"step-{step:08d}"
    staging = checkpoint_dir / f".staging-step-{step:08d}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    torch.save(state, staging / STATE_FILE)
    with open(staging / STATE_FILE, "rb") as written:
        os.fsync(written.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    for old in sorted(checkpoint_dir.glob("step-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint; staging leftovers of a killed writer are ignored."""
    if not checkpoint_dir.is_dir():
        return None
    done = sorted(p for p in checkpoint_dir.glob("step-*") if (p / STATE_FILE).is_file())
    return done[-1] if done else None


def load_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    # Our own file: tensors, plain dicts and numbers only, so the safe loader reads it.
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)


@contextmanager
def claim_checkpoints(checkpoint_dir: Path, **about: Any) -> Iterator[None]:
    """Hold `checkpoint_dir` for one attempt's training, or raise LockBusy at once (another live
    attempt trains on it; `about`, e.g. the attempt id, tells later ones who holds it). Holding it,
    the half-written checkpoints of a killed attempt are removed."""
    with ExitStack() as held:
        try:
            held.enter_context(hold_lock_file(checkpoint_dir / FOLDER_LOCK, **about))
        except LockBusy as busy:
            domain = f" domain {about['domain']!r}" if about.get("domain") else ""
            raise AttemptInProgress(f"another attempt is training{domain} on these inputs ({describe_holder(busy.holder)}); "
                                    f"its checkpoints in {checkpoint_dir} are left alone") from None
        for stale in checkpoint_dir.glob(".staging-step-*"):
            shutil.rmtree(stale, ignore_errors=True)
        yield


def remove_checkpoints(checkpoint_dir: Path) -> bool:
    """Delete the folder once its result is published, holding its lock; False (the folder stays)
    when another attempt holds it."""
    if not checkpoint_dir.is_dir():
        return True
    try:
        with hold_lock_file(checkpoint_dir / FOLDER_LOCK, doing="removing the checkpoints of a published adapter"):
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
    except LockBusy:
        return False
    return True
