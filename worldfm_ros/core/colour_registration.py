"""Colour/depth registration of RGB-D frames whose colour camera is wider or narrower than
the intrinsics say.

The contract assumes registered RGB-D: one ``CameraInfo`` describes the colour and the depth
image. Some sensors' data break that. 7-Scenes reports the depth camera's intrinsics (585 px
at 640x480); Kinect v1's colour camera has about 525 px. With the reported intrinsics, a
colour pixel is painted at the 3-D point of the depth pixel with the same index, which lies in
a different direction. Warped colour is then misplaced by a shift that grows with the
rotation between the views (``scripts/reference_misalignment.py``: 0.55 px for the nearest
references and 1.97 px for the farthest on redkitchen, halved with a 525 px colour focal).

Model: the colour camera shares the depth camera's centre, axes and principal point and
has focal length ``ratio`` times the depth camera's. Its 3-D baseline to the depth camera
(about 2.5 cm on a Kinect) is ignored. :func:`register_to_colour` resamples the depth onto
the colour camera's pixel grid (nearest sample, so that no depth is interpolated across an
edge). It returns the colour camera's intrinsics, so the frame becomes a registered RGB-D
frame of the colour camera. Colour pixels outside the depth camera's field of view get no
depth (0).

:func:`estimate_colour_focal_ratio` finds ``ratio`` from posed frames alone: it is the ratio
at which colour looks the same from two views of one depth point. It takes pairs of frames
that look at the same place from different directions, and minimises the photometric
difference over a grid of ratios. The frames are the memory's; targets are never used.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from worldfm_ros.core.camera import Intrinsics

#: Ratios the estimator searches by default (colour focal / reported focal).
DEFAULT_RATIOS = tuple(np.round(np.arange(0.80, 1.2001, 0.005), 4).tolist())


def colour_intrinsics(intrinsics: Intrinsics, ratio: float) -> Intrinsics:
    """The colour camera's intrinsics: focal lengths times ``ratio``, same principal point."""
    _check_ratio(ratio)
    return dataclasses.replace(intrinsics, fx=intrinsics.fx * ratio, fy=intrinsics.fy * ratio)


def _check_ratio(ratio: float) -> None:
    if not (math.isfinite(ratio) and 0.5 <= ratio <= 2.0):
        raise ValueError(f"colour focal ratio must be a finite number in [0.5, 2], got {ratio!r}")


