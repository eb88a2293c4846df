"""One simulated ground robot in a remembered world: what the single and the vector
environment share (loading the world, start poses, actions, the camera)."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import WorldFileError, WorldFMError
from worldfm_ros.core.pose import invert_pose, pose_from_vector
from worldfm_ros.core.sim_base import SimBase
from worldfm_ros.core.world_service import WorldService, WorldServiceConfig

#: The contract's default ``camera_to_base``: a forward-looking camera at the base origin.
DEFAULT_CAMERA_TO_BASE = (0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5)


class InvalidEnvOptionError(WorldFMError, ValueError):
    """An environment option or reset option outside its range (the value is attached)."""


def load_world(world_path: str, *, backend: str = "geometric", device: str = "cpu",
               **config_options) -> WorldService:
    """A :class:`WorldService` holding the keyframes of the world file ``world_path`` (read
    only: the file is never written) and their occupancy map.

    Raises ``WorldFileError`` for a missing, foreign or empty world file.
    """
    from worldfm_ros.core.world_file import read_world

    keyframes = read_world(str(world_path))
    if not keyframes:
        raise WorldFileError(f"{world_path} holds no keyframe", str(world_path))
    width, height = keyframes[0].intrinsics.size
    service = WorldService(WorldServiceConfig(backend=backend, device=device, keyframe_width=width,
                                              keyframe_height=height, **config_options))
    service.load_keyframes(keyframes)
    return service


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise InvalidEnvOptionError(f"{name} must be a positive finite number, got {value!r}", value)
    return float(value)


def yaw_of(T: np.ndarray) -> float:
    """Heading [rad] of a pose about the world z axis."""
    return math.atan2(T[1, 0], T[0, 0])


class NavRobot:
    """A planar robot (:class:`SimBase` on ``world.occupancy_map``) with a camera.

    Args:
        world: the remembered world (shared by any number of robots).
        width, height: camera image size [px]; intrinsics are the first keyframe's, resized.
        dt: action duration [s].
        v_max, w_max: action bounds: forward speed [m/s], yaw rate [rad/s].
        footprint_radius: [m].
        camera_to_base: ``[x, y, z, qx, qy, qz, qw]`` camera optical frame in the base frame.
    """

    def __init__(self, world: WorldService, *, width: int = 128, height: int = 96, dt: float = 0.1,
                 v_max: float = 0.5, w_max: float = 1.0, footprint_radius: float = 0.2,
                 camera_to_base: Sequence[float] = DEFAULT_CAMERA_TO_BASE):
        self.world = world
        self.dt = _positive("dt", dt)
        self.v_max = _positive("v_max", v_max)
        self.w_max = _positive("w_max", w_max)
        first = world.first_keyframe()
        if first is None:
            raise InvalidEnvOptionError("the world holds no keyframe", 0)
        self.intrinsics: Intrinsics = first.intrinsics.resized(width, height)
        self.T_base_cam = pose_from_vector(list(camera_to_base))
        T_cam_base = invert_pose(self.T_base_cam)
        # Remembered base poses: where the recording robot stood (level, at its height).
        bases = np.stack([kf.T_world_cam @ T_cam_base for kf in world.keyframes()])
        self.remembered = np.stack([bases[:, 0, 3], bases[:, 1, 3], np.arctan2(bases[:, 1, 0], bases[:, 0, 0])], 1)
        self.base_height = float(np.median(bases[:, 2, 3]))
        self.base = SimBase(self.base_pose(*self.remembered[0]), cmd_timeout=2 * self.dt, motion="planar",
                            occupancy=world.occupancy_map, footprint_radius=footprint_radius)
        self.time = 0.0

    def base_pose(self, x: float, y: float, yaw: float) -> np.ndarray:
        """Level ``T_world_base [4, 4]`` at ``(x, y)`` heading ``yaw``, at the recording's height."""
        c, s = math.cos(yaw), math.sin(yaw)
        T = np.eye(4)
        T[:2, :2] = [[c, -s], [s, c]]
        T[:3, 3] = (x, y, self.base_height)
        return T

    def reset(self, rng: np.random.Generator, pose: Optional[Sequence[float]] = None) -> np.ndarray:
        """Start an episode at ``pose`` ``(x, y, yaw)`` or at a random remembered pose whose
        footprint is free; returns ``T_world_base``. A given pose inside an obstacle is moved
        to the nearest free place (``SimBase``'s rule)."""
        self.time = 0.0
        if pose is not None:
            p = np.asarray(pose, dtype=np.float64).reshape(-1)
            if p.shape != (3,) or not np.all(np.isfinite(p)):
                raise InvalidEnvOptionError(f"options['pose'] must be finite [x, y, yaw], got {pose!r}", pose)
            T = self.base_pose(*p)
        else:
            occupancy = self.world.occupancy_map
            order = rng.permutation(len(self.remembered))
            chosen = next((i for i in order if not occupancy.footprint_collides(
                self.remembered[i, 0], self.remembered[i, 1], self.base.footprint_radius)), order[0])
            T = self.base_pose(*self.remembered[chosen])
        self.base.set_pose(T, self.time, as_start=True)
        self.base.reset(self.time)
        return self.base.pose

    def act(self, action) -> tuple[np.ndarray, bool]:
        """Hold ``action`` ``(v [m/s], w [rad/s])`` (clipped to the bounds) for ``dt``;
        returns ``(T_world_base, collided)``."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (2,) or not np.all(np.isfinite(a)):
            raise InvalidEnvOptionError(f"action must be finite [v, w], got {action!r}", action)
        v = float(np.clip(a[0], -self.v_max, self.v_max))
        w = float(np.clip(a[1], -self.w_max, self.w_max))
        self.base.command([v, 0.0, 0.0], [0.0, 0.0, w], self.time)
        self.time += self.dt
        T = self.base.step(self.time)
        return T, bool(self.base.blocked)

    def camera_pose(self, T_world_base: np.ndarray) -> np.ndarray:
        return T_world_base @ self.T_base_cam

    @staticmethod
    def observed_pose(T_world_base: np.ndarray) -> np.ndarray:
        """``float64 [3]``: x, y [m], yaw [rad]."""
        return np.array([T_world_base[0, 3], T_world_base[1, 3], yaw_of(T_world_base)])
