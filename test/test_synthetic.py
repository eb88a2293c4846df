"""Synthetic worlds: determinism, exact depth, multi-view consistency, robot loops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import InvalidIntrinsicsError, InvalidPoseError
from worldfm_ros.core.pose import invert_pose
from worldfm_ros.core.synthetic import (
    DEFAULT_CAMERA_TO_BASE,
    Box,
    Cylinder,
    Lighting,
    Room,
    SyntheticWorld,
    Texture,
    base_pose,
    default_intrinsics,
    plan_loop,
    robot_loop,
    synthetic_sequence,
)

SMALL = default_intrinsics(80, 60)


def camera_pose(position, yaw=0.0, pitch=0.0) -> np.ndarray:
    """Optical pose of a camera at ``position`` heading ``yaw`` [rad], tilted down by ``pitch``."""
    c, s = math.cos(pitch), math.sin(pitch)
    tilt = np.eye(4)
    tilt[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]  # about base y: positive pitch looks down
    return base_pose(position[0], position[1], yaw, position[2]) @ tilt @ DEFAULT_CAMERA_TO_BASE


def empty_room(boxes=(), cylinders=()) -> SyntheticWorld:
    """Room x in [-2, 4], y in [-3, 3], z in [0, 2.5] with one checker texture everywhere."""
    textures = [Texture("checker", ((0.9, 0.2, 0.2), (0.2, 0.2, 0.9)), period=0.25)]
    return SyntheticWorld(
        room=Room((-2.0, -3.0, 0.0), (4.0, 3.0, 2.5), (0,) * 6),
        boxes=list(boxes), cylinders=list(cylinders), textures=textures,
        lighting=Lighting(ambient=(1.0, 1.0, 1.0)),
    )


# ----------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_bytes():
    a = SyntheticWorld.generate(11)
    b = SyntheticWorld.generate(11)
    poses = np.stack(robot_loop(a, 11, 40)[::13])
    assert np.array_equal(poses, np.stack(robot_loop(b, 11, 40)[::13]))
    colour_a, depth_a = a.render(poses, SMALL)
    colour_b, depth_b = b.render(poses, SMALL)
    assert colour_a.tobytes() == colour_b.tobytes()
    assert depth_a.tobytes() == depth_b.tobytes()


def test_different_seeds_give_different_worlds():
    T = camera_pose((0.0, 0.0, 0.8))
    images = [SyntheticWorld.generate(seed).render(T, SMALL)[0] for seed in (1, 2, 3)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(images[i].astype(int) - images[j].astype(int)).mean() > 10


def test_generated_worlds_respect_the_brief():
    for seed in range(8):
        world = SyntheticWorld.generate(seed)
        lo, hi = world.bounds
        assert 4.0 <= hi[0] - lo[0] <= 8.0 and 4.0 <= hi[1] - lo[1] <= 8.0
        assert lo[2] == 0.0 and 2.4 <= hi[2] <= 3.2
        assert world.n_primitives >= 3
        kinds = {t.kind for t in world.textures}
        assert len(kinds) >= 3  # floor, walls and furniture do not all look alike


# ----------------------------------------------------------------------------- exact depth
def test_depth_of_a_wall_seen_head_on_is_its_distance_everywhere():
    world = empty_room()
    K = Intrinsics(100.0, 100.0, 31.5, 23.5, 64, 48)
    colour, depth = world.render(camera_pose((0.0, 0.5, 1.0)), K)  # wall x = 4, 4 m ahead
    # z-depth is constant on a fronto-parallel wall; ray length would grow to the corners.
    np.testing.assert_allclose(depth, 4.0, rtol=0, atol=2e-6)
    corner_ray = np.array([(0 - K.cx) / K.fx, (0 - K.cy) / K.fy, 1.0])
    assert np.linalg.norm(corner_ray) * 4.0 > 4.0 + 0.1


def test_floor_depth_matches_the_ray_plane_formula():
    world = empty_room()
    K = Intrinsics(60.0, 60.0, 39.5, 29.5, 80, 60)
    T = camera_pose((0.3, -0.4, 1.2), yaw=0.4, pitch=0.6)
    depth = world.render(T, K)[1]
    v, u = np.mgrid[0:60, 0:80]
    rays = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u, float)], axis=-1)
    world_rays = rays @ T[:3, :3].T
    t_floor = -T[2, 3] / world_rays[..., 2]  # z-depth, since rays have camera z = 1
    hit = world_rays[..., 0] * t_floor + T[0, 3]
    on_floor = (world_rays[..., 2] < 0) & (np.abs(hit) < 1.9)  # well inside the x walls
    lateral = world_rays[..., 1] * t_floor + T[1, 3]
    on_floor &= np.abs(lateral) < 2.9
    assert on_floor.sum() > 1000
    np.testing.assert_allclose(depth[on_floor], t_floor[on_floor], rtol=2e-6)


def test_box_and_cylinder_depths_are_exact():
    box = Box(centre=(2.0, 0.0, 0.5), half_size=(0.25, 0.5, 0.5), yaw=0.0, materials=(0,) * 6)
    cylinder = Cylinder(centre=(2.0, 1.5, 1.0), radius=0.3, half_height=1.0, yaw=0.0, materials=(0, 0, 0))
    world = empty_room([box], [cylinder])
    K = Intrinsics(50.0, 50.0, 0.0, 0.0, 1, 1)  # a single ray along the optical axis
    assert world.render(camera_pose((0.0, 0.0, 0.5)), K)[1][0, 0] == pytest.approx(1.75, abs=1e-6)
    assert world.render(camera_pose((0.0, 1.5, 0.8)), K)[1][0, 0] == pytest.approx(1.7, abs=1e-6)
    # A yaw-rotated box: distance to a face along its normal.
    turned = Box(centre=(2.0, 0.0, 0.5), half_size=(0.25, 0.5, 0.5), yaw=0.5, materials=(0,) * 6)
    world = empty_room([turned])
    T = camera_pose((2.0 - 1.5 * math.cos(0.5), -1.5 * math.sin(0.5), 0.5), yaw=0.5)
    assert world.render(T, K)[1][0, 0] == pytest.approx(1.25, abs=1e-6)
    # The same box seen from behind the camera's back is invisible, the wall is seen instead.
    T_away = camera_pose((0.0, 0.0, 0.5), yaw=math.pi)
    assert world.render(T_away, K)[1][0, 0] == pytest.approx(2.0, abs=1e-6)


def test_object_ids_are_reported_where_objects_are_seen():
    box = Box(centre=(2.0, 0.0, 0.5), half_size=(0.25, 0.5, 0.5), yaw=0.0, materials=(0,) * 6)
    hits = empty_room([box]).cast(camera_pose((0.0, 0.0, 0.5)), default_intrinsics(64, 48))
    assert hits.prim[24, 32] == 1 and hits.prim[0, 0] == 0  # box in the centre, room at a corner


# ----------------------------------------------------------------------------- multi-view
def _project(T_world_cam, K, points_world):
    cam = (points_world - T_world_cam[:3, 3]) @ T_world_cam[:3, :3]
    z = cam[:, 2]
    return K.fx * cam[:, 0] / z + K.cx, K.fy * cam[:, 1] / z + K.cy, z


def _backproject(T_world_cam, K, depth):
    v, u = np.mgrid[0 : K.height, 0 : K.width]
    rays = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones(u.shape)], axis=-1)
    points_cam = rays * depth[..., None].astype(np.float64)
    return points_cam.reshape(-1, 3) @ T_world_cam[:3, :3].T + T_world_cam[:3, 3]


@pytest.mark.parametrize("seed", [4, 9])
def test_views_agree_point_by_point(seed):
    """Each surface point of view A, re-rendered by a ray of view B aimed exactly at it,
    has the same colour and lies at the predicted depth (or is occluded in B)."""
    world = SyntheticWorld.generate(seed)
    loop = plan_loop(world, seed, 60, yaw_wobble=0.3)
    T_a, T_b = loop.T_world_cam[0], loop.T_world_cam[25]  # ~0.5 m and some degrees apart
    K = default_intrinsics(64, 48)
    colour_a, depth_a = world.render(T_a, K)
    points = _backproject(T_a, K, depth_a)
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(points), size=150, replace=False)
    u, v, z = _project(T_b, K, points[sample])
    seen = agree = 0
    for i, p in enumerate(sample):
        if z[i] <= 0.05:
            continue
        # A 1x1 camera whose only pixel centre looks exactly at the point.
        K_point = Intrinsics(K.fx, K.fy, K.cx - u[i], K.cy - v[i], 1, 1)
        colour_b, depth_b = world.render(T_b, K_point)
        if depth_b[0, 0] < z[i] * (1 - 1e-3):
            continue  # occluded in B
        seen += 1
        assert depth_b[0, 0] == pytest.approx(z[i], rel=2e-5)
        if np.abs(colour_b[0, 0].astype(int) - colour_a.reshape(-1, 3)[p].astype(int)).max() <= 1:
            agree += 1
    assert seen >= 60
    assert agree >= 0.99 * seen  # only a texture edge hit within float32 rounding may flip


def test_forward_warp_of_view_a_predicts_view_b():
    """What a geometric renderer does: splat A's pixels into B and compare with B's render."""
    world = SyntheticWorld.generate(5)
    loop = plan_loop(world, 5, 40)
    T_a, T_b = loop.T_world_cam[0], loop.T_world_cam[15]
    K = default_intrinsics(160, 120)
    colour_a, depth_a = world.render(T_a, K)
    colour_b, depth_b = world.render(T_b, K)
    u, v, z = _project(T_b, K, _backproject(T_a, K, depth_a))
    ui, vi = np.round(u).astype(int), np.round(v).astype(int)
    inside = (z > 0.05) & (ui >= 0) & (ui < K.width) & (vi >= 0) & (vi < K.height)
    idx = np.flatnonzero(inside)
    target_depth = depth_b[vi[idx], ui[idx]]
    visible = np.abs(target_depth - z[idx]) < 0.03 * z[idx]  # not occluded in B
    assert visible.mean() > 0.6
    rel = np.abs(target_depth[visible] - z[idx][visible]) / z[idx][visible]
    assert np.median(rel) < 0.005
    diff = np.abs(colour_b[vi[idx], ui[idx]].astype(int) - colour_a.reshape(-1, 3)[idx].astype(int))
    # Nearest-pixel splatting moves each sample by < 0.5 px: colours match up to that shift.
    assert np.median(diff[visible].max(axis=1)) <= 8


def test_colour_is_view_independent_for_the_same_surface_point():
    """Rotating the camera about its centre re-renders the same points with the same colour."""
    world = SyntheticWorld.generate(2)
    centre = world.sample_free_position(np.random.default_rng(0), margin=0.5, height=0.9)
    K = default_intrinsics(64, 48)
    T_a = camera_pose(centre, yaw=0.3)
    T_b = camera_pose(centre, yaw=0.4)  # same centre, turned by 0.1 rad
    colour_a, depth_a = world.render(T_a, K)
    points = _backproject(T_a, K, depth_a)
    u, v, _ = _project(T_b, K, points)
    ok = (u > 0) & (u < K.width - 1)
    sample = np.flatnonzero(ok)[::17][:80]
    for p in sample:
        K_point = Intrinsics(K.fx, K.fy, K.cx - u[p], K.cy - v[p], 1, 1)
        colour_b, depth_b = world.render(T_b, K_point)
        assert np.abs(colour_b[0, 0].astype(int) - colour_a.reshape(-1, 3)[p].astype(int)).max() <= 1


def test_supersampling_keeps_exact_depth_and_smooths_colour():
    world = SyntheticWorld.generate(6)
    T = robot_loop(world, 6, 1)[0]
    K = default_intrinsics(48, 36)
    colour_1, depth_1 = world.render(T, K)
    for k in (2, 3):
        colour_k, depth_k = world.render(T, K, supersample=k)
        np.testing.assert_allclose(depth_k, depth_1, rtol=1e-5)
        assert colour_k.shape == colour_1.shape
        # The mean over the image is (nearly) preserved, the pixel-to-pixel variation shrinks.
        assert abs(colour_k.astype(float).mean() - colour_1.astype(float).mean()) < 3.0
        tv = lambda c: np.abs(np.diff(c.astype(float), axis=1)).mean()  # noqa: E731
        assert tv(colour_k) < tv(colour_1)


# ----------------------------------------------------------------------------- trajectories
@pytest.mark.parametrize("seed", range(6))
def test_robot_loop_is_free_smooth_closed_and_forward_looking(seed):
    world = SyntheticWorld.generate(seed)
    loop = plan_loop(world, seed, 1000, camera_height=0.7, speed=0.3, rate_hz=15.0, clearance=0.3)
    period = loop.period
    assert period < 1000
    cams, bases = loop.T_world_cam, loop.T_world_base
    # Closed: driving on repeats exactly the same poses.
    assert np.array_equal(cams[period], cams[0])
    assert np.array_equal(cams[: 1000 - period], cams[period:])
    # Inside the room and clear of obstacles, at the camera height.
    lo, hi = world.bounds
    xy = cams[:, :2, 3]
    assert np.all((xy > lo[:2] + 0.3) & (xy < hi[:2] - 0.3))
    assert world.clearance(xy).min() >= 0.3
    np.testing.assert_allclose(cams[:, 2, 3], 0.7)
    # Robot-like speed: 2 cm per frame (0.3 m/s at 15 Hz), steady, including the wrap-around.
    steps = np.linalg.norm(np.diff(np.concatenate([xy[:period], xy[:1]]), axis=0), axis=1)
    assert np.all(np.abs(steps - 0.02) < 0.002)
    assert period * 0.02 == pytest.approx(loop.length, rel=0.02)
    # Smooth heading: small yaw change per frame, optical axis horizontal along the motion.
    forward = cams[:period, :3, 2]
    np.testing.assert_allclose(forward[:, 2], 0.0, atol=1e-12)
    motion = np.roll(xy[:period], -1, axis=0) - xy[:period]
    motion /= np.linalg.norm(motion, axis=1, keepdims=True)
    assert np.all(np.einsum("ij,ij->i", motion, forward[:, :2]) > math.cos(math.radians(6)))
    turn = np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", forward, np.roll(forward, -1, axis=0)), -1, 1)))
    assert turn.max() < 5.0
    np.testing.assert_allclose(cams[:, :3, 1], np.tile([0.0, 0.0, -1.0], (1000, 1)), atol=1e-12)  # image y down
    # Base poses compose with camera_to_base into camera poses.
    np.testing.assert_allclose(bases @ DEFAULT_CAMERA_TO_BASE, cams, atol=1e-12)
    # Every view is rendered from free space: all pixels see a surface in front of the camera.
    depth = world.render(cams[:: period // 4][:4], SMALL)[1]
    assert depth.min() > 0.05


def test_camera_to_base_offset_sets_the_base_height():
    world = SyntheticWorld.generate(1)
    mount = DEFAULT_CAMERA_TO_BASE.copy()
    mount[:3, 3] = (0.1, 0.0, 0.25)
    loop = plan_loop(world, 1, 30, camera_height=0.9, camera_to_base=mount)
    np.testing.assert_allclose(loop.T_world_base[:, 2, 3], 0.65)
    np.testing.assert_allclose(loop.T_world_cam[:, 2, 3], 0.9)
    np.testing.assert_allclose(invert_pose(loop.T_world_base[3]) @ loop.T_world_cam[3], mount, atol=1e-12)
    assert world.clearance(loop.T_world_cam[:, :2, 3]).min() >= 0.3


def test_yaw_wobble_looks_around_and_still_closes():
    world = SyntheticWorld.generate(3)
    plain = plan_loop(world, 3, 1500)
    wobbly = plan_loop(world, 3, 1500, yaw_wobble=0.4)
    heading = lambda T: np.arctan2(T[:, 1, 2], T[:, 0, 2])  # noqa: E731
    diff = heading(wobbly.T_world_cam[: wobbly.period]) - heading(plain.T_world_cam[: plain.period])
    diff = np.angle(np.exp(1j * diff))
    assert wobbly.period == plain.period and 0.3 < np.abs(diff).max() <= 0.4 + 1e-9
    np.testing.assert_array_equal(wobbly.T_world_cam[:, :3, 3], plain.T_world_cam[:, :3, 3])  # same path
    assert wobbly.period < 1500 and np.array_equal(wobbly.T_world_cam[wobbly.period], wobbly.T_world_cam[0])


def test_free_space_queries():
    world = SyntheticWorld.generate(7)
    rng = np.random.default_rng(0)
    points = np.stack([world.sample_free_position(rng, margin=0.4, height=1.0) for _ in range(20)])
    assert np.all(world.clearance(points[:, :2]) >= 0.4)
    np.testing.assert_allclose(points[:, 2], 1.0)
    lo, hi = world.bounds
    assert not world.is_free([hi[0] + 0.1, 0.0]).item()  # outside the room
    for fp in world.footprints:
        assert world.clearance(np.asarray(fp.centre)) < 0  # inside an obstacle
    # Rendering from a sampled free position never starts inside a solid.
    T = camera_pose(points[0], yaw=1.0)
    assert world.render(T, SMALL)[1].min() > 0.05


def test_synthetic_sequence_matches_the_reader_tuple_and_the_loop():
    K = default_intrinsics(40, 30)
    frames = list(synthetic_sequence(8, 4, K, rate_hz=10.0))
    poses = robot_loop(SyntheticWorld.generate(8), 8, 4, rate_hz=10.0)
    world = SyntheticWorld.generate(8)
    for i, (colour, depth, intrinsics, T, stamp) in enumerate(frames):
        assert colour.dtype == np.uint8 and colour.shape == (30, 40, 3)
        assert depth.dtype == np.float32 and depth.shape == (30, 40)
        assert intrinsics == K and stamp == pytest.approx(i / 10.0)
        assert np.array_equal(T, poses[i])
        expected_colour, expected_depth = world.render(T, K)
        assert np.array_equal(colour, expected_colour) and np.array_equal(depth, expected_depth)


def test_invalid_inputs_raise_typed_errors():
    world = SyntheticWorld.generate(0)
    with pytest.raises(InvalidPoseError):
        world.render(np.full((4, 4), np.nan), SMALL)
    with pytest.raises(InvalidPoseError):
        world.render(np.eye(3), SMALL)
    with pytest.raises(InvalidIntrinsicsError):
        world.render(np.eye(4), np.eye(3))
    with pytest.raises(ValueError):
        world.render(np.eye(4), SMALL, supersample=0)
    with pytest.raises(ValueError):
        SyntheticWorld.generate(-1)
    with pytest.raises(ValueError):
        SyntheticWorld.generate(0, layout="castle")
    with pytest.raises(ValueError):
        plan_loop(world, 0, 0)
    with pytest.raises(ValueError):
        plan_loop(world, 0, 10, camera_height=50.0)
    with pytest.raises(ValueError):
        synthetic_sequence(0, 10, SMALL, speed=-1.0)  # fails eagerly, not on first frame
    with pytest.raises(ValueError):
        empty_room([Box((1.0, 0.0, 0.5), (0.2, 0.0, 0.5), 0.0, (0,) * 6)])  # zero thickness
    with pytest.raises(ValueError):
        empty_room([Box((1.0, 0.0, 0.5), (0.2, 0.2, 0.5), 0.0, (0, 0, 0, 0, 0, 3))])  # no texture 3
