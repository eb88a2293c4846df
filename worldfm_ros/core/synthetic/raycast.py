"""Exact analytic ray casting of a room (seen from inside), yaw-rotated boxes and vertical
cylinders, vectorised over pixels with numpy.

Rays are generated per pixel centre as ``d_cam = ((u - cx) / fx, (v - cy) / fy, 1)``, i.e.
*not* normalised: the ray parameter ``t`` of a hit is then exactly its z-depth along the
optical axis [m]. Each primitive is only tested against the pixels inside the projection
of its bounding corners (a conservative screen rectangle), which keeps the cost close to
"one slab test per covered pixel" instead of "every primitive for every pixel".

Face numbering (per primitive): boxes and the room ``0..5 = -x, +x, -y, +y, -z, +z`` of the
primitive's own frame; cylinders ``0 = side, 1 = bottom cap, 2 = top cap``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from worldfm_ros.core.camera import Intrinsics

#: Hits closer than this along the ray are ignored [m of z-depth].
NEAR = 1e-4

#: Primitive kinds in :class:`CompiledScene`.
KIND_ROOM, KIND_BOX, KIND_CYLINDER = 0, 1, 2


@dataclass(frozen=True)
class CompiledScene:
    """Flat per-primitive arrays of a scene (index 0 is the room). ``P`` primitives.

    Attributes:
        kind: ``int8 [P]`` one of ``KIND_*``.
        centre: ``float64 [P, 3]`` primitive frame origin in the world [m].
        yaw: ``float64 [P]`` rotation of the primitive frame about world +z [rad].
        half_size: ``float64 [P, 3]`` box half extents [m]; cylinders: ``(r, r, half_height)``.
        corners: ``float64 [P, 8, 3]`` world points whose convex hull contains the primitive.
    """

    kind: np.ndarray
    centre: np.ndarray
    yaw: np.ndarray
    half_size: np.ndarray
    corners: np.ndarray


@dataclass
class Hits:
    """Per-pixel nearest hits of one view, ``[H, W]`` unless noted.

    Attributes:
        depth: ``float32`` z-depth [m], 0 where the ray hits nothing.
        prim: ``int16`` primitive index, -1 for no hit.
        face: ``int8`` face of that primitive (see module docstring).
        local: ``float32 [3, H, W]`` hit point in the primitive's frame [m] (planar layout,
            one contiguous plane per coordinate).
    """

    depth: np.ndarray
    prim: np.ndarray
    face: np.ndarray
    local: np.ndarray


@lru_cache(maxsize=64)
def camera_rays(intrinsics: Intrinsics) -> np.ndarray:
    """``float32 [H, W, 3]`` pixel-centre ray directions in the optical frame, ``z = 1``."""
    u = (np.arange(intrinsics.width, dtype=np.float64) - intrinsics.cx) / intrinsics.fx
    v = (np.arange(intrinsics.height, dtype=np.float64) - intrinsics.cy) / intrinsics.fy
    rays = np.empty((intrinsics.height, intrinsics.width, 3), dtype=np.float32)
    rays[..., 0] = u[None, :]
    rays[..., 1] = v[:, None]
    rays[..., 2] = 1.0
    rays.setflags(write=False)
    return rays


def world_rays(T_world_cam: np.ndarray, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Origin ``float64 [3]`` and directions ``float32 [3, H, W]`` (world frame, planar
    layout; each direction has z-component 1 in the camera frame)."""
    R = T_world_cam[:3, :3].astype(np.float32)
    rays = camera_rays(intrinsics)
    directions = (R @ rays.reshape(-1, 3).T).reshape(3, intrinsics.height, intrinsics.width)
    return T_world_cam[:3, 3].astype(np.float64), directions


