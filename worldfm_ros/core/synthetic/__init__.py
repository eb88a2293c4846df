"""Procedural synthetic indoor worlds with an exact RGB-D renderer.

Used as the test oracle (exact colour and z-depth at any pose), as the demo's built-in world
and as on-the-fly training data. Everything is seeded: the same seed gives the same bytes.

    world = SyntheticWorld.generate(seed=7)                 # rooms, furniture, textures, lights
    colour, depth = world.render(T_world_cam, intrinsics)   # uint8 [H, W, 3], float32 [H, W]
    loop = plan_loop(world, seed=7, n_frames=600)           # closed robot path (base + camera)
    for colour, depth, K, T, stamp in synthetic_sequence(7, 300, intrinsics): ...

Modules: ``scene`` (world, rendering, free space), ``generate`` (procedural layouts),
``raycast`` (analytic ray casting), ``textures`` (procedural albedo), ``trajectory``
(closed robot loops), ``sequence`` (dataset-shaped frame iterator).
"""

from worldfm_ros.core.synthetic.generate import LAYOUTS, generate_world
from worldfm_ros.core.synthetic.scene import Box, Cylinder, Lighting, Room, SyntheticWorld
from worldfm_ros.core.synthetic.sequence import default_intrinsics, synthetic_sequence
from worldfm_ros.core.synthetic.textures import Texture
from worldfm_ros.core.synthetic.trajectory import (
    DEFAULT_CAMERA_TO_BASE,
    LoopTrajectory,
    base_pose,
    plan_loop,
    robot_loop,
)

__all__ = [
    "DEFAULT_CAMERA_TO_BASE",
    "LAYOUTS",
    "Box",
    "Cylinder",
    "Lighting",
    "LoopTrajectory",
    "Room",
    "SyntheticWorld",
    "Texture",
    "base_pose",
    "default_intrinsics",
    "generate_world",
    "plan_loop",
    "robot_loop",
    "synthetic_sequence",
]
