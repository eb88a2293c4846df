"""What retrieval reads of each keyframe, in flat arrays: position, optical axis and the
anchor points (a sparse grid of its depth in the world), one row per keyframe.

Retrieval runs once per rendered view (16 views per gym step, 64 per ``~/render_views``
call). Gathering these per query from a dict of small arrays (``np.stack`` of the
candidates' poses, ``np.concatenate`` of their anchors, then a dozen whole-array operations)
cost 1.5-2.4 ms a query on the 2-core machine; reading rows of these arrays and projecting
the anchors in one compiled loop (:func:`coverage_cells`) costs a fraction of that, with the
same float32 arithmetic, so the same references are chosen.

Rows are reused after eviction (free list) and the arrays grow by doubling, so inserting
or evicting a keyframe costs O(1) amortised, never a rebuild over the whole memory.
"""

from __future__ import annotations

import numpy as np
from numba import njit


class KeyframeTable:
    """Per-keyframe retrieval data in rows of preallocated arrays.

    Args:
        anchors_per_keyframe: most anchor points a keyframe has (the anchor grid's size).
    """

    def __init__(self, anchors_per_keyframe: int, capacity: int = 64):
        self.max_anchors = int(anchors_per_keyframe)
        self._row: dict[int, int] = {}
        self._free: list[int] = []
        self._allocate(max(1, int(capacity)))

    def _allocate(self, capacity: int) -> None:
        old = getattr(self, "positions", None)
        positions = np.zeros((capacity, 3))
        forwards = np.zeros((capacity, 3))
        anchors = np.zeros((capacity, self.max_anchors, 3), np.float32)
        counts = np.zeros(capacity, np.int64)
        if old is not None:
            n = len(old)
            positions[:n], forwards[:n], anchors[:n], counts[:n] = self.positions, self.forwards, self.anchors, self.counts
            self._free.extend(range(capacity - 1, n - 1, -1))
        else:
            self._free.extend(range(capacity - 1, -1, -1))
        self.positions, self.forwards, self.anchors, self.counts = positions, forwards, anchors, counts

    def __len__(self) -> int:
        return len(self._row)

    def add(self, keyframe_id: int, position: np.ndarray, forward: np.ndarray, anchors: np.ndarray) -> None:
        """Store (or replace) a keyframe's row; ``anchors [P, 3]`` with ``P <= max_anchors``."""
        anchors = np.asarray(anchors, np.float32).reshape(-1, 3)
        if len(anchors) > self.max_anchors:
            raise ValueError(f"a keyframe has at most {self.max_anchors} anchors, got {len(anchors)}")
        row = self._row.get(keyframe_id)
        if row is None:
            if not self._free:
                self._allocate(2 * len(self.positions))
            row = self._free.pop()
            self._row[keyframe_id] = row
        self.positions[row] = position
        self.forwards[row] = forward
        self.anchors[row, : len(anchors)] = anchors
        self.counts[row] = len(anchors)

    def remove(self, keyframe_id: int) -> None:
        """Forget a keyframe's row (unknown ids are ignored)."""
        row = self._row.pop(keyframe_id, None)
        if row is not None:
            self.counts[row] = 0
            self._free.append(row)

    def clear(self) -> None:
        self._row.clear()
        self._free.clear()
        self.counts[:] = 0
        self._free.extend(range(len(self.positions) - 1, -1, -1))

    def rows(self, keyframe_ids: np.ndarray) -> np.ndarray:
        """``int64 [N]`` rows of known keyframe ids."""
        return np.fromiter((self._row[int(i)] for i in keyframe_ids), np.int64, len(keyframe_ids))

    @property
    def nbytes(self) -> int:
        """Bytes of the anchors of the keyframes held (as a dict of ``[P, 3]`` arrays would)."""
        return int(self.counts.sum()) * 3 * 4


@njit(cache=True, nogil=True)
def coverage_cells(anchors, counts, rows, R_cw, t_cw, fx, fy, cx, cy, width, height, grid_w, grid_h,
                   cover):  # pragma: no cover - compiled
    """``cover[i, cell] = 1`` for each coarse cell (``grid_w x grid_h`` over the image) of the
    query camera that an anchor of the keyframe in row ``rows[i]`` projects into.

    float32 throughout, in the order numpy evaluates ``einsum("nj,ij->ni", p, R) + t``,
    ``fx * x / z + cx`` and ``((u + 0.5) * grid_w / width).astype(int64)`` on float32 arrays
    (anchors behind the camera, ``z <= 1e-3``, or outside the image mark nothing).
    ``R_cw [3, 3]``, ``t_cw [3]``: float32 world -> query camera; ``cover [N, grid_w * grid_h]``
    zeroed by the caller."""
    fx32, fy32, cx32, cy32 = np.float32(fx), np.float32(fy), np.float32(cx), np.float32(cy)
    gw32, gh32 = np.float32(grid_w), np.float32(grid_h)
    w32, h32 = np.float32(width), np.float32(height)
    half = np.float32(0.5)
    r00, r01, r02 = R_cw[0, 0], R_cw[0, 1], R_cw[0, 2]
    r10, r11, r12 = R_cw[1, 0], R_cw[1, 1], R_cw[1, 2]
    r20, r21, r22 = R_cw[2, 0], R_cw[2, 1], R_cw[2, 2]
    t0, t1, t2 = t_cw[0], t_cw[1], t_cw[2]
    for i in range(len(rows)):
        row = rows[i]
        pts = anchors[row]
        for n in range(counts[row]):
            px, py, pz = pts[n, 0], pts[n, 1], pts[n, 2]
            z = (px * r20 + py * r21 + pz * r22) + t2
            if not z > np.float32(1e-3):
                continue
            x = (px * r00 + py * r01 + pz * r02) + t0
            y = (px * r10 + py * r11 + pz * r12) + t1
            u = fx32 * x / z + cx32
            v = fy32 * y / z + cy32
            if not (u >= -half and u < w32 - half and v >= -half and v < h32 - half):
                continue
            cu = min(max(int((u + half) * gw32 / w32), 0), grid_w - 1)
            cv = min(max(int((v + half) * gh32 / h32), 0), grid_h - 1)
            cover[i, cv * grid_w + cu] = 1.0