def register_to_colour(depth: np.ndarray, intrinsics: Intrinsics, ratio: float) -> tuple[np.ndarray, Intrinsics]:
    """``(depth on the colour camera's grid, colour intrinsics)`` for a frame whose colour
    focal length is ``ratio`` times the reported (depth) one.

    Colour pixel ``u`` sees the direction ``(u - cx) / (ratio fx)``, which the depth camera
    images at ``cx + (u - cx) / ratio``. Depth is z along the shared optical axis, so its
    value carries over unchanged. ``ratio == 1`` returns the input unchanged.
    """
    _check_ratio(ratio)
    if ratio == 1.0:
        return depth, intrinsics
    H, W = depth.shape
    u = (intrinsics.cx + (np.arange(W, dtype=np.float64) - intrinsics.cx) / ratio).astype(np.float32)
    v = (intrinsics.cy + (np.arange(H, dtype=np.float64) - intrinsics.cy) / ratio).astype(np.float32)
    map_x = np.broadcast_to(u[None, :], (H, W)).copy()
    map_y = np.broadcast_to(v[:, None], (H, W)).copy()
    registered = cv2.remap(np.ascontiguousarray(depth, dtype=np.float32), map_x, map_y, cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return registered, colour_intrinsics(intrinsics, ratio)


def register_frame(frame, ratio: float):
    """A copy of a dataset frame (any dataclass with ``depth`` and ``intrinsics``) registered
    to its colour camera (see :func:`register_to_colour`)."""
    depth, intrinsics = register_to_colour(frame.depth, frame.intrinsics, ratio)
    return dataclasses.replace(frame, depth=depth, intrinsics=intrinsics)


@dataclass(frozen=True)
class RegistrationEstimate:
    """Result of :func:`estimate_colour_focal_ratio`.

    Attributes:
        ratio: the estimated colour focal / reported focal.
        ratios: the ratios searched.
        cost: mean robust photometric difference at each ratio (lower is better).
        pairs: frame index pairs ``(a, b)`` used.
        points: depth points compared per ratio (summed over pairs, at the best ratio).
    """

    ratio: float
    ratios: tuple
    cost: tuple
    pairs: tuple
    points: int


def _grey(colour: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(colour), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def select_pairs(poses: Sequence[np.ndarray], max_pairs: int = 24, min_angle_deg: float = 4.0,
                 max_angle_deg: float = 30.0, max_distance: float = 0.6) -> list[tuple[int, int]]:
    """Frame pairs that look at the same place from directions ``min_angle_deg`` to
    ``max_angle_deg`` apart (a wrong focal length misplaces colour by more the larger the
    rotation), camera centres at most ``max_distance`` apart; for each frame the partner
    with the largest such angle, then at most ``max_pairs`` spread evenly over the sequence."""
    T = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    centres, rotations = T[:, :3, 3], T[:, :3, :3]
    candidates = []
    for a in range(len(T) - 1):
        near = np.linalg.norm(centres[a + 1:] - centres[a], axis=1) <= max_distance
        # trace(Ra^T Rb) = sum of the elementwise product; angle = acos((trace - 1) / 2)
        trace = np.einsum("ij,bij->b", rotations[a], rotations[a + 1:])
        angle = np.degrees(np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0)))
        ok = near & (angle >= min_angle_deg) & (angle <= max_angle_deg)
        if ok.any():
            candidates.append((a, a + 1 + int(np.argmax(np.where(ok, angle, -1.0)))))
    if len(candidates) > max_pairs:
        keep = np.linspace(0, len(candidates) - 1, max_pairs).round().astype(int)
        candidates = [candidates[i] for i in keep]
    return candidates


def _pair_samples(fa, fb, stride: int, depth_tolerance: float):
    """Depth points of ``fb`` (every ``stride``-th depth pixel) that ``fa``'s depth also sees
    (z within ``depth_tolerance``): their depth-camera pixels in ``fb`` and camera coordinates
    in ``fa``. Independent of the ratio, computed once per pair."""
    K = fb.intrinsics
    H, W = fb.depth.shape
    vv, uu = np.mgrid[0:H:stride, 0:W:stride].astype(np.float64)
    z = fb.depth[::stride, ::stride].astype(np.float64)
    ok = z > 0
    uu, vv, z = uu[ok], vv[ok], z[ok]
    X = np.stack([(uu - K.cx) / K.fx * z, (vv - K.cy) / K.fy * z, z], axis=1)
    T_ab = np.linalg.inv(fa.T_world_cam) @ fb.T_world_cam
    Xa = X @ T_ab[:3, :3].T + T_ab[:3, 3]
    Ka = fa.intrinsics
    za = Xa[:, 2]
    front = za > 0.1
    ua = np.full_like(za, -1.0)
    va = np.full_like(za, -1.0)
    ua[front] = Ka.fx * Xa[front, 0] / za[front] + Ka.cx
    va[front] = Ka.fy * Xa[front, 1] / za[front] + Ka.cy
    # Visibility in fa by its own depth (depth grid, independent of the colour ratio).
    ui, vi = np.rint(ua).astype(np.int64), np.rint(va).astype(np.int64)
    inside = front & (ui >= 0) & (ui < W) & (vi >= 0) & (vi < H)
    seen = np.zeros_like(inside)
    d_a = fa.depth[vi[inside], ui[inside]].astype(np.float64)
    seen[inside] = (d_a > 0) & (np.abs(d_a - za[inside]) <= depth_tolerance * za[inside])
    return uu[seen], vv[seen], Xa[seen]


