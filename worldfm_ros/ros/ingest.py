"""The node's ingest pipeline: subscription callbacks hand messages over, one worker thread
does everything else.

Why: the executor must never hold a camera message while a frame is being decoded and
inserted. Before this module the image callbacks paired, converted and inserted inside the
executor (one mutually exclusive group plus a 100 Hz poll timer); at 15 Hz only 82 % of
the frames reached a callback at all, and most losses were counted nowhere.

Flow:

* :meth:`IngestPipeline.put_colour` / :meth:`put_depth` (subscription callbacks) only append
  ``(stamp, message)`` to a bounded inbox and wake the worker: constant time, no decoding.
* The worker drains the inbox into a :class:`~worldfm_ros.core.frame_sync.FrameSync`, so
  every colour/depth pair exists as soon as both images are in, and queues the pairs.
* A pair waits (in order) until the odometry at its stamp and a camera_info have arrived,
  or until its wait ends (``odom_wait_s`` of wall time); then ``process(pair)`` runs it
  (conversion, pose lookup, insertion: the node's code).
* When the worker is behind (more than ``max_pending`` pairs queued, all of them ready),
  the **oldest** queued pair is skipped and counted in :attr:`pairs_skipped_busy`: the
  newest data is kept, and a skip is never silent. A pair that is only waiting for its
  odometry is processed (and then extrapolated or dropped by ``process``) rather than
  skipped, so a missing odometry stream is reported as such.

The inbox is bounded as well (``max_inbox`` messages); it only fills if ``process`` stalls
for seconds, and a colour image pushed out of it is counted as a skipped pair too.

No rclpy import: messages are only carried, and the module is tested without ROS.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Optional

from worldfm_ros.core.frame_sync import FrameSync, SyncedPair

#: Pairs queued behind the one being processed before the oldest is skipped (2 s of a 15 Hz
#: camera: enough to ride out render bursts and a loaded machine; the node's
#: ``ingest.queue_size``).
DEFAULT_MAX_PENDING = 30
#: Raw messages the inbox holds (colour and depth together).
DEFAULT_MAX_INBOX = 120


@dataclass
class IngestCounters:
    """What the pipeline did, for ``~/status`` (monotonic counts since start)."""

    frames_received: int = 0  # colour images handed over by the subscription
    pairs_formed: int = 0  # colour/depth pairs made by the synchroniser
    pairs_processed: int = 0  # pairs passed to ``process``
    pairs_skipped_busy: int = 0  # pairs (or colour images) skipped because the worker was behind
    process_errors: int = 0  # ``process`` raised (logged by ``on_error``)


class IngestPipeline:
    """Bounded hand-over from subscription callbacks to one ingest worker thread.

    Args:
        sync: pairs colour and depth by stamp (used by the worker thread only).
        process: runs one pair (conversion, pose, insertion); called on the worker thread.
        is_ready: whether a pair's odometry and camera_info are in (else it waits).
        odom_wait_s: longest wall time a pair waits for ``is_ready`` [s].
        max_pending: pairs queued before the oldest is skipped (>= 1).
        max_inbox: raw messages held before the oldest is dropped (>= 2).
        on_error: called with the exception when ``process`` raises (the worker goes on).
        on_sync: called after the synchroniser took messages (to report its drops).
        clock: monotonic clock [s] (tests).
    """

    def __init__(
        self,
        sync: FrameSync,
        process: Callable[[SyncedPair], None],
        is_ready: Callable[[SyncedPair], bool],
        *,
        odom_wait_s: float = 0.5,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_inbox: int = DEFAULT_MAX_INBOX,
        on_error: Optional[Callable[[BaseException], None]] = None,
        on_sync: Optional[Callable[[FrameSync], None]] = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not math.isfinite(odom_wait_s) or odom_wait_s < 0:
            raise ValueError(f"odom_wait_s must be finite and >= 0, got {odom_wait_s!r}")
        if int(max_pending) < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending!r}")
        if int(max_inbox) < 2:
            raise ValueError(f"max_inbox must be >= 2, got {max_inbox!r}")
        self.sync = sync
        self._process = process
        self._is_ready = is_ready
        self.odom_wait_s = float(odom_wait_s)
        self.max_pending = int(max_pending)
        self.max_inbox = int(max_inbox)
        self._on_error = on_error
        self._on_sync = on_sync
        self._clock = clock
        self.counters = IngestCounters()
        self._inbox: deque[tuple[bool, float, Any]] = deque()  # (is_colour, stamp, message)
        self._pending: deque[tuple[float, SyncedPair]] = deque()  # (deadline, pair), oldest first
        self._cond = threading.Condition()
        self._stop = False
        self._busy = False
        self._thread: Optional[threading.Thread] = None

    # ------------------------------------------------------------------ producer side
    def put_colour(self, stamp: float, msg: Any) -> None:
        """Hand over a colour image (subscription callback; never blocks on ingestion)."""
        self._put(True, stamp, msg)

    def put_depth(self, stamp: float, msg: Any) -> None:
        """Hand over a depth image (subscription callback)."""
        self._put(False, stamp, msg)

    def notify(self) -> None:
        """Wake the worker: odometry or camera_info arrived, a waiting pair may be ready."""
        with self._cond:
            self._cond.notify()

    def _put(self, is_colour: bool, stamp: float, msg: Any) -> None:
        with self._cond:
            if is_colour:
                self.counters.frames_received += 1
            self._inbox.append((is_colour, float(stamp), msg))
            while len(self._inbox) > self.max_inbox:
                dropped_colour, _, _ = self._inbox.popleft()
                if dropped_colour:
                    self.counters.pairs_skipped_busy += 1
            self._cond.notify()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="worldfm_ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the worker after the pair in progress; returns whether it ended in time.
        Queued messages and pairs are discarded."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        ended = True
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            ended = not thread.is_alive()
        with self._cond:
            self._inbox.clear()  # a later start() must not ingest frames from before the stop
            self._pending.clear()
            self.sync.reset()  # (its drop counts are kept)
        return ended

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def backlog(self) -> int:
        """Pairs queued plus raw messages not yet paired."""
        with self._cond:
            return len(self._pending) + len(self._inbox)

    def idle(self) -> bool:
        """Nothing queued and no pair in progress (tests, shutdown)."""
        with self._cond:
            return not self._pending and not self._inbox and not self._busy

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        while True:
            pair = self._next_pair()
            if pair is None:
                return
            try:
                self._process(pair)
            except Exception as error:  # noqa: BLE001 - the worker must outlive any one bad pair
                self.counters.process_errors += 1
                if self._on_error is not None:
                    self._on_error(error)
            finally:
                with self._cond:
                    self._busy = False

    def _next_pair(self) -> Optional[SyncedPair]:
        """Block until a pair is due (ready, out of time or pushed out); None when stopping."""
        with self._cond:
            while not self._stop:
                self._absorb_inbox()
                pair, wait = self._due_pair()
                if pair is not None:
                    self._busy = True
                    return pair
                self._cond.wait(timeout=wait)
            return None

    def _absorb_inbox(self) -> None:
        """Move inbox messages through the synchroniser into the pair queue (lock held)."""
        if not self._inbox:
            return
        now = self._clock()
        sync = self.sync
        while self._inbox:
            is_colour, stamp, msg = self._inbox.popleft()
            pairs = sync.add_colour(stamp, msg) if is_colour else sync.add_depth(stamp, msg)
            for pair in pairs:
                self.counters.pairs_formed += 1
                self._pending.append((now + self.odom_wait_s, pair))
        if self._on_sync is not None:
            self._on_sync(sync)

    def _due_pair(self) -> tuple[Optional[SyncedPair], Optional[float]]:
        """``(pair to process now, None)`` or ``(None, seconds to wait at most)`` (lock held)."""
        pending = self._pending
        while len(pending) > self.max_pending:
            _, oldest = pending[0]
            if not self._is_ready(oldest):
                break  # waiting for its odometry, not for the worker: process it (below)
            pending.popleft()
            self.counters.pairs_skipped_busy += 1
        if not pending:
            return None, None
        deadline, pair = pending[0]
        now = self._clock()
        if self._is_ready(pair) or now >= deadline or len(pending) > self.max_pending:
            pending.popleft()
            self.counters.pairs_processed += 1
            return pair, None
        # Odometry normally lands within milliseconds and calls notify(); the timeout is the
        # pair's deadline, with a short cap in case a notification is lost to a race.
        return None, min(max(deadline - now, 0.0), 0.05)