def screen_rect(corners_world: np.ndarray, T_world_cam: np.ndarray, intrinsics: Intrinsics):
    """Pixel rectangle ``(y0, y1, x0, x1)`` (half-open) that contains every pixel whose ray
    can hit the convex hull of ``corners_world`` ``[8, 3]``; ``None`` when none can."""
    R = T_world_cam[:3, :3]
    cam = (corners_world - T_world_cam[:3, 3]) @ R
    z = cam[:, 2]
    if (z <= NEAR).all():
        return None
    if (z <= NEAR).any():
        return 0, intrinsics.height, 0, intrinsics.width
    u = intrinsics.fx * cam[:, 0] / z + intrinsics.cx
    v = intrinsics.fy * cam[:, 1] / z + intrinsics.cy
    x0 = max(int(np.floor(u.min())) - 1, 0)
    x1 = min(int(np.ceil(u.max())) + 2, intrinsics.width)
    y0 = max(int(np.floor(v.min())) - 1, 0)
    y1 = min(int(np.ceil(v.max())) + 2, intrinsics.height)
    if x0 >= x1 or y0 >= y1:
        return None
    return y0, y1, x0, x1


def _to_local(origin, directions, centre, yaw):
    """Origin (3 floats) and direction components (3 arrays) in a yaw-rotated frame."""
    c, s = float(np.cos(yaw)), float(np.sin(yaw))
    ox, oy, oz = (float(x) for x in (origin - centre))
    lox, loy = c * ox + s * oy, -s * ox + c * oy
    dx, dy, dz = directions[0], directions[1], directions[2]
    if c == 1.0 and s == 0.0:
        return (lox, loy, oz), (dx, dy, dz)
    return (lox, loy, oz), (c * dx + s * dy, -s * dx + c * dy, dz)


def _slabs(o_local, d_local, half):
    """Entry/exit ``t`` and per-axis entry ``t`` of rays against an origin-centred box."""
    t_in = []
    t_out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for o, d, h in zip(o_local, d_local, half):
            inv = 1.0 / d
            t1 = (-h - o) * inv
            t2 = (h - o) * inv
            t_in.append(np.fmin(t1, t2))
            t_out.append(np.fmax(t1, t2))
    near = np.maximum(np.maximum(t_in[0], t_in[1]), t_in[2])
    far = np.minimum(np.minimum(t_out[0], t_out[1]), t_out[2])
    return near, far, t_in


def cast_room(origin, directions, scene: CompiledScene, hits: Hits) -> None:
    """Fill ``hits`` with the room's interior faces (where the camera is inside the room)."""
    o_local, d_local = _to_local(origin, directions, scene.centre[0], scene.yaw[0])
    half = scene.half_size[0]
    inside = all(abs(o) < h for o, h in zip(o_local, half))
    if not inside:
        return
    t_out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for o, d, h in zip(o_local, d_local, half):
            # signbit, not d > 0: a +0.0 component must give +inf, never -inf.
            t_out.append(np.where(np.signbit(d), (-h - o) / d, (h - o) / d))
    tx, ty, tz = t_out
    axis = np.where((tx <= ty) & (tx <= tz), 0, np.where(ty <= tz, 1, 2)).astype(np.int8)
    t = np.minimum(np.minimum(tx, ty), tz)
    d_axis = np.choose(axis, d_local)
    face = (2 * axis + (d_axis > 0)).astype(np.int8)
    hits.depth[...] = t
    hits.prim[...] = 0
    hits.face[...] = face
    for k in range(3):
        hits.local[k] = o_local[k] + t * d_local[k]


def cast_box(index, origin, directions, scene: CompiledScene, hits: Hits, rect) -> None:
    """Update ``hits`` inside ``rect`` with the solid box ``index`` where it is nearer."""
    y0, y1, x0, x1 = rect
    d_rect = directions[:, y0:y1, x0:x1]
    o_local, d_local = _to_local(origin, d_rect, scene.centre[index], scene.yaw[index])
    near, far, t_in = _slabs(o_local, d_local, scene.half_size[index])
    best = hits.depth[y0:y1, x0:x1]
    valid = (best > 0) & (best < np.inf)
    closer = np.where(valid, near < best, True)
    mask = (near <= far) & (near > NEAR) & closer
    if not mask.any():
        return
    t = near[mask]
    tx, ty, tz = (ti[mask] for ti in t_in)
    axis = np.where((tx >= ty) & (tx >= tz), 0, np.where(ty >= tz, 1, 2)).astype(np.int8)
    dl = [d[mask] for d in d_local]
    d_axis = np.choose(axis, dl)
    face = (2 * axis + (d_axis < 0)).astype(np.int8)  # entering a +k face moves towards -k
    _write(hits, rect, mask, t, index, face, [o + t * d for o, d in zip(o_local, dl)])


