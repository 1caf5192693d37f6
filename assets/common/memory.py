"""How glibc's allocator treats freed memory: returned to the system while a step streams (and
trimmed on demand, release_freed_memory), kept for reuse while a step computes.

Streaming code allocates and frees large temporary arrays (numpy, Arrow) once per batch. glibc keeps
freed blocks below its mmap threshold (which it raises itself up to 32 MB) in per-thread arenas, so a
streamed cleaning of a 1 GB corpus measured 1.6 GB of RSS, almost all of it freed memory. Serving
blocks of 1 MB and more by mmap (returned on free) and using at most two arenas brought it to 0.8 GB.

Compute is the opposite case: greedy decoding grows each layer's KV cache by a copy every token and
training allocates activations every step, blocks of a few MB freed moments later. Served by mmap,
each one costs a page fault per 4 KB touched: the demo's main process, left at 1 MB after cleaning,
took 4.2 million faults and 10 s of system time, most of it decoding the task answers. So the
streaming setting is scoped to the streaming step, and compute gets the thresholds glibc's own
dynamic scheme ends at (mmap 32 MB, trim 64 MB), fixed.
"""

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
STREAMING = ((_M_MMAP_THRESHOLD, 1 << 20), (_M_ARENA_MAX, 2))
COMPUTE = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 64 << 20))

_streaming = 0  # how many returning_freed_memory blocks are open: the outermost one restores


@contextmanager
def returning_freed_memory() -> Iterator[bool]:
    """For a streaming step: freed blocks of 1 MB and more go back to the system, then the compute
    setting. Yields False (and changes nothing) where glibc is not the allocator."""
    global _streaming
    tuned = _mallopt(STREAMING)
    _streaming += 1
    try:
        yield tuned
    finally:
        _streaming -= 1
        if tuned and not _streaming:
            _mallopt(COMPUTE)


def reuse_freed_memory() -> bool:
    """For a process that computes (a trainer): freed blocks up to 32 MB are kept for the next step."""
    return _mallopt(COMPUTE)


def release_freed_memory() -> None:
    """Give memory freed by Python and the Rust tokenizer back to the OS (glibc's malloc_trim).

    glibc keeps freed heap and the arenas of other threads (the pool's result thread unpickles
    every chunk in its own) for reuse, and fragmentation leaves them mostly unreusable: measured in
    the tokenization parent on 200 MB of text, RSS climbed 365 -> 470 MB while live Python objects
    (tracemalloc) stayed at 68 MB and Arrow's pool at 35 MB; one malloc_trim(0) took it back to 355 MB.
    A trim costs about a millisecond; elsewhere than glibc it does nothing."""
    libc = _glibc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _mallopt(settings: tuple[tuple[int, int], ...]) -> bool:
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallopt"):  # musl and others have no mallopt
        return False
    # A list, not a generator: every option is set even when an earlier one is refused.
    return all([bool(libc.mallopt(option, value)) for option, value in settings])


@cache
def _glibc() -> Any:
    """The C library, looked up once (find_library runs ldconfig); None off Linux or where it does not load."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
