"""Filesystem shapes the landing code must survive, built the same way wherever a test needs one."""

import os
from pathlib import Path


def bury_unlistable_folder(folder: Path, depth: int = 20) -> None:
    """Nest `depth` folders of 250-character names under `folder`, made with relative mkdir: the
    innermost cannot be listed by path (ENAMETOOLONG), which holds even for root, unlike a mode bit."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d" * 250, dir_fd=fd)
            inner = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)