def cast_cylinder(index, origin, directions, scene: CompiledScene, hits: Hits, rect) -> None:
    """Update ``hits`` inside ``rect`` with the solid vertical cylinder ``index``."""
    y0, y1, x0, x1 = rect
    d_rect = directions[:, y0:y1, x0:x1]
    (ox, oy, oz), (dx, dy, dz) = _to_local(origin, d_rect, scene.centre[index], scene.yaw[index])
    r = float(scene.half_size[index, 0])
    hh = float(scene.half_size[index, 2])
    if ox * ox + oy * oy <= r * r and abs(oz) <= hh:
        return  # camera inside the solid: it sees out through it
    a = dx * dx + dy * dy
    b = ox * dx + oy * dy  # half of the usual b
    c = ox * ox + oy * oy - r * r
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = b * b - a * c
        t_side = (-b - np.sqrt(disc)) / a
        z_side = oz + t_side * dz
        side_ok = (disc >= 0) & (a > 0) & (np.abs(z_side) <= hh) & (t_side > NEAR)
        cap_z = -hh if oz < -hh else hh
        t_cap = (cap_z - oz) / dz
        cx_ = ox + t_cap * dx
        cy_ = oy + t_cap * dy
        cap_ok = (abs(oz) > hh) & (cx_ * cx_ + cy_ * cy_ <= r * r) & (t_cap > NEAR)
    t = np.where(side_ok, t_side, np.inf)
    t = np.where(cap_ok & (t_cap < t), t_cap, t)
    best = hits.depth[y0:y1, x0:x1]
    valid = (best > 0) & (best < np.inf)
    mask = np.isfinite(t) & np.where(valid, t < best, True)
    if not mask.any():
        return
    tm = t[mask]
    is_cap = cap_ok[mask] & (t_cap[mask] == tm)
    face = np.where(is_cap, 1 if cap_z < 0 else 2, 0).astype(np.int8)
    dl = (dx[mask], dy[mask], dz[mask])
    _write(hits, rect, mask, tm, index, face, [o + tm * d for o, d in zip((ox, oy, oz), dl)])


def _write(hits: Hits, rect, mask, t, index, face, local) -> None:
    y0, y1, x0, x1 = rect
    hits.depth[y0:y1, x0:x1][mask] = t
    hits.prim[y0:y1, x0:x1][mask] = index
    hits.face[y0:y1, x0:x1][mask] = face
    for k in range(3):
        hits.local[k, y0:y1, x0:x1][mask] = local[k]


def cast(scene: CompiledScene, T_world_cam: np.ndarray, intrinsics: Intrinsics) -> tuple[Hits, np.ndarray, np.ndarray]:
    """Nearest hits of every pixel of one view.

    Returns ``(hits, origin [3], directions [3, H, W])`` so callers can rebuild world points
    as ``origin + depth * directions``.
    """
    origin, directions = world_rays(T_world_cam, intrinsics)
    h, w = intrinsics.height, intrinsics.width
    hits = Hits(
        depth=np.zeros((h, w), np.float32),
        prim=np.full((h, w), -1, np.int16),
        face=np.zeros((h, w), np.int8),
        local=np.zeros((3, h, w), np.float32),
    )
    cast_room(origin, directions, scene, hits)
    for index in range(1, len(scene.kind)):
        rect = screen_rect(scene.corners[index], T_world_cam, intrinsics)
        if rect is None:
            continue
        if scene.kind[index] == KIND_BOX:
            cast_box(index, origin, directions, scene, hits, rect)
        else:
            cast_cylinder(index, origin, directions, scene, hits, rect)
    return hits, origin, directions
