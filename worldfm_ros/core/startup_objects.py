"""Keep Python's cyclic garbage collector off the objects made while starting up.

A running node holds about 270,000 objects tracked by the garbage collector. Nearly all of them
are functions, tuples, dicts and descriptors made by imports (torch, numba, scikit-image) and
by the first ingest and render, which load compiled kernels; they live as long as the process.
Every full (generation 2) collection walks all of them. Measured in ``worldfm-demo``'s node:
160-210 ms per collection, during which no callback runs. The simulated camera then missed
ticks: gaps of up to 0.57 s between its images, 8.1 Hz of 10 asked in the worst run.

``gc.freeze()`` moves every object tracked so far to a permanent generation that collections
skip (Python's documented remedy for long-lived start-up objects). Objects made later are
collected as before; frozen ones are still freed by reference counting when they become
unreachable, so only cyclic garbage among them would stay. :func:`freeze_startup_objects` is
called once per start-up stage (configured, first keyframe, first render);
:func:`unfreeze_startup_objects` (the node's lifecycle cleanup) hands everything back to the
collector, so a world dropped on cleanup is collected even if it holds a cycle, and the
stages freeze again after the next configure. ``WORLDFM_GC_FREEZE=0`` turns it off.
"""

from __future__ import annotations

import gc
import os
import threading

_lock = threading.Lock()
_done: set[str] = set()


def freeze_startup_objects(stage: str) -> bool:
    """Freeze the objects tracked so far, the first time ``stage`` is reached in this process.

    Returns whether it froze (False: ``stage`` was reached before, or ``WORLDFM_GC_FREEZE=0``).
    """
    if os.environ.get("WORLDFM_GC_FREEZE", "1").strip() == "0":
        return False
    with _lock:
        if stage in _done:
            return False
        _done.add(stage)
    gc.collect()  # what is garbage already should not be frozen
    gc.freeze()
    return True


def unfreeze_startup_objects() -> None:
    """Give every frozen object back to the collector and forget the stages reached."""
    with _lock:
        _done.clear()
    gc.unfreeze()
