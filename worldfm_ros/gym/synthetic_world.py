"""A world file of the built-in synthetic world, for trying the environment without a robot."""

from __future__ import annotations

from pathlib import Path

from worldfm_ros.core.keyframe import Keyframe


def build_synthetic_world(path, *, seed: int = 3, width: int = 160, height: int = 120, rate_hz: float = 5.0,
                          yaw_wobble: float = 0.6) -> int:
    """Write a world file at ``path``: a robot drives one closed loop (0.3 m/s, frames at
    ``rate_hz``, looking around by ``yaw_wobble`` [rad]) through synthetic world ``seed``; its
    exact RGB-D frames go through the world service's insertion policy (as the node's
    would). Returns the number of keyframes written. Overwrites ``path``."""
    from worldfm_ros.core.renderers.nearest import NearestRenderer
    from worldfm_ros.core.synthetic import SyntheticWorld, default_intrinsics, plan_loop
    from worldfm_ros.core.world_file import write_world
    from worldfm_ros.core.world_service import WorldService, WorldServiceConfig

    world = SyntheticWorld.generate(seed)
    K = default_intrinsics(width, height)
    period = plan_loop(world, seed, 1, rate_hz=rate_hz, yaw_wobble=yaw_wobble).period
    loop = plan_loop(world, seed, period, rate_hz=rate_hz, yaw_wobble=yaw_wobble)
    service = WorldService(WorldServiceConfig(keyframe_width=width, keyframe_height=height),
                           renderer=NearestRenderer())
    for T, stamp in zip(loop.T_world_cam, loop.stamps):
        colour, depth = world.render(T, K)
        service.ingest(Keyframe(colour, depth, K, T, float(stamp)))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_world(str(path), service.keyframes())
