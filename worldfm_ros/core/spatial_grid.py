"""A uniform hash grid over 3-D points: incremental insert/remove and radius queries.

Retrieval at 10,000 keyframes must not scan them all; the grid answers "which keyframes lie
within r metres" by visiting only the cells that intersect the query ball.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np


class SpatialGrid:
    """Points keyed by integer id, bucketed in cubic cells of ``cell_size`` metres."""

    def __init__(self, cell_size: float = 0.5):
        if not (cell_size > 0 and math.isfinite(cell_size)):
            raise ValueError(f"cell_size must be a positive finite number, got {cell_size!r}")
        self.cell_size = float(cell_size)
        self._cells: dict[tuple[int, int, int], dict[int, np.ndarray]] = defaultdict(dict)
        self._cell_of: dict[int, tuple[int, int, int]] = {}

    def __len__(self) -> int:
        return len(self._cell_of)

    def _cell(self, p: np.ndarray) -> tuple[int, int, int]:
        c = np.floor(np.asarray(p, dtype=np.float64) / self.cell_size).astype(np.int64)
        return int(c[0]), int(c[1]), int(c[2])

    def insert(self, key: int, position: np.ndarray) -> None:
        """Add (or move) ``key`` at ``position`` ``[3]`` [m]."""
        if key in self._cell_of:
            self.remove(key)
        cell = self._cell(position)
        self._cells[cell][key] = np.asarray(position, dtype=np.float64).copy()
        self._cell_of[key] = cell

    def remove(self, key: int) -> None:
        """Forget ``key``; unknown keys are ignored."""
        cell = self._cell_of.pop(key, None)
        if cell is None:
            return
        bucket = self._cells[cell]
        bucket.pop(key, None)
        if not bucket:
            del self._cells[cell]

    def clear(self) -> None:
        self._cells.clear()
        self._cell_of.clear()

    def query_radius(self, position: np.ndarray, radius: float) -> np.ndarray:
        """Keys within ``radius`` metres of ``position``, sorted ascending (``int64 [N]``)."""
        p = np.asarray(position, dtype=np.float64)
        lo = np.floor((p - radius) / self.cell_size).astype(np.int64)
        hi = np.floor((p + radius) / self.cell_size).astype(np.int64)
        n_cells = int(np.prod(hi - lo + 1))
        keys: list[int] = []
        points: list[np.ndarray] = []
        if n_cells > len(self._cells):
            # The ball spans more cells than are occupied: walk the occupied ones instead.
            buckets = (
                bucket for cell, bucket in self._cells.items()
                if all(lo[i] <= cell[i] <= hi[i] for i in range(3))
            )
        else:
            buckets = (
                self._cells.get((x, y, z))
                for x in range(lo[0], hi[0] + 1)
                for y in range(lo[1], hi[1] + 1)
                for z in range(lo[2], hi[2] + 1)
            )
        for bucket in buckets:
            if bucket:
                keys.extend(bucket.keys())
                points.extend(bucket.values())
        if not keys:
            return np.zeros(0, dtype=np.int64)
        keys_arr = np.asarray(keys, dtype=np.int64)
        d2 = ((np.stack(points) - p) ** 2).sum(axis=1)
        return np.sort(keys_arr[d2 <= radius * radius])
