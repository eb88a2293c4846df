"""Gymnasium environments in the remembered world (ROS-free).

    import gymnasium as gym
    import worldfm_ros.gym  # registers WorldFM-v0

    env = gym.make("WorldFM-v0", world_path="kitchen.world")
    envs = gym.make_vec("WorldFM-v0", num_envs=16, vectorization_mode="vector_entry_point",
                        world_path="kitchen.world")   # all 16 views rendered in one batch

See ``docs/gym.md``. The motion, collision and map rules are the simulator node's: both use
:class:`~worldfm_ros.core.sim_base.SimBase` on the world's
:class:`~worldfm_ros.core.occupancy_map.OccupancyMap`.
"""

from gymnasium.envs.registration import register, registry

from worldfm_ros.gym.env import WorldFMEnv
from worldfm_ros.gym.robot import NavRobot
from worldfm_ros.gym.synthetic_world import build_synthetic_world
from worldfm_ros.gym.vector import WorldFMVectorEnv

ENV_ID = "WorldFM-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="worldfm_ros.gym.env:WorldFMEnv",
             vector_entry_point="worldfm_ros.gym.vector:WorldFMVectorEnv")

__all__ = ["ENV_ID", "NavRobot", "WorldFMEnv", "WorldFMVectorEnv", "build_synthetic_world"]
