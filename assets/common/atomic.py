"""Atomic artifact directories: readers never see a half-written model or dataset."""

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a staging folder beside `final`; rename it to `final` only if the block succeeds.

    The staging folder is a hidden sibling so the rename stays on one filesystem (atomic on
    POSIX). An existing `final` is never replaced: artifacts are immutable once published.
    """
    if final.exists():
        raise FileExistsError(f"artifact folder {final} already exists; refusing to overwrite it")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        # Checked again at the end: rename(2) would silently replace an empty folder that another
        # writer published meanwhile. Version folders carry the run id, so this is a last guard.
        if final.exists():
            raise FileExistsError(f"artifact folder {final} appeared while writing; refusing to overwrite it")
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
