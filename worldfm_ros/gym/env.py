"""``WorldFM-v0``: a ground robot with a camera in a remembered world (Gymnasium, ROS-free)."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from worldfm_ros.core.world_service import WorldService
from worldfm_ros.gym.robot import DEFAULT_CAMERA_TO_BASE, InvalidEnvOptionError, NavRobot, load_world


def observation_space(width: int, height: int) -> spaces.Dict:
    """The contract's observation: ``rgb`` uint8 ``[H, W, 3]``, ``depth`` float32 ``[H, W]``
    [m] (0 = unknown), ``pose`` float64 ``[3]`` = x, y [m], yaw [rad]."""
    return spaces.Dict({
        "rgb": spaces.Box(0, 255, (height, width, 3), np.uint8),
        "depth": spaces.Box(0.0, np.inf, (height, width), np.float32),
        "pose": spaces.Box(-np.inf, np.inf, (3,), np.float64),
    })


def action_space(v_max: float, w_max: float) -> spaces.Box:
    """``[v, w]``: forward speed [m/s] and yaw rate [rad/s]."""
    return spaces.Box(np.array([-v_max, -w_max], np.float32), np.array([v_max, w_max], np.float32), dtype=np.float32)


class WorldFMEnv(gym.Env):
    """A planar robot driving through a world file; observations are rendered views.

    Args:
        world_path: world file (``worldfm-build-world``, ``~/save_world``); read only.
        world: an already loaded :class:`WorldService` to use instead (shared between envs).
        width, height: camera image size [px] (intrinsics: the first keyframe's, resized).
        backend, device: renderer (``geometric`` | ``learned`` | ``nearest``; ``cpu`` | ``cuda``).
        dt: how long each action is held [s].
        v_max, w_max: action bounds [m/s], [rad/s]; actions outside are clipped.
        max_steps: steps after which an episode is truncated.
        footprint_radius: the robot's disc [m]; touching an occupied cell ends the episode.
        camera_to_base: ``[x, y, z, qx, qy, qz, qw]`` of the camera optical frame in the base.
        reward_fn: ``reward_fn(info) -> float``; reward 0 without one.
        render_mode: ``None`` or ``"rgb_array"`` (the last observed image).

    ``info``: ``coverage`` (fraction of the view the memory covers), ``collided`` (the step
    was refused: the episode terminates), ``T_world_base`` (``[4, 4]``).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, world_path: str = "", *, world: Optional[WorldService] = None, width: int = 128,
                 height: int = 96, backend: str = "geometric", device: str = "cpu", dt: float = 0.1,
                 v_max: float = 0.5, w_max: float = 1.0, max_steps: int = 500, footprint_radius: float = 0.2,
                 camera_to_base: Sequence[float] = DEFAULT_CAMERA_TO_BASE,
                 reward_fn: Optional[Callable[[dict], float]] = None, render_mode: Optional[str] = None):
        if world is None:
            if not world_path:
                raise InvalidEnvOptionError("give world_path (a world file) or world (a WorldService)", world_path)
            world = load_world(world_path, backend=backend, device=device)
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise InvalidEnvOptionError(f"max_steps must be a positive integer, got {max_steps!r}", max_steps)
        if render_mode not in (None, "rgb_array"):
            raise InvalidEnvOptionError(f"render_mode must be None or 'rgb_array', got {render_mode!r}", render_mode)
        self.world = world
        self.robot = NavRobot(world, width=width, height=height, dt=dt, v_max=v_max, w_max=w_max,
                              footprint_radius=footprint_radius, camera_to_base=camera_to_base)
        self.max_steps = int(max_steps)
        self.reward_fn = reward_fn
        self.render_mode = render_mode
        self.observation_space = observation_space(width, height)
        self.action_space = action_space(self.robot.v_max, self.robot.w_max)
        self._steps = 0
        self._last_rgb: Optional[np.ndarray] = None

    def _observe(self, T_world_base: np.ndarray, collided: bool) -> tuple[dict, dict]:
        out = self.world.render(self.robot.camera_pose(T_world_base), self.robot.intrinsics).result
        self._last_rgb = out.rgb[0]
        obs = {"rgb": out.rgb[0], "depth": out.depth[0], "pose": self.robot.observed_pose(T_world_base)}
        info = {"coverage": float(out.coverage[0]), "collided": collided, "T_world_base": T_world_base}
        return obs, info

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict[str, Any]] = None):
        super().reset(seed=seed)
        pose = (options or {}).get("pose")
        T = self.robot.reset(self.np_random, pose)
        self._steps = 0
        return self._observe(T, False)

    def step(self, action):
        T, collided = self.robot.act(action)
        self._steps += 1
        obs, info = self._observe(T, collided)
        reward = float(self.reward_fn(info)) if self.reward_fn is not None else 0.0
        return obs, reward, collided, self._steps >= self.max_steps, info

    def render(self):
        return None if self.render_mode is None else self._last_rgb
