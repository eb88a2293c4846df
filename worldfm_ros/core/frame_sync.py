"""Pair colour images with depth images by stamp (ROS-free).

Colour and depth arrive on separate streams, each in stamp order, in any interleaving. A colour
image pairs with the depth image whose stamp is nearest to its own, within ``max_gap`` seconds.
Images that cannot be paired are dropped and counted by reason, never silently.

The payloads are opaque (the node stores raw messages and converts only paired ones).
"""

from __future__ import annotations

import enum
import math
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

C = TypeVar("C")
D = TypeVar("D")


class SyncDrop(enum.Enum):
    """Why an image was dropped without a partner."""

    COLOUR_UNPAIRED = "colour image had no depth image within sync.max_gap"
    DEPTH_UNPAIRED = "depth image had no colour image within sync.max_gap"
    COLOUR_OVERFLOW = "too many colour images waiting for depth"
    DEPTH_OVERFLOW = "too many depth images waiting for colour"
    INVALID_STAMP = "image stamp is not finite"


@dataclass(frozen=True)
class SyncedPair(Generic[C, D]):
    """A colour and a depth payload whose stamps differ by at most ``max_gap``."""

    stamp: float  # colour stamp [s]
    colour: C
    depth: D
    gap: float  # |colour stamp - depth stamp| [s]


class FrameSync(Generic[C, D]):
    """Pairs the two streams; thread-safe.

    Args:
        max_gap: largest stamp difference of a pair [s].
        queue_size: images of one stream kept waiting for their partner.

    A waiting image is given up as soon as the *other* stream has moved more than ``max_gap``
    past it (both streams are in stamp order, so no partner can come any more), or when its
    queue overflows.
    """

    def __init__(self, *, max_gap: float = 0.02, queue_size: int = 10):
        if not math.isfinite(max_gap) or max_gap < 0:
            raise ValueError(f"max_gap must be finite and >= 0, got {max_gap!r}")
        if int(queue_size) < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size!r}")
        self.max_gap = float(max_gap)
        self.queue_size = int(queue_size)
        self._colour: deque[tuple[float, Any]] = deque()
        self._depth: deque[tuple[float, Any]] = deque()
        self._newest_colour = -math.inf
        self._newest_depth = -math.inf
        self._lock = threading.Lock()
        #: How many images were dropped, by :class:`SyncDrop`.
        self.drops: Counter = Counter()
        #: Number of pairs produced.
        self.pairs = 0

    def reset(self) -> None:
        with self._lock:
            self._colour.clear()
            self._depth.clear()
            self._newest_colour = self._newest_depth = -math.inf

    def add_colour(self, stamp: float, payload: C) -> list[SyncedPair[C, D]]:
        """Offer a colour image; returns the pairs completed by it (zero or one)."""
        return self._add(float(stamp), payload, is_colour=True)

    def add_depth(self, stamp: float, payload: D) -> list[SyncedPair[C, D]]:
        """Offer a depth image; returns the pairs completed by it (zero or one)."""
        return self._add(float(stamp), payload, is_colour=False)

    def _add(self, stamp: float, payload: Any, *, is_colour: bool) -> list[SyncedPair]:
        if not math.isfinite(stamp):
            self.drops[SyncDrop.INVALID_STAMP] += 1
            return []
        with self._lock:
            if is_colour:
                if stamp < self._newest_colour - self.max_gap:
                    # A backwards jump (bag restart): waiting images belong to another time.
                    self._drop_all()
                self._newest_colour = max(self._newest_colour, stamp)
                own, other = self._colour, self._depth
            else:
                if stamp < self._newest_depth - self.max_gap:
                    self._drop_all()
                self._newest_depth = max(self._newest_depth, stamp)
                own, other = self._depth, self._colour
            own.append((stamp, payload))
            pairs = self._match()
            self._expire()
            self._bound(self._colour, SyncDrop.COLOUR_OVERFLOW)
            self._bound(self._depth, SyncDrop.DEPTH_OVERFLOW)
            return pairs

    def _match(self) -> list[SyncedPair]:
        """Pair each waiting colour image with its nearest waiting depth image.

        A pair is committed once no nearer depth image can come: the stamps are equal, or the
        depth stream has reached the colour stamp (later depth images are further away).
        """
        pairs = []
        kept = deque()
        for cs, cp in self._colour:
            best = None
            if self._depth:
                best = min(range(len(self._depth)), key=lambda j: abs(self._depth[j][0] - cs))
            if best is not None:
                ds, dp = self._depth[best]
                gap = abs(ds - cs)
                if gap <= self.max_gap and (gap == 0.0 or self._newest_depth >= cs):
                    del self._depth[best]
                    pairs.append(SyncedPair(stamp=cs, colour=cp, depth=dp, gap=gap))
                    self.pairs += 1
                    continue
            kept.append((cs, cp))
        self._colour = kept
        return pairs

    def _expire(self) -> None:
        """Drop images no partner can arrive for any more (the other stream moved past)."""
        while self._colour and self._colour[0][0] < self._newest_depth - self.max_gap:
            self._colour.popleft()
            self.drops[SyncDrop.COLOUR_UNPAIRED] += 1
        kept = deque()
        for ds, dp in self._depth:
            waiting = any(abs(cs - ds) <= self.max_gap for cs, _ in self._colour)
            if ds < self._newest_colour - self.max_gap and not waiting:
                self.drops[SyncDrop.DEPTH_UNPAIRED] += 1
            else:
                kept.append((ds, dp))
        self._depth = kept

    def _bound(self, queue: deque, reason: SyncDrop) -> None:
        while len(queue) > self.queue_size:
            queue.popleft()
            self.drops[reason] += 1

    def _drop_all(self) -> None:
        self.drops[SyncDrop.COLOUR_UNPAIRED] += len(self._colour)
        self.drops[SyncDrop.DEPTH_UNPAIRED] += len(self._depth)
        self._colour.clear()
        self._depth.clear()
        self._newest_colour = self._newest_depth = -math.inf
