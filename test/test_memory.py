"""Keyframe memory: insertion, eviction, retrieval and the spatial grid."""

import math

import numpy as np
import pytest

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import EmptyMemoryError, InvalidPoseError
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.memory import KeyframeMemory, MemoryConfig
from worldfm_ros.core.spatial_grid import SpatialGrid

INTR = Intrinsics(fx=20.0, fy=20.0, cx=15.5, cy=11.5, width=32, height=24)


def camera_pose(x=0.0, y=0.0, yaw_deg=0.0):
    """Optical camera at (x, y, 0.5) looking along world +x rotated by yaw about +z."""
    yaw = math.radians(yaw_deg)
    fwd = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2] = right, down, fwd
    T[:3, 3] = [x, y, 0.5]
    return T


def frame(T, depth=2.0, value=0):
    colour = np.full((INTR.height, INTR.width, 3), value % 256, np.uint8)
    return Keyframe(colour, np.full((INTR.height, INTR.width), depth, np.float32), INTR, T)


def test_pose_insertion_policy_needs_both_thresholds():
    mem = KeyframeMemory(MemoryConfig(insertion="pose", min_translation=0.05, min_rotation_deg=5.0))
    assert mem.consider(frame(camera_pose())) == 0
    assert mem.consider(frame(camera_pose(0.03))) is None  # close in both
    assert mem.consider(frame(camera_pose(0.0, yaw_deg=3))) is None
    assert mem.consider(frame(camera_pose(0.07))) == 1  # moved beyond 5 cm
    assert mem.consider(frame(camera_pose(0.0, yaw_deg=7))) == 2  # turned beyond 5 deg
    assert len(mem) == 3


@pytest.mark.parametrize("policy", ["parallax", "pose"])
def test_repeated_loops_do_not_grow_memory(policy):
    loop = [camera_pose(math.cos(a) * 2, math.sin(a) * 2, math.degrees(a) + 90)
            for a in np.linspace(0, 2 * math.pi, 200, endpoint=False)]
    mem = KeyframeMemory(MemoryConfig(insertion=policy))
    for T in loop:
        mem.consider(frame(T))
    first = len(mem)
    rng = np.random.default_rng(0)
    for _ in range(9):
        for T in loop:
            T = T.copy()
            T[:3, 3] += rng.normal(0, 0.005, 3)  # odometry jitter on the revisit
            mem.consider(frame(T))
    assert first > 50
    assert len(mem) <= 1.1 * first


def test_eviction_keeps_the_only_view_of_a_region():
    mem = KeyframeMemory(MemoryConfig(insertion="pose", max_keyframes=3))
    lonely = mem.consider(frame(camera_pose(10.0, 10.0)))
    a = mem.consider(frame(camera_pose(0.0)))
    b = mem.consider(frame(camera_pose(0.06)))
    evicted = []
    mem.on_evict = evicted.append
    c = mem.consider(frame(camera_pose(0.0, 0.0, yaw_deg=90)))
    assert len(mem) == 3
    assert lonely in mem and c in mem
    assert evicted and evicted[0] in (a, b)


def test_eviction_callback_and_insert_callback():
    inserted = []
    mem = KeyframeMemory(MemoryConfig(insertion="pose", max_keyframes=2), on_insert=lambda kf: inserted.append(kf.id))
    for i in range(4):
        mem.consider(frame(camera_pose(i * 0.1)))
    assert inserted == [0, 1, 2, 3]
    assert len(mem) == 2


def test_parallax_policy_follows_scene_depth():
    """The same 3 cm step is novel in front of a near wall and redundant before a far one."""
    near, far = KeyframeMemory(), KeyframeMemory()
    near.consider(frame(camera_pose(0.0), depth=0.5))
    far.consider(frame(camera_pose(0.0), depth=20.0))
    step = camera_pose(0.0, 0.03)  # sideways
    assert near.consider(frame(step, depth=0.5)) is not None
    assert far.consider(frame(step, depth=20.0)) is None
    # Turning 10 degrees shifts the whole image: novel whatever the depth.
    assert far.consider(frame(camera_pose(0.0, yaw_deg=10), depth=20.0)) is not None
    # A frame without valid depth adds nothing to remember.
    assert near.consider(frame(camera_pose(1.0), depth=0.0)) is None


