"""Revisiting a place: memory stays bounded and the same pose renders the same bytes."""

import numpy as np
import pytest

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.pose import interpolate_pose
from worldfm_ros.core.renderers.geometric import GeometricRenderer
from worldfm_ros.core.synthetic import SyntheticWorld
from worldfm_ros.core.synthetic.trajectory import plan_loop
from worldfm_ros.core.world_service import WorldService, WorldServiceConfig

K = Intrinsics(fx=131.25, fy=131.25, cx=79.5, cy=59.5, width=160, height=120)


@pytest.fixture(scope="module")
def drive():
    """One loop of a synthetic robot: poses and exact images (rendered once, reused per loop)."""
    world = SyntheticWorld.generate(2)
    loop = plan_loop(world, 2, 400, speed=0.75)  # 5 cm per frame at 15 Hz: a short loop
    poses = loop.T_world_cam[: loop.period]
    images = [world.render(T, K) for T in poses]
    return world, poses, images


def drive_loops(world_service, poses, images, loops, rng=None):
    for _ in range(loops):
        for T, (colour, depth) in zip(poses, images):
            if rng is not None:  # odometry noise on the revisit: a few mm, a fraction of a degree
                T = T.copy()
                T[:3, 3] += rng.normal(0.0, 0.003, 3)
            world_service.ingest(Keyframe(colour, depth, K, T, 0.0))


@pytest.mark.parametrize("policy", ["parallax", "pose"])
def test_ten_loops_keep_the_first_loops_keyframes(drive, policy):
    _, poses, images = drive
    from worldfm_ros.core.memory import MemoryConfig

    service = WorldService(WorldServiceConfig(keyframe_width=160, keyframe_height=120,
                                              memory=MemoryConfig(insertion=policy)),
                           renderer=GeometricRenderer())
    drive_loops(service, poses, images, 1)
    first = len(service)
    drive_loops(service, poses, images, 9, rng=np.random.default_rng(0))
    assert first >= 10
    assert len(service) <= 1.1 * first, (first, len(service))


def test_same_pose_renders_identical_bytes_after_ten_more_loops(drive):
    world, poses, images = drive
    service = WorldService(WorldServiceConfig(keyframe_width=160, keyframe_height=120), renderer=GeometricRenderer())
    drive_loops(service, poses, images, 1)
    query = interpolate_pose(poses[10], poses[11], 0.5)
    before = service.render(query, K).result
    drive_loops(service, poses, images, 10)  # exact revisits
    after = service.render(query, K).result
    assert np.array_equal(before.rgb, after.rgb)
    assert np.array_equal(before.depth, after.depth)
    assert before.reference_ids == after.reference_ids
    # ... and the render is of the right place: close to the exact view there.
    truth, _ = world.render(query, K)
    diff = np.abs(after.rgb.astype(int)[0] - truth.astype(int))[after.covered[0]]
    assert after.coverage[0] > 0.8 and np.mean(diff) < 12
