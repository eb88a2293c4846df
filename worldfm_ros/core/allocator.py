"""Keep freed memory in the process instead of returning it to the kernel (glibc only).

A learned render allocates tens of MB of short-lived arrays per view (eight warped 320x240
references, the network's full-resolution maps). glibc serves blocks above its mmap threshold
(128 kB to 32 MB, adaptive) with fresh ``mmap`` pages and unmaps them on ``free``, so every view
pays a page fault per 4 kB page on first write, and the two warp threads fault under the
same address-space lock: with the kernel zeroing pages, a quarter of the benchmark's CPU time
was system time. Raising the mmap threshold and the trim threshold lets freed blocks be reused.

Measured (``worldfm-bench --data ../shared/data/redkitchen_a --frames 250 --targets 20
--repeats 3 --retrieval-counts 100 --backend learned geometric --threads 2``, 2-core VM, runs
with ``WORLDFM_MALLOC_TUNING=0`` and without interleaved): learned p50 62.5 / 63.8 / 58.0 ms
without the tuning, 46.7 / 42.0 / 51.9 ms with it; process CPU time per view 110-119 -> 78-93 ms.

The cost: the process keeps up to :data:`TRIM_THRESHOLD` of freed memory (its peak working
set), which a robot node holding keyframes in memory has anyway. ``WORLDFM_MALLOC_TUNING=0``
in the environment leaves the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading

#: glibc ``mallopt`` parameters (``malloc.h``).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap, not from fresh ``mmap`` pages [bytes].
MMAP_THRESHOLD = 256 * 1024 * 1024
#: Freed heap memory kept before any is returned to the kernel [bytes].
TRIM_THRESHOLD = 512 * 1024 * 1024

_lock = threading.Lock()
_state: dict = {}


def keep_freed_memory() -> bool:
    """Apply the thresholds once per process; ``True`` if glibc accepted them. A no-op
    (``False``) off Linux/glibc or with ``WORLDFM_MALLOC_TUNING=0``."""
    with _lock:
        if "applied" in _state:
            return _state["applied"]
        applied = False
        if os.environ.get("WORLDFM_MALLOC_TUNING", "1") != "0" and sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):  # not glibc (musl has no mallopt)
                mallopt = None
            if mallopt is not None:
                mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
                mallopt.restype = ctypes.c_int
                applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                    mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        _state["applied"] = applied
        return applied
