"""Ground truth for the navigation tests: the exact floor plan and 2-D ray casts of a
synthetic world, and a streamed synthetic world to build maps from.

Importable by other test modules (the DDS versions of the map and scan checks reuse it):
``from nav_truth import ...`` (``test/`` is on ``sys.path`` under pytest).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.memory import MemoryConfig
from worldfm_ros.core.occupancy_map import FREE, OCCUPIED, UNKNOWN, OccupancyMap
from worldfm_ros.core.synthetic import SyntheticWorld, default_intrinsics, plan_loop
from worldfm_ros.core.synthetic.scene import Cylinder

#: World seed used by the navigation tests (a single room with furniture and a clear loop).
NAV_SEED = 3


def band_obstacles(world: SyntheticWorld, z_lo: float, z_hi: float) -> list:
    """Boxes and cylinders of ``world`` whose vertical extent overlaps ``[z_lo, z_hi]`` [m]."""
    parts = []
    for part in [*world.boxes, *world.cylinders]:
        half = part.half_height if isinstance(part, Cylinder) else part.half_size[2]
        if part.centre[2] - half <= z_hi and part.centre[2] + half >= z_lo:
            parts.append(part)
    return parts


def floor_plan_distance(world: SyntheticWorld, xy, z_lo: float = 0.05, z_hi: float = 1.5) -> np.ndarray:
    """Signed 2-D distance [m] of floor points ``[..., 2]`` to the solid part of the floor plan
    in the height band (room walls, obstacles overlapping the band): > 0 free, <= 0 solid."""
    xy = np.asarray(xy, dtype=np.float64)
    lo, hi = world.bounds
    d = np.minimum.reduce([xy[..., 0] - lo[0], hi[0] - xy[..., 0], xy[..., 1] - lo[1], hi[1] - xy[..., 1]])
    for part in band_obstacles(world, z_lo, z_hi):
        rel = xy - np.asarray(part.centre[:2])
        if isinstance(part, Cylinder):
            dist = np.linalg.norm(rel, axis=-1) - part.radius
        else:
            c, s = math.cos(part.yaw), math.sin(part.yaw)
            lx = np.abs(c * rel[..., 0] + s * rel[..., 1]) - part.half_size[0]
            ly = np.abs(-s * rel[..., 0] + c * rel[..., 1]) - part.half_size[1]
            dist = np.hypot(np.maximum(lx, 0.0), np.maximum(ly, 0.0)) + np.minimum(np.maximum(lx, ly), 0.0)
        d = np.minimum(d, dist)
    return d


def truth_grid(world: SyntheticWorld, shape, origin_xy, resolution: float, z_lo: float = 0.05, z_hi: float = 1.5,
               samples: int = 6) -> np.ndarray:
    """``bool [H, W]``: cells (same layout as :meth:`OccupancyMap.grid`) that overlap the solid
    floor plan, judged on a ``samples x samples`` grid of points inside each cell."""
    H, W = shape
    offsets = (np.arange(samples) + 0.5) / samples
    x = origin_xy[0] + (np.arange(W)[:, None] + offsets[None, :]).reshape(-1) * resolution  # [W * s]
    y = origin_xy[1] + (np.arange(H)[:, None] + offsets[None, :]).reshape(-1) * resolution  # [H * s]
    xx, yy = np.meshgrid(x, y)
    solid = floor_plan_distance(world, np.stack([xx, yy], axis=-1), z_lo, z_hi) <= 0
    return solid.reshape(H, samples, W, samples).any(axis=(1, 3))


def exact_scan(world: SyntheticWorld, x: float, y: float, angles, range_max: float,
               z_lo: float = 0.05, z_hi: float = 1.5) -> np.ndarray:
    """Exact 2-D ranges [m] ``[N]`` from ``(x, y)`` along world yaws ``angles`` to the first
    solid of the floor plan in the band (room walls, band obstacles); ``inf`` beyond ``range_max``."""
    angles = np.asarray(angles, dtype=np.float64)
    dx, dy = np.cos(angles), np.sin(angles)
    lo, hi = world.bounds
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.where(dx > 0, (hi[0] - x) / dx, np.where(dx < 0, (lo[0] - x) / dx, np.inf))
        ty = np.where(dy > 0, (hi[1] - y) / dy, np.where(dy < 0, (lo[1] - y) / dy, np.inf))
    best = np.minimum(tx, ty)
    for part in band_obstacles(world, z_lo, z_hi):
        ox, oy = x - part.centre[0], y - part.centre[1]
        if isinstance(part, Cylinder):
            b = ox * dx + oy * dy
            c = ox * ox + oy * oy - part.radius**2
            disc = b * b - c
            with np.errstate(invalid="ignore"):
                t = -b - np.sqrt(disc)
            t = np.where((disc >= 0) & (t > 0), t, np.inf)
        else:
            c, s = math.cos(part.yaw), math.sin(part.yaw)
            lox, loy = c * ox + s * oy, -s * ox + c * oy
            ldx, ldy = c * dx + s * dy, -s * dx + c * dy
            hx, hy = part.half_size[0], part.half_size[1]
            with np.errstate(divide="ignore", invalid="ignore"):
                t1x, t2x = (-hx - lox) / ldx, (hx - lox) / ldx
                t1y, t2y = (-hy - loy) / ldy, (hy - loy) / ldy
            near = np.maximum(np.fmin(t1x, t2x), np.fmin(t1y, t2y))
            far = np.minimum(np.fmax(t1x, t2x), np.fmax(t1y, t2y))
            t = np.where((near <= far) & (near > 0), near, np.inf)
        best = np.minimum(best, t)
    return np.where(best <= range_max, best, np.inf)


@lru_cache(maxsize=4)
def streamed_keyframes(seed: int = NAV_SEED, width: int = 160, height: int = 120, rate_hz: float = 5.0,
                       yaw_wobble: float = 0.6) -> tuple[SyntheticWorld, tuple[Keyframe, ...], np.ndarray]:
    """``(world, keyframes, T_world_base [N, 4, 4])``: a robot drives one loop (with a
    look-around, 0.3 m/s, frames at ``rate_hz``) through synthetic world ``seed``; its frames go through the world service's
    insertion policy and the accepted keyframes are returned (id order). Cached per process."""
    from worldfm_ros.core.renderers.nearest import NearestRenderer
    from worldfm_ros.core.world_service import WorldService, WorldServiceConfig

    world = SyntheticWorld.generate(seed)
    K = default_intrinsics(width, height)
    loop = plan_loop(world, seed, 1, rate_hz=rate_hz, yaw_wobble=yaw_wobble)
    loop = plan_loop(world, seed, loop.period, rate_hz=rate_hz, yaw_wobble=yaw_wobble)
    service = WorldService(WorldServiceConfig(keyframe_width=width, keyframe_height=height,
                                              memory=MemoryConfig()), renderer=NearestRenderer())
    for T, stamp in zip(loop.T_world_cam[: loop.period], loop.stamps):
        colour, depth = world.render(T, K)
        service.ingest(Keyframe(colour, depth, K, T, float(stamp)))
    return world, tuple(service.keyframes()), loop.T_world_base[: loop.period]


def map_scores(occupancy: OccupancyMap, world: SyntheticWorld) -> dict:
    """Occupied-cell IoU within the observed area and the fraction of free cells that are
    truly free, of ``occupancy`` against ``world``'s floor plan in the map's band."""
    cells, origin = occupancy.grid()
    z_lo = occupancy.floor_z + occupancy.min_height
    z_hi = occupancy.floor_z + occupancy.max_height
    solid = truth_grid(world, cells.shape, origin, occupancy.resolution, z_lo, z_hi)
    observed = cells != UNKNOWN
    occupied = cells == OCCUPIED
    free = cells == FREE
    inter = np.count_nonzero(occupied & solid & observed)
    union = np.count_nonzero((occupied | solid) & observed)
    return {
        "occupied_iou": inter / union if union else 0.0,
        "free_correct": np.count_nonzero(free & ~solid) / max(np.count_nonzero(free), 1),
        "occupied_cells": int(np.count_nonzero(occupied)),
        "free_cells": int(np.count_nonzero(free)),
        "observed_cells": int(np.count_nonzero(observed)),
    }
