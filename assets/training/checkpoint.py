"""Resumable training state: adapter weights, optimiser, schedule and counters, written atomically.

A checkpoint is written to a temporary folder and renamed into place, so a process killed with
SIGKILL mid-write leaves either the previous checkpoint or the new one, never half of one. Data order
and dropout are pure functions of (seed, step), so no RNG state needs saving.
"""

import os
import shutil
from pathlib import Path
from typing import Any

STATE_FILE = "state.pt"
KEEP = 2  # checkpoints kept: the newest, and one before it in case the newest is unreadable


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