def estimate_colour_focal_ratio(frames: Sequence, ratios: Sequence[float] = DEFAULT_RATIOS, *,
                                max_pairs: int = 24, stride: int = 2, depth_tolerance: float = 0.03,
                                min_points: int = 2000) -> RegistrationEstimate:
    """Estimate the colour camera's focal length relative to the reported one from posed
    RGB-D frames (``colour``, ``depth``, ``intrinsics``, ``T_world_cam``).

    For each selected pair (:func:`select_pairs`) and each candidate ratio, a depth point of
    frame ``b`` is looked up in both colour images through the colour camera of that ratio.
    The cost is the mean over pairs of the mean absolute grey difference, clipped at 0.1 so
    that occlusions and reflections weigh no more than a clear mismatch; each image's samples
    are divided by their mean first (exposure). The estimate is the grid minimum, refined by
    a parabola through its neighbours. A registered sensor gives about 1.

    Raises:
        ValueError: fewer than two frames, no usable pair, or too few shared points.
    """
    if len(frames) < 2:
        raise ValueError("colour registration needs at least two posed frames")
    ratios = np.asarray(sorted(float(r) for r in ratios))
    for r in ratios:
        _check_ratio(float(r))
    pairs = select_pairs([f.T_world_cam for f in frames], max_pairs=max_pairs)
    if not pairs:
        raise ValueError("colour registration: no two frames see the same place from different "
                         "directions (4-30 degrees apart, centres within 0.6 m)")
    grey = {}
    samples = []
    for a, b in pairs:
        for i in (a, b):
            if i not in grey:
                grey[i] = _grey(frames[i].colour)
        uu, vv, Xa = _pair_samples(frames[a], frames[b], stride, depth_tolerance)
        if len(uu) >= 50:
            samples.append((a, b, uu, vv, Xa))
    total = sum(len(s[2]) for s in samples)
    if total < min_points:
        raise ValueError(f"colour registration: only {total} depth points are seen by both frames of "
                         f"a pair (need {min_points})")
    cost = np.zeros(len(ratios))
    counted = np.zeros(len(ratios), dtype=np.int64)
    for a, b, uu, vv, Xa in samples:
        Ka, Kb = frames[a].intrinsics, frames[b].intrinsics
        pair_cost = np.zeros(len(ratios))
        for j, r in enumerate(ratios):
            ub = (Kb.cx + r * (uu - Kb.cx)).astype(np.float32)  # b's colour pixel of the depth pixel
            vb = (Kb.cy + r * (vv - Kb.cy)).astype(np.float32)
            ua = (r * Ka.fx * Xa[:, 0] / Xa[:, 2] + Ka.cx).astype(np.float32)
            va = (r * Ka.fy * Xa[:, 1] / Xa[:, 2] + Ka.cy).astype(np.float32)
            gb = cv2.remap(grey[b], ub[None], vb[None], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=-1.0)[0]
            ga = cv2.remap(grey[a], ua[None], va[None], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=-1.0)[0]
            ok = (ga >= 0) & (gb >= 0)
            if ok.sum() < 50:
                pair_cost[j] = np.nan
                continue
            ga, gb = ga[ok], gb[ok]
            diff = np.abs(ga / max(ga.mean(), 1e-3) - gb / max(gb.mean(), 1e-3))
            pair_cost[j] = float(np.minimum(diff, 0.1).mean())
            counted[j] += int(ok.sum())
        if np.isfinite(pair_cost).all():
            cost += pair_cost
    cost /= len(samples)
    best = int(np.argmin(cost))
    ratio = float(ratios[best])
    if 0 < best < len(ratios) - 1:  # parabola through the minimum and its neighbours
        c0, c1, c2 = cost[best - 1], cost[best], cost[best + 1]
        denom = c0 - 2.0 * c1 + c2
        if denom > 0:
            ratio += 0.5 * (c0 - c2) / denom * float(ratios[best + 1] - ratios[best])
    return RegistrationEstimate(ratio=round(ratio, 4), ratios=tuple(ratios.tolist()), cost=tuple(cost.tolist()),
                                pairs=tuple((a, b) for a, b, *_ in samples), points=int(counted[best]))


def resolve_colour_focal_ratio(value, memory_frames: Sequence) -> tuple[float, Optional[RegistrationEstimate]]:
    """``value`` as a ratio: a number, or ``"auto"`` (estimated from ``memory_frames``)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        estimate = estimate_colour_focal_ratio(memory_frames)
        return estimate.ratio, estimate
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"colour focal ratio must be a number or 'auto', got {value!r}") from None
    _check_ratio(ratio)
    return ratio, None
