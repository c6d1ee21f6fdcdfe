"""The process's memory allocator, set once at the start of a sweep.

Why: glibc's malloc raises its mmap threshold each time a big mapped block is freed and gives threads their own
arenas, so the many large, short-lived buffers of a long run (decoded batches, codec arrays) end up on heaps that
only grow: a sweep's peak memory crept up with the size of its data set (96x96 image folders, levels streamed:
+15 kB per image from 2000 to 8000 images, +3-4 kB beyond). With the threshold fixed at 64 kB and 2 arenas the peak
was flat and lower (2000 and 32000 images: 1.96 and 1.95 GB, against 2.2-2.5 GB; BENCHMARKS.md). A no-op where the
C library is not glibc, or where the user set MALLOC_MMAP_THRESHOLD_ / MALLOC_ARENA_MAX themselves.
"""

import ctypes
import os
import sys

M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 64 * 1024
ARENA_MAX = 2
_applied = False


def limit_heap_growth() -> bool:
    """Fixes glibc's mmap threshold and arena count for this process; True when they are set (now or before)."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux") or {"MALLOC_MMAP_THRESHOLD_", "MALLOC_ARENA_MAX"} & set(os.environ):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False
    _applied = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_ARENA_MAX, ARENA_MAX) == 1
    return _applied
