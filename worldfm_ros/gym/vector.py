"""``WorldFM-v0`` as a batched vector environment: N robots in one world, all N views
rendered in one :meth:`WorldService.render_batch` call per step."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from worldfm_ros.core.world_service import WorldService
from worldfm_ros.gym.env import action_space, observation_space
from worldfm_ros.gym.robot import DEFAULT_CAMERA_TO_BASE, InvalidEnvOptionError, NavRobot, load_world


class WorldFMVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` copies of :class:`~worldfm_ros.gym.env.WorldFMEnv` sharing one world.

    Same arguments as ``WorldFMEnv`` plus ``num_envs``; the motion, collision, episode and
    ``info`` rules are the same (``info`` values are arrays with a leading ``[num_envs]``
    axis). Autoreset: next step (Gymnasium's default): the step after an episode ends
    resets that robot, ignores its action and returns its first observation with reward 0.
    ``reset(options={"pose": [x, y, yaw]})`` takes one pose for every robot or ``[N, 3]``.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, world_path: str = "", *, world: Optional[WorldService] = None,
                 width: int = 128, height: int = 96, backend: str = "geometric", device: str = "cpu",
                 dt: float = 0.1, v_max: float = 0.5, w_max: float = 1.0, max_steps: int = 500,
                 footprint_radius: float = 0.2, camera_to_base: Sequence[float] = DEFAULT_CAMERA_TO_BASE,
                 reward_fn: Optional[Callable[[dict], float]] = None, render_mode: Optional[str] = None):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or not 1 <= num_envs <= 256:
            raise InvalidEnvOptionError(f"num_envs must be an integer in 1..256, got {num_envs!r}", num_envs)
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise InvalidEnvOptionError(f"max_steps must be a positive integer, got {max_steps!r}", max_steps)
        if render_mode is not None:
            raise InvalidEnvOptionError(f"the vector env does not render, got render_mode {render_mode!r}", render_mode)
        if world is None:
            if not world_path:
                raise InvalidEnvOptionError("give world_path (a world file) or world (a WorldService)", world_path)
            world = load_world(world_path, backend=backend, device=device)
        self.world = world
        self.num_envs = int(num_envs)
        self.robots = [NavRobot(world, width=width, height=height, dt=dt, v_max=v_max, w_max=w_max,
                                footprint_radius=footprint_radius, camera_to_base=camera_to_base)
                       for _ in range(self.num_envs)]
        self.intrinsics = self.robots[0].intrinsics
        self.max_steps = int(max_steps)
        self.reward_fn = reward_fn
        self.render_mode = None
        self.single_observation_space = observation_space(width, height)
        self.single_action_space = action_space(self.robots[0].v_max, self.robots[0].w_max)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._rngs = [seeding.np_random(None)[0] for _ in range(self.num_envs)]
        self._steps = np.zeros(self.num_envs, np.int64)
        self._done = np.zeros(self.num_envs, bool)

    def _observe(self, T_world_base: np.ndarray, collided: np.ndarray) -> tuple[dict, dict]:
        """Render every robot's view in one batch; ``T_world_base [N, 4, 4]``."""
        T_cam = np.stack([r.camera_pose(T) for r, T in zip(self.robots, T_world_base)])
        out = self.world.render_batch(T_cam, self.intrinsics).result
        obs = {"rgb": out.rgb, "depth": out.depth,
               "pose": np.stack([NavRobot.observed_pose(T) for T in T_world_base])}
        info = {"coverage": out.coverage.astype(np.float64), "collided": collided, "T_world_base": T_world_base}
        for key in list(info):
            info[f"_{key}"] = np.ones(self.num_envs, bool)
        return obs, info

    def reset(self, *, seed=None, options: Optional[dict[str, Any]] = None):
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, (int, np.integer)) else list(seed)
            if len(seeds) != self.num_envs:
                raise InvalidEnvOptionError(f"need {self.num_envs} seeds, got {len(seeds)}", seed)
            self._rngs = [seeding.np_random(int(s))[0] for s in seeds]
            self._np_random, self._np_random_seed = seeding.np_random(seeds[0])
        poses = (options or {}).get("pose")
        if poses is not None:
            poses = np.asarray(poses, dtype=np.float64)
            poses = np.broadcast_to(poses, (self.num_envs, 3)) if poses.shape == (3,) else poses
            if poses.shape != (self.num_envs, 3):
                raise InvalidEnvOptionError(f"options['pose'] must be [3] or [{self.num_envs}, 3], got shape "
                                            f"{poses.shape}", poses.shape)
        T = np.stack([r.reset(rng, None if poses is None else poses[i])
                      for i, (r, rng) in enumerate(zip(self.robots, self._rngs))])
        self._steps[:] = 0
        self._done[:] = False
        return self._observe(T, np.zeros(self.num_envs, bool))

    def step(self, actions):
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, 2):
            raise InvalidEnvOptionError(f"actions must be [{self.num_envs}, 2], got shape {actions.shape}", actions.shape)
        T = np.empty((self.num_envs, 4, 4))
        collided = np.zeros(self.num_envs, bool)
        restarted = self._done.copy()
        for i, robot in enumerate(self.robots):
            if restarted[i]:
                T[i] = robot.reset(self._rngs[i])
                self._steps[i] = 0
            else:
                T[i], collided[i] = robot.act(actions[i])
                self._steps[i] += 1
        obs, info = self._observe(T, collided)
        terminated = collided.copy()
        truncated = (self._steps >= self.max_steps) & ~restarted
        rewards = np.zeros(self.num_envs)
        if self.reward_fn is not None:
            for i in np.flatnonzero(~restarted):
                rewards[i] = float(self.reward_fn({k: info[k][i] for k in ("coverage", "collided", "T_world_base")}))
        self._done = terminated | truncated
        return obs, rewards, terminated, truncated, info
