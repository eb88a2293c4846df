"""Closed, smooth robot-like camera paths through a :class:`SyntheticWorld`.

A path is a closed uniform cubic B-spline (C2: smooth position, heading and turn rate)
through random free-space control points, driven at constant speed with the robot base
heading along the path. The base stays level at ``z = camera_height - camera_to_base_z``;
the camera pose is ``T_world_base @ camera_to_base`` (REP 103: base x forward, y left,
z up; camera optical x right, y down, z forward). Frame ``i`` and frame ``i + period`` are
the same pose, bit for bit, so driving the loop again revisits exactly the same views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from worldfm_ros.core.pose import pose_from_vector, validate_pose_matrix
from worldfm_ros.core.synthetic.scene import SyntheticWorld

#: ``camera_to_base`` of the contract's default forward-looking camera at the base origin.
DEFAULT_CAMERA_TO_BASE = pose_from_vector([0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5])

_SAMPLES_PER_SEGMENT = 64
#: Clearance [m] tried first when planning a loop (falls back to the requested one).
COMFORT_CLEARANCE = 0.6


@dataclass(frozen=True)
class LoopTrajectory:
    """A closed path sampled at a fixed rate.

    Attributes:
        T_world_base: ``float64 [N, 4, 4]`` base poses (level, heading along the path).
        T_world_cam: ``float64 [N, 4, 4]`` camera optical poses ``T_world_base @ camera_to_base``.
        stamps: ``float64 [N]`` times [s], ``i / rate_hz``.
        period: frames per loop: pose ``i`` equals pose ``i + period`` exactly.
        length: length of one loop [m].
        camera_to_base: ``float64 [4, 4]``.
    """

    T_world_base: np.ndarray
    T_world_cam: np.ndarray
    stamps: np.ndarray
    period: int
    length: float
    camera_to_base: np.ndarray


def base_pose(x: float, y: float, yaw: float, z: float = 0.0) -> np.ndarray:
    """``[4, 4]`` level base pose at ``(x, y, z)`` [m] heading ``yaw`` [rad] about +z."""
    c, s = math.cos(yaw), math.sin(yaw)
    T = np.eye(4)
    T[:2, :2] = [[c, -s], [s, c]]
    T[:3, 3] = (x, y, z)
    return T


def plan_loop(
    world: SyntheticWorld,
    seed: int,
    n_frames: int,
    *,
    camera_height: float = 0.6,
    speed: float = 0.3,
    rate_hz: float = 15.0,
    clearance: float = 0.3,
    camera_to_base: np.ndarray | None = None,
    yaw_wobble: float = 0.0,
    max_attempts: int = 400,
) -> LoopTrajectory:
    """A closed loop of ``n_frames`` poses through ``world``'s free space.

    Args:
        world: the world to drive in.
        seed: selects the loop (same world + seed -> same bytes).
        n_frames: number of frames returned (may exceed one loop; the loop repeats).
        camera_height: height of the camera optical centre above the floor [m].
        speed: driving speed [m/s]; the step per frame is ``speed / rate_hz``, adjusted by
            < 1 frame per loop so that a whole number of frames closes the loop.
        rate_hz: frame rate [Hz].
        clearance: smallest floor distance of base and camera to walls and obstacles [m].
        camera_to_base: ``[4, 4]`` pose of the camera optical frame in the base frame;
            default :data:`DEFAULT_CAMERA_TO_BASE`.
        yaw_wobble: amplitude [rad] of a smooth periodic look-around added to the heading
            (0 = heading along the path, like a differential-drive robot).
        max_attempts: random control polygons tried before giving up.

    Raises:
        ValueError: bad arguments, or no loop with this clearance fits in the world.
    """
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
    for name, value in (("speed", speed), ("rate_hz", rate_hz)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be positive and finite, got {value!r}")
    if not (math.isfinite(clearance) and clearance >= 0):
        raise ValueError(f"clearance must be >= 0, got {clearance!r}")
    T_base_cam = DEFAULT_CAMERA_TO_BASE if camera_to_base is None else validate_pose_matrix(camera_to_base)
    lo, hi = world.bounds
    if not lo[2] < camera_height < hi[2]:
        raise ValueError(f"camera_height {camera_height} m is not between floor and ceiling")
    rng = np.random.default_rng([int(seed), 0x100F])
    # The look-around has its own generator so the path is the same with or without it.
    wobble_rng = np.random.default_rng([int(seed), 0x30B])
    wobble = (float(yaw_wobble), int(wobble_rng.integers(2, 4)), float(wobble_rng.uniform(0, 2 * math.pi)))
    step = speed / rate_hz
    best = None
    # Prefer loops with room to spare (views across the room rather than along a wall);
    # among those found, the one that encloses the most floor.
    for margin in sorted({max(clearance, COMFORT_CLEARANCE), clearance}, reverse=True):
        found = 0
        for control in _control_polygons(world, rng, margin, max_attempts):
            loop = _sample_loop(world, control, clearance, step, T_base_cam, camera_height, wobble)
            if loop is None:
                continue
            found += 1
            if best is None or loop[3] > best[3]:
                best = loop
            if found >= 6:
                break
        if best is not None:
            break
    if best is None:
        raise ValueError(f"no loop with clearance {clearance} m found in {max_attempts} attempts")
    base_loop, cam_loop, length, _ = best
    period = len(base_loop)
    index = np.arange(n_frames) % period
    return LoopTrajectory(
        T_world_base=base_loop[index],
        T_world_cam=cam_loop[index],
        stamps=np.arange(n_frames, dtype=np.float64) / rate_hz,
        period=period,
        length=length,
        camera_to_base=T_base_cam.copy(),
    )


def robot_loop(world: SyntheticWorld, seed: int, n_frames: int, **options) -> list[np.ndarray]:
    """Camera optical poses ``T_world_cam`` ``[4, 4]`` of :func:`plan_loop` as a list."""
    return list(plan_loop(world, seed, n_frames, **options).T_world_cam)


def free_loop_path(world: SyntheticWorld, rng: np.random.Generator, clearance: float, max_attempts: int = 400):
    """Dense points ``[M, 2]`` of the largest of up to 6 random closed free-space loops, or
    ``None``. Used by the world generator to keep a driving corridor clear of furniture."""
    best = None
    found = 0
    for control in _control_polygons(world, rng, clearance, max_attempts):
        pos = _bspline(control, _dense_parameters(len(control)))[0]
        area = _area(pos)
        found += 1
        if best is None or area > best[1]:
            best = (pos, area)
        if found >= 6:
            break
    return None if best is None else best[0]


def _dense_parameters(k: int) -> np.ndarray:
    """Spline parameters ``[k * 64]``: 64 evenly spaced samples per segment of ``[0, k)``."""
    return np.arange(k * _SAMPLES_PER_SEGMENT) / _SAMPLES_PER_SEGMENT


def _area(pos: np.ndarray) -> float:
    return 0.5 * abs(float(np.sum(pos[:, 0] * np.roll(pos[:, 1], -1) - np.roll(pos[:, 0], -1) * pos[:, 1])))


def _control_polygons(world, rng, clearance, max_attempts):
    """Yield control polygons ``[K, 2]`` whose closed B-spline is a simple loop, free by
    ``clearance`` [m], with turn radius >= 0.35 m and length >= 2 m."""
    lo, hi = world.bounds
    half_extent = (hi[:2] - lo[:2]) / 2
    mid = (hi[:2] + lo[:2]) / 2
    for _ in range(max_attempts):
        # A jittered ellipse of control points: star-shaped around its centre, and smooth.
        # The centre may lie in an obstacle (a loop around an island of furniture).
        centre = mid + rng.uniform(-0.8, 0.8, size=2) * half_extent
        axes = rng.uniform(0.4, 1.0, size=2) * half_extent
        rotation = rng.uniform(0.0, math.pi)
        k = int(rng.integers(8, 13))
        theta = 2 * math.pi * np.arange(k) / k + rng.uniform(0.0, 2 * math.pi / k)
        radius = 1.0 + rng.uniform(-0.15, 0.15, size=k)
        unit = np.stack([np.cos(theta) * radius, np.sin(theta) * radius], axis=1)
        c, s = math.cos(rotation), math.sin(rotation)
        if rng.random() < 0.5:
            unit = unit[::-1]
        for scale in (1.0, 0.75, 0.55, 0.4):  # shrink a shape that does not fit
            control = (unit * axes * scale) @ np.array([[c, s], [-s, c]]) + centre
            if _is_good_loop(world, control, clearance):
                yield control
                break


def _is_good_loop(world, control, clearance) -> bool:
    """The closed B-spline of ``control`` is simple, free by ``clearance`` [m], turns with
    a radius >= 0.35 m and is at least 2 m long."""
    k = len(control)
    coarse = _bspline(control, np.arange(4 * k) / 4.0)[0]
    if world.clearance(coarse).min() < clearance:
        return False
    pos, vel, acc = _bspline(control, _dense_parameters(k))
    if world.clearance(pos).min() < clearance:
        return False
    centroid = pos.mean(axis=0)
    angle = np.arctan2(pos[:, 1] - centroid[1], pos[:, 0] - centroid[0])
    turning = np.angle(np.exp(1j * (np.roll(angle, -1) - angle)))
    if not (np.all(turning > 0) or np.all(turning < 0)):
        return False
    speed2 = np.einsum("ij,ij->i", vel, vel)
    curvature = np.abs(vel[:, 0] * acc[:, 1] - vel[:, 1] * acc[:, 0]) / np.maximum(speed2, 1e-12) ** 1.5
    if curvature.max() > 1.0 / 0.35:
        return False
    return np.linalg.norm(np.diff(np.vstack([pos, pos[:1]]), axis=0), axis=1).sum() >= 2.0


def _sample_loop(world, control, clearance, step, T_base_cam, camera_height, wobble):
    """Frames of one loop at constant arc-length step: ``(base poses, camera poses,
    length, area)``, or None when the camera (offset from the base) is not free."""
    k = len(control)
    t = _dense_parameters(k)
    pos = _bspline(control, t)[0]
    segment = np.linalg.norm(np.diff(np.vstack([pos, pos[:1]]), axis=0), axis=1)
    length = float(segment.sum())
    # Invert arc length s(t) on the dense samples.
    s = np.concatenate([[0.0], np.cumsum(segment)])
    period = max(8, int(round(length / step)))
    t_frames = np.interp(np.arange(period) * (length / period), s, np.append(t, float(k)))
    p, v, _ = _bspline(control, t_frames)
    heading = np.unwrap(np.arctan2(v[:, 1], v[:, 0]))
    amplitude, cycles, phase = wobble
    if amplitude:
        heading = heading + amplitude * np.sin(2 * math.pi * cycles * np.arange(period) / period + phase)
    base_z = camera_height - T_base_cam[2, 3]
    bases = np.stack([base_pose(x, y, yaw, base_z) for (x, y), yaw in zip(p, heading)])
    cams = bases @ T_base_cam
    if world.clearance(cams[:, :2, 3]).min() < clearance:
        return None
    return bases, cams, length, _area(pos)


def _bspline(control: np.ndarray, t: np.ndarray):
    """Closed uniform cubic B-spline of ``control`` ``[K, 2]`` at parameters ``t`` in
    ``[0, K)``: position, first and second derivative (each ``[N, 2]``, per unit ``t``)."""
    k = len(control)
    j = np.floor(t).astype(np.int64)
    u = (t - j)[:, None]
    p0, p1, p2, p3 = (control[(j + o) % k] for o in (-1, 0, 1, 2))
    pos = ((1 - u) ** 3 * p0 + (3 * u**3 - 6 * u**2 + 4) * p1 + (-3 * u**3 + 3 * u**2 + 3 * u + 1) * p2 + u**3 * p3) / 6
    vel = (-3 * (1 - u) ** 2 * p0 + (9 * u**2 - 12 * u) * p1 + (-9 * u**2 + 6 * u + 3) * p2 + 3 * u**2 * p3) / 6
    acc = (6 * (1 - u) * p0 + (18 * u - 12) * p1 + (-18 * u + 6) * p2 + 6 * u * p3) / 6
    return pos, vel, acc