def test_retrieval_prefers_views_that_cover_the_query():
    # Two keyframes at the query position: one looks the other way (closest by position,
    # but sees nothing of the query view); one 0.6 m behind looking the same way.
    mem = KeyframeMemory(MemoryConfig(retrieval_k=1, translation_weight=0.3, rotation_weight_deg=400.0))
    away = mem.add(frame(camera_pose(0.0, yaw_deg=180)))
    behind = mem.add(frame(camera_pose(-0.6, yaw_deg=0)))
    query = camera_pose(0.0)
    pose_mem = KeyframeMemory(MemoryConfig(retrieval_k=1, retrieval="pose", translation_weight=0.3,
                                           rotation_weight_deg=400.0))
    for kf in mem.keyframes():
        pose_mem.add(kf)
    assert pose_mem.retrieve(query, INTR)[0].id == away  # the baseline gets this wrong
    assert mem.retrieve(query, INTR)[0].id == behind


def test_retrieval_is_deterministic_and_bounded():
    mem = KeyframeMemory(MemoryConfig(retrieval_k=4))
    for i in range(30):
        mem.add(frame(camera_pose(0.1 * i, 0.05 * (i % 3), yaw_deg=3 * i)))
    q = camera_pose(1.0, 0.0, 20)
    ids1 = [kf.id for kf in mem.retrieve(q, INTR)]
    ids2 = [kf.id for kf in mem.retrieve(q, INTR)]
    assert ids1 == ids2 and len(ids1) == 4 and len(set(ids1)) == 4


def test_retrieval_far_from_every_keyframe_still_answers():
    mem = KeyframeMemory()
    mem.add(frame(camera_pose(0.0)))
    assert len(mem.retrieve(camera_pose(50.0, 50.0), INTR)) == 1


def test_empty_memory_and_bad_pose_are_typed_errors():
    mem = KeyframeMemory()
    with pytest.raises(EmptyMemoryError):
        mem.retrieve(camera_pose(), INTR)
    mem.add(frame(camera_pose()))
    bad = camera_pose()
    bad[0, 3] = np.nan
    with pytest.raises(InvalidPoseError):
        mem.retrieve(bad, INTR)


def test_spatial_grid_matches_brute_force():
    rng = np.random.default_rng(1)
    pts = rng.uniform(-5, 5, (2000, 3))
    grid = SpatialGrid(0.5)
    for i, p in enumerate(pts):
        grid.insert(i, p)
    for i in range(0, 2000, 3):
        grid.remove(i)
    alive = np.array([i for i in range(2000) if i % 3])
    for q in rng.uniform(-6, 6, (20, 3)):
        for r in (0.1, 0.7, 2.5, 30.0):
            brute = alive[np.linalg.norm(pts[alive] - q, axis=1) <= r]
            np.testing.assert_array_equal(grid.query_radius(q, r), np.sort(brute))


def test_memory_config_rejects_bad_values():
    with pytest.raises(ValueError, match="min_translation"):
        MemoryConfig(min_translation=0.0)
    with pytest.raises(ValueError, match="retrieval"):
        MemoryConfig(retrieval="random")


def test_retrieve_many_equals_one_query_per_camera():
    rng = np.random.default_rng(2)
    mem = KeyframeMemory(MemoryConfig(retrieval_k=3, search_radius=1.0))
    for i in range(60):
        mem.add(frame(camera_pose(*rng.uniform(-4, 4, 2), rng.uniform(0, 360)), depth=rng.uniform(1, 3)))
    mem.evict(5)  # a freed table row
    # Spread cameras (some with fewer than k keyframes in their ball: the fallback) and a
    # tight cluster.
    poses = np.stack([camera_pose(*rng.uniform(-6, 6, 2), rng.uniform(0, 360)) for _ in range(20)]
                     + [camera_pose(0.1 * i, 0.0, 10 * i) for i in range(5)])
    many = mem.retrieve_many(poses, INTR)
    assert [[kf.id for kf in refs] for refs in many] == [[kf.id for kf in mem.retrieve(T, INTR)] for T in poses]
    assert mem.retrieve_many(poses[:0], INTR) == []
    bad = poses.copy()
    bad[3, 0, 3] = np.nan
    with pytest.raises(InvalidPoseError):
        mem.retrieve_many(bad, INTR)
    with pytest.raises(InvalidPoseError, match="shape"):
        mem.retrieve_many(poses[0], INTR)
