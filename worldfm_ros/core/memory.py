"""Posed keyframes as a spatial memory (RTFM's "context juggling", at robot scale).

Three policies live here:

* **Insertion** (``insertion="parallax"``, the default): a frame becomes a keyframe unless
  an existing keyframe sees its view almost as it does: its depth samples, projected into
  that keyframe, land within ``max_parallax`` (a fraction of the image width, 75th
  percentile) of where the frame saw them, and at most ``max_unseen`` of them fall outside
  that keyframe's image. Parallax is what a renderer has to bridge, so this keeps keyframes
  dense where the scene is close and sparse where it is far, and a revisit along the same
  path adds nothing. ``insertion="pose"`` is the plain rule: a frame is a keyframe unless an
  existing keyframe lies within ``min_translation`` metres *and* ``min_rotation_deg`` degrees.
  Either way memory grows with the area explored, not with time spent driving around it.
* **Retrieval**: for a query camera, candidates come from a spatial hash grid (no scan over
  all keyframes), are pre-ranked by pose distance, and then chosen greedily by how much of
  the query view their back-projected depth covers (diminishing returns for pixels already
  covered twice), with pose proximity breaking ties. ``retrieval="pose"`` keeps plain pose
  distance as the measured baseline.
* **Eviction**: at ``max_keyframes`` the keyframe whose nearest neighbour (in pose space) is
  closest goes; a keyframe with no neighbour within ``eviction_radius`` is never evicted
  while a redundant one exists.

Every choice is deterministic (ties broken by id), so the same pose against the same memory
retrieves the same references.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import EmptyMemoryError, InvalidImageError, InvalidPoseError
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.pose import validate_pose_matrix
from worldfm_ros.core.retrieval_table import KeyframeTable, coverage_cells
from worldfm_ros.core.spatial_grid import SpatialGrid

#: Retrieval rankings: coverage of the query view (default) or plain pose distance.
RETRIEVAL_MODES = ("coverage", "pose")
#: Insertion policies: image parallax to the nearest keyframe (default) or pose thresholds.
INSERTION_POLICIES = ("parallax", "pose")


@dataclass(frozen=True)
class MemoryConfig:
    """Parameters of the keyframe memory.

    Attributes:
        min_translation: a frame closer than this to a keyframe of similar orientation is
            redundant [m].
        min_rotation_deg: ... and whose orientation differs by less than this [deg].
        max_keyframes: cap; the most redundant keyframe is evicted beyond it.
        retrieval_k: references returned per query.
        retrieval: ``"coverage"`` or ``"pose"``.
        search_radius: candidates are looked for within this distance of the query [m];
            widened to the nearest keyframes if fewer than ``retrieval_k`` are found.
        max_candidates: candidates kept after the pose pre-ranking.
        rotation_weight_deg: degrees of view-direction difference that cost as much as
            ``translation_weight`` metres in the pose distance.
        translation_weight: see ``rotation_weight_deg`` [m].
        anchor_grid: ``(columns, rows)`` of depth samples kept per keyframe for coverage.
        insertion: ``"parallax"`` or ``"pose"`` (see the module docstring).
        max_parallax: parallax policy: a frame is redundant when a keyframe sees 75% of its
            depth samples within this fraction of the image width of where the frame did.
        max_unseen: parallax policy: ... and at most this fraction of them falls outside.
        parallax_radius: parallax policy: keyframes farther than this are not compared [m].
        coverage_grid: ``(columns, rows)`` of cells the query view is divided into.
        min_view_overlap: coverage retrieval drops candidates that cover less than this
            fraction of the query view's cells.
        min_coverage_gain: the last reference slot goes to the candidate covering the most
            still-unseen cells when that is at least this fraction of the view.
        grid_cell: cell size of the spatial hash grid [m].
        eviction_radius: neighbours farther than this do not make a keyframe redundant [m].
    """

    min_translation: float = 0.05
    min_rotation_deg: float = 5.0
    max_keyframes: int = 5000
    retrieval_k: int = 4
    retrieval: str = "coverage"
    search_radius: float = 3.0
    max_candidates: int = 32
    rotation_weight_deg: float = 20.0
    translation_weight: float = 0.3
    anchor_grid: tuple[int, int] = (24, 18)
    insertion: str = "parallax"
    max_parallax: float = 0.01
    max_unseen: float = 0.1
    parallax_radius: float = 1.0
    coverage_grid: tuple[int, int] = (16, 12)
    min_view_overlap: float = 0.3
    min_coverage_gain: float = 0.05
    grid_cell: float = 1.0
    eviction_radius: float = 0.5

    def __post_init__(self) -> None:
        def positive(name: str) -> None:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"memory parameter {name} must be a positive number, got {v!r}")

        for name in ("min_translation", "min_rotation_deg", "search_radius", "rotation_weight_deg",
                     "translation_weight", "grid_cell", "eviction_radius", "max_parallax", "max_unseen",
                     "parallax_radius"):
            positive(name)
        for name in ("max_keyframes", "retrieval_k", "max_candidates"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"memory parameter {name} must be an integer >= 1, got {v!r}")
        if self.insertion not in INSERTION_POLICIES:
            raise ValueError(f"memory parameter insertion must be one of {INSERTION_POLICIES}, got {self.insertion!r}")
        if self.retrieval not in RETRIEVAL_MODES:
            raise ValueError(f"memory parameter retrieval must be one of {RETRIEVAL_MODES}, got {self.retrieval!r}")


def _forward(T: np.ndarray) -> np.ndarray:
    """Optical axis (camera +z) in the world frame."""
    return T[:3, 2]


class KeyframeMemory:
    """Bounded set of posed keyframes with insertion, retrieval and eviction policies.

    Not thread-safe: the caller (the world service) serialises access.

    Args:
        config: the policies' parameters.
        on_insert: called with each accepted keyframe (after its id is set), e.g. to persist it.
        on_evict: called with the id of each evicted keyframe.
    """

    def __init__(
        self,
        config: MemoryConfig = MemoryConfig(),
        on_insert: Optional[Callable[[Keyframe], None]] = None,
        on_evict: Optional[Callable[[int], None]] = None,
    ):
        self.config = config
        self.on_insert = on_insert
        self.on_evict = on_evict
        self._frames: dict[int, Keyframe] = {}
        # id -> position, optical axis and anchors ([P, 3] world points) in flat arrays.
        self._table = KeyframeTable(config.anchor_grid[0] * config.anchor_grid[1])
        self._redundancy: dict[int, float] = {}  # id -> pose distance to nearest neighbour
        self._grid = SpatialGrid(config.grid_cell)
        self._next_id = 0
        self._all_cache: Optional[tuple[np.ndarray, np.ndarray]] = None  # (ids, positions)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._frames)

    def __contains__(self, keyframe_id: int) -> bool:
        return keyframe_id in self._frames

    def get(self, keyframe_id: int) -> Keyframe:
        return self._frames[keyframe_id]

    def keyframes(self) -> list[Keyframe]:
        """All keyframes in id order."""
        return [self._frames[i] for i in sorted(self._frames)]

    @property
    def memory_bytes(self) -> int:
        """Bytes held by keyframe images and retrieval anchors."""
        return int(sum(kf.nbytes for kf in self._frames.values())
                   + self._table.nbytes)

    def pose_distance(self, T_a: np.ndarray, T_b: np.ndarray) -> float:
        """Pose distance in units of the redundancy thresholds (1.0 = at both thresholds)."""
        return max(self._translation_units(T_a, T_b), self._rotation_units(T_a, T_b))

    def _translation_units(self, T_a, T_b) -> float:
        return float(np.linalg.norm(T_a[:3, 3] - T_b[:3, 3])) / self.config.min_translation

    def _rotation_units(self, T_a, T_b) -> float:
        c = (np.trace(T_a[:3, :3].T @ T_b[:3, :3]) - 1.0) / 2.0
        return math.degrees(math.acos(max(-1.0, min(1.0, c)))) / self.config.min_rotation_deg

    def is_redundant(self, frame) -> bool:
        """True when the insertion policy would reject ``frame`` (a :class:`Keyframe`).

        A bare pose ``[4, 4]`` is answered with the pose thresholds under ``insertion="pose"``
        and is never redundant under ``"parallax"`` (that needs the frame's depth).
        """
        if isinstance(frame, Keyframe):
            T = frame.T_world_cam
        else:
            T = validate_pose_matrix(frame)
        if self.config.insertion == "pose":
            return self._pose_redundant(T)
        if not isinstance(frame, Keyframe):
            return False
        return self._parallax_redundant(frame)

    def _pose_redundant(self, T: np.ndarray) -> bool:
        for kid in self._grid.query_radius(T[:3, 3], self.config.min_translation):
            kf_T = self._frames[int(kid)].T_world_cam
            if self._translation_units(T, kf_T) <= 1.0 and self._rotation_units(T, kf_T) <= 1.0:
                return True
        return False

    def _parallax_redundant(self, frame: Keyframe) -> bool:
        cfg = self.config
        T = frame.T_world_cam
        # The frame's own depth samples and where the frame saw them (normalised by width).
        pts, uv = depth_samples(frame, cfg.anchor_grid)
        if len(pts) == 0:
            return True  # no depth: nothing a renderer could use
        cands = self._grid.query_radius(T[:3, 3], cfg.parallax_radius)
        uv_norm = uv / frame.intrinsics.width
        fwd = T[:3, 2]
        for kid in cands:
            kf = self._frames[int(kid)]
            if float(kf.T_world_cam[:3, 2] @ fwd) < 0.5:  # more than 60 degrees apart
                continue
            K = kf.intrinsics
            R_cw = kf.T_world_cam[:3, :3].T
            pc = np.einsum("nj,ij->ni", pts, R_cw) - R_cw @ kf.T_world_cam[:3, 3]
            z = pc[:, 2]
            front = z > 1e-3
            zf = np.where(front, z, 1.0)
            u = K.fx * pc[:, 0] / zf + K.cx
            v = K.fy * pc[:, 1] / zf + K.cy
            seen = front & (u >= -0.5) & (u < K.width - 0.5) & (v >= -0.5) & (v < K.height - 0.5)
            if 1.0 - seen.mean() > cfg.max_unseen:
                continue
            flow = np.hypot(u / K.width - uv_norm[:, 0], v / K.width - uv_norm[:, 1])
            flow = np.where(seen, flow, np.inf)
            if np.percentile(flow, 75) <= cfg.max_parallax:
                return True
        return False

    # ------------------------------------------------------------------ updates
    def consider(self, frame: Keyframe) -> Optional[int]:
        """Insert ``frame`` if the insertion policy accepts it; returns its new id or None."""
        if self.is_redundant(frame):
            return None
        return self.add(frame)

    def add(self, frame: Keyframe) -> int:
        """Insert unconditionally (used when loading a world). Keeps ``frame.id`` if it is set
        and free; otherwise assigns the next id. Evicts beyond ``max_keyframes``."""
        if not isinstance(frame, Keyframe):
            raise InvalidImageError(f"expected a Keyframe, got {type(frame).__name__}", frame)
        if frame.id < 0 or frame.id in self._frames:
            frame.id = self._next_id
        self._next_id = max(self._next_id, frame.id + 1)
        kid = frame.id
        self._frames[kid] = frame
        self._table.add(kid, frame.position, _forward(frame.T_world_cam), self._anchor_points(frame))
        self._grid.insert(kid, frame.position)
        self._all_cache = None
        self._update_redundancy_after_insert(kid)
        if self.on_insert is not None:
            self.on_insert(frame)
        while len(self._frames) > self.config.max_keyframes:
            self.evict(self._most_redundant(exclude=kid))
        return kid

    def evict(self, keyframe_id: int) -> None:
        """Remove one keyframe (and tell ``on_evict``)."""
        if keyframe_id not in self._frames:
            return
        T = self._frames[keyframe_id].T_world_cam
        del self._frames[keyframe_id]
        self._table.remove(keyframe_id)
        self._redundancy.pop(keyframe_id, None)
        self._grid.remove(keyframe_id)
        self._all_cache = None
        for nid in self._grid.query_radius(T[:3, 3], self.config.eviction_radius):
            self._redundancy[int(nid)] = self._nearest_neighbour_distance(int(nid))
        if self.on_evict is not None:
            self.on_evict(keyframe_id)

    def clear(self) -> None:
        """Forget every keyframe (ids restart at 0)."""
        self._frames.clear()
        self._table.clear()
        self._redundancy.clear()
        self._grid.clear()
        self._all_cache = None
        self._next_id = 0

    # ------------------------------------------------------------------ eviction helpers
    def _nearest_neighbour_distance(self, kid: int) -> float:
        T = self._frames[kid].T_world_cam
        best = math.inf
        for nid in self._grid.query_radius(T[:3, 3], self.config.eviction_radius):
            nid = int(nid)
            if nid != kid:
                best = min(best, self.pose_distance(T, self._frames[nid].T_world_cam))
        return best

    def _update_redundancy_after_insert(self, kid: int) -> None:
        T = self._frames[kid].T_world_cam
        best = math.inf
        for nid in self._grid.query_radius(T[:3, 3], self.config.eviction_radius):
            nid = int(nid)
            if nid == kid:
                continue
            d = self.pose_distance(T, self._frames[nid].T_world_cam)
            best = min(best, d)
            self._redundancy[nid] = min(self._redundancy.get(nid, math.inf), d)
        self._redundancy[kid] = best

    def _most_redundant(self, exclude: int) -> int:
        ids = np.fromiter((k for k in self._redundancy if k != exclude), dtype=np.int64)
        scores = np.fromiter((self._redundancy[k] for k in ids), dtype=np.float64)
        if np.isfinite(scores).any():
            # lexsort: smallest score first, then smallest id (deterministic).
            return int(ids[np.lexsort((ids, scores))[0]])
        # Every keyframe is alone within eviction_radius: drop the oldest of the closest pair
        # in position, which loses the least ground.
        keep_ids, pos = self._all_positions()
        mask = keep_ids != exclude
        keep_ids, pos = keep_ids[mask], pos[mask]
        from scipy.spatial import cKDTree

        d, _ = cKDTree(pos).query(pos, k=2)
        return int(keep_ids[np.lexsort((keep_ids, d[:, 1]))[0]])

    # ------------------------------------------------------------------ retrieval
    def _all_positions(self) -> tuple[np.ndarray, np.ndarray]:
        if self._all_cache is None:
            ids = np.array(sorted(self._frames), dtype=np.int64)
            pos = (np.stack([self._frames[int(i)].position for i in ids])
                   if len(ids) else np.zeros((0, 3)))
            self._all_cache = (ids, pos)
        return self._all_cache

    def _anchor_points(self, frame: Keyframe) -> np.ndarray:
        """A sparse grid of the frame's valid depth back-projected to the world, ``[P, 3]``."""
        return depth_samples(frame, self.config.anchor_grid)[0].astype(np.float32)

    def _candidates(self, T: np.ndarray, k: int) -> np.ndarray:
        cands = self._grid.query_radius(T[:3, 3], self.config.search_radius)
        if len(cands) < k:
            ids, pos = self._all_positions()
            n = min(len(ids), max(k, self.config.max_candidates))
            d = np.linalg.norm(pos - T[:3, 3], axis=1)
            order = np.lexsort((ids, d))[:n]
            cands = np.sort(ids[order])
        return cands

    def _pose_scores(self, T: np.ndarray, cands: np.ndarray) -> np.ndarray:
        """Pose distance of each candidate to the query (lower is closer), ``[N]``."""
        rows = self._table.rows(cands)
        pos = self._table.positions[rows]
        fwd = self._table.forwards[rows]
        trans = np.linalg.norm(pos - T[:3, 3], axis=1)
        angle = np.degrees(np.arccos(np.clip(fwd @ _forward(T), -1.0, 1.0)))
        return trans / self.config.translation_weight + angle / self.config.rotation_weight_deg

    def retrieve(self, T_world_cam: np.ndarray, intrinsics: Intrinsics, k: Optional[int] = None) -> list[Keyframe]:
        """Up to ``k`` keyframes that best cover the view of a camera at ``T_world_cam``.

        Raises :class:`EmptyMemoryError` when the memory holds no keyframe.
        """
        if not self._frames:
            raise EmptyMemoryError("the memory holds no keyframe yet", 0)
        T = validate_pose_matrix(T_world_cam)
        k = self.config.retrieval_k if k is None else int(k)
        return self._retrieve(T, intrinsics, k, self._candidates(T, k))

    def retrieve_many(self, T_world_cam: np.ndarray, intrinsics: Intrinsics,
                      k: Optional[int] = None) -> list[list[Keyframe]]:
        """:meth:`retrieve` for each camera of ``T_world_cam [B, 4, 4]`` (the same references),
        with the spatial search shared: one grid query for the whole batch, then every
        camera's distances in one array operation (the per-camera grid walk was a third of
        a query's time).

        Raises :class:`EmptyMemoryError`, ``InvalidPoseError`` (the first invalid pose's).
        """
        if not self._frames:
            raise EmptyMemoryError("the memory holds no keyframe yet", 0)
        T = np.asarray(T_world_cam, dtype=np.float64)
        if T.ndim != 3 or T.shape[1:] != (4, 4):
            raise InvalidPoseError(f"poses must be [B, 4, 4], got shape {T.shape}", T.shape)
        for pose in T:
            validate_pose_matrix(pose)
        k = self.config.retrieval_k if k is None else int(k)
        if len(T) == 0:
            return []
        r = self.config.search_radius
        centres = T[:, :3, 3]
        lo, hi = centres.min(axis=0), centres.max(axis=0)
        # Every camera's search ball lies inside this one: a superset of each one's candidates.
        middle = (lo + hi) / 2
        ids = self._grid.query_radius(middle, r + float(np.linalg.norm(hi - lo)) / 2)
        positions = self._table.positions[self._table.rows(ids)]
        # The same expression as SpatialGrid.query_radius, for all cameras at once.
        inside = ((positions[None, :, :] - centres[:, None, :]) ** 2).sum(axis=2) <= r * r
        out = []
        for b, pose in enumerate(T):
            cands = ids[inside[b]]
            if len(cands) < k:
                cands = self._candidates(pose, k)
            out.append(self._retrieve(pose, intrinsics, k, cands))
        return out

    def _retrieve(self, T: np.ndarray, intrinsics: Intrinsics, k: int, cands: np.ndarray) -> list[Keyframe]:
        scores = self._pose_scores(T, cands)
        order = np.lexsort((cands, scores))
        ranked = cands[order][: self.config.max_candidates]
        if self.config.retrieval == "pose" or len(ranked) <= 1:
            chosen = ranked[:k]
        else:
            chosen = self._greedy_coverage(T, intrinsics, ranked, scores[order][: len(ranked)], k)
        return [self._frames[int(i)] for i in chosen]

    def _greedy_coverage(self, T, intrinsics: Intrinsics, ranked: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        gw, gh = self.config.coverage_grid
        R_cw = T[:3, :3].T
        t_cw = -R_cw @ T[:3, 3]
        cover = np.zeros((len(ranked), gw * gh), dtype=np.float64)
        coverage_cells(self._table.anchors, self._table.counts, self._table.rows(ranked), R_cw.astype(np.float32),
                       t_cw.astype(np.float32), intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy,
                       intrinsics.width, intrinsics.height, gw, gh, cover)
        # Candidates that see too little of the view (looking away, or off to the side) are
        # dropped; the closest views in pose fill all slots but the last; the last goes to
        # the view that covers most of what is still unseen, if that is a real gain.
        overlap = cover.mean(axis=1)
        usable = np.flatnonzero(overlap >= self.config.min_view_overlap)
        if len(usable) == 0:
            usable = np.argsort(-overlap, kind="stable")[:1]
        chosen = list(usable[: max(1, k - 1)])
        rest = [i for i in usable if i not in chosen]
        if len(chosen) < k and rest:
            seen = cover[chosen].max(axis=0)
            gain = (cover[rest] * (1.0 - seen)).mean(axis=1)
            best = int(np.argmax(gain))
            chosen.append(rest[best] if gain[best] >= self.config.min_coverage_gain else rest[0])
        return ranked[chosen]


def depth_samples(frame: Keyframe, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A ``columns x rows`` grid of the frame's valid depth: world points ``float64 [P, 3]``
    and their pixel coordinates ``[P, 2]`` in the frame."""
    gw, gh = grid
    h, w = frame.depth.shape
    us = ((np.arange(gw) + 0.5) * w / gw).astype(np.int64)
    vs = ((np.arange(gh) + 0.5) * h / gh).astype(np.int64)
    uu, vv = np.meshgrid(us, vs)
    z = frame.depth[vv, uu].astype(np.float64)
    valid = z > 0
    K = frame.intrinsics
    u, v, z = uu[valid].astype(np.float64), vv[valid].astype(np.float64), z[valid]
    pts_cam = np.stack([(u - K.cx) / K.fx * z, (v - K.cy) / K.fy * z, z], axis=1)
    T = frame.T_world_cam
    return np.einsum("nj,ij->ni", pts_cam, T[:3, :3]) + T[:3, 3], np.stack([u, v], axis=1)
