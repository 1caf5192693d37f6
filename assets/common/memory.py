"""Ask glibc's allocator to hand freed memory back to the system, for streaming steps.

Streaming code allocates and frees large temporary arrays (numpy, Arrow) once per batch. glibc keeps
freed blocks below its mmap threshold (which it raises itself up to 32 MB) in per-thread arenas, so a
streamed cleaning of a 1 GB corpus measured 1.6 GB of RSS, almost all of it freed memory. Serving
blocks of 1 MB and more by mmap (returned on free) and using at most two arenas brought it to 0.8 GB.
"""

import ctypes
import ctypes.util
import sys

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def return_freed_memory() -> bool:
    """Tune glibc for this process; False (and nothing changed) where glibc is not the allocator."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)) and bool(libc.mallopt(_M_ARENA_MAX, 2))
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
