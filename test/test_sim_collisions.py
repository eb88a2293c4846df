"""SimBase on an occupancy map: planar motion, collisions, start poses in obstacles, reset."""

import math

import numpy as np
import pytest
import transforms3d.euler as te

from nav_truth import floor_plan_distance, streamed_keyframes
from worldfm_ros.core.occupancy_map import OccupancyMap
from worldfm_ros.core.sim_base import InvalidSimOptionError, SimBase, StartPoseBlockedError

RADIUS = 0.2


@pytest.fixture(scope="module")
def nav_map():
    world, keyframes, bases = streamed_keyframes()
    m = OccupancyMap()
    for kf in keyframes:
        m.integrate(kf)
    return world, m, bases


def pose(x, y, yaw, z=0.0, roll=0.0, pitch=0.0):
    T = np.eye(4)
    T[:3, :3] = te.euler2mat(roll, pitch, yaw, "sxyz")
    T[:3, 3] = [x, y, z]
    return T


def free_start_poses(m: OccupancyMap, rng, n):
    cells = m.free_cells()
    out = []
    while len(out) < n:
        x, y = cells[rng.integers(len(cells))]
        if not m.footprint_collides(x, y, RADIUS):
            out.append((x, y, rng.uniform(-math.pi, math.pi)))
    return out


def test_random_drives_never_put_the_footprint_in_an_occupied_cell(nav_map):
    _, m, _ = nav_map
    rng = np.random.default_rng(11)
    dt, duration = 0.1, 30.0
    blocked_steps = 0
    for x, y, yaw in free_start_poses(m, rng, 200):
        base = SimBase(pose(x, y, yaw), cmd_timeout=1.0, occupancy=m, footprint_radius=RADIUS)
        for k in range(int(duration / dt)):
            now = k * dt
            if k % 10 == 0:  # a new random twist every second
                base.command([rng.uniform(-0.5, 1.0), rng.uniform(-0.2, 0.2), 0.0], [0, 0, rng.uniform(-1.5, 1.5)], now)
            T = base.step(now + dt)
            assert not m.footprint_collides(T[0, 3], T[1, 3], RADIUS), f"drive from {(x, y, yaw)} at t={now + dt:.1f}"
            blocked_steps += base.blocked
    assert blocked_steps > 100  # the drives did push against obstacles


def test_straight_drive_at_a_wall_stops_at_the_footprint_and_turning_away_drives_again(nav_map):
    world, m, _ = nav_map
    lo, hi = world.bounds
    # Face the -x room wall from 1 m away, in a stretch of it the map saw.
    for y in np.arange(lo[1] + 0.5, hi[1] - 0.5, 0.1):
        x = lo[0] + 0.987  # not a whole number of 2.5 cm sub-steps from the wall
        if (not m.footprint_collides(x, y, RADIUS) and m.raycast(x, y, [math.pi], 2.0)[0] < 1.1
                and floor_plan_distance(world, [x, y]) > 0.9):
            break
    else:
        pytest.fail("no stretch of the -x wall was mapped")
    base = SimBase(pose(x, y, math.pi), cmd_timeout=1.0, occupancy=m, footprint_radius=RADIUS)
    for k in range(60):  # 6 s at 0.5 m/s: would be 3 m
        base.command([0.5, 0, 0], [0, 0, 0], k * 0.1)
        T = base.step((k + 1) * 0.1)
    assert base.blocked and base.collision_count == 1
    lin, ang = base.twist(6.0)
    assert not lin.any() and not ang.any()
    gap = float(floor_plan_distance(world, T[:2, 3]))  # exact distance to the wall surface
    print(f"stopped {gap:.6f} m from the wall (footprint radius {RADIUS} m, cell {m.resolution} m)")
    assert abs(gap - RADIUS) <= m.resolution
    # Turning in place is allowed, then forward motion resumes.
    base.command([0, 0, 0], [0, 0, math.pi / 2], 6.0)
    base.step(7.0)
    base.step(8.0)
    assert not base.blocked
    start = base.pose[:2, 3].copy()
    base.command([0.3, 0, 0], [0, 0, 0], 8.0)
    T = base.step(9.0)
    assert np.linalg.norm(T[:2, 3] - start) == pytest.approx(0.3, abs=1e-9)
    assert not base.blocked


def test_planar_motion_holds_height_roll_and_pitch_and_ignores_3d_components():
    start = pose(1.0, 2.0, 0.5, z=0.3, roll=0.05, pitch=-0.1)
    base = SimBase(start, cmd_timeout=10.0)
    base.command([0.4, 0.0, 1.0], [0.3, 0.3, 0.2], 0.0)
    base.step(1.0)
    T = base.step(2.0)
    roll, pitch, yaw = te.mat2euler(T[:3, :3], "sxyz")
    assert T[2, 3] == pytest.approx(0.3)
    assert (roll, pitch) == pytest.approx((0.05, -0.1))
    assert yaw == pytest.approx(0.5 + 0.4)
    # Arc of radius v / w = 2 m turning left from heading 0.5.
    r = 0.4 / 0.2
    expected = np.array([1.0, 2.0]) + r * np.array([math.sin(0.9) - math.sin(0.5), math.cos(0.5) - math.cos(0.9)])
    np.testing.assert_allclose(T[:2, 3], expected, atol=1e-12)
    lin, ang = base.twist(2.0)
    np.testing.assert_allclose(lin, [0.4, 0, 0])
    np.testing.assert_allclose(ang, [0, 0, 0.2])


def test_start_pose_in_an_obstacle_moves_to_the_nearest_free_place(nav_map):
    world, m, _ = nav_map
    lo, _ = world.bounds
    y = 0.0
    inside = pose(lo[0] + 0.05, y, 0.0)  # the wall cells are 5 cm away: the footprint overlaps them
    assert m.footprint_collides(inside[0, 3], y, RADIUS)
    base = SimBase(inside, occupancy=m, footprint_radius=RADIUS)
    assert base.start_warning and "moved to the nearest free position" in base.start_warning
    T = base.pose
    assert not m.footprint_collides(T[0, 3], T[1, 3], RADIUS)
    assert np.linalg.norm(T[:2, 3] - inside[:2, 3]) < 0.3
    np.testing.assert_allclose(T[:3, :3], inside[:3, :3])
    assert base.set_pose(inside, 1.0) is not None  # teleports follow the same rule
    assert base.set_pose(pose(0.5, 0.5, 0.0) if not m.footprint_collides(0.5, 0.5, RADIUS) else T, 1.0) is None
    with pytest.raises(StartPoseBlockedError) as info:
        SimBase(inside, occupancy=m, footprint_radius=5.0)  # nothing in the room fits a 10 m disc
    assert "inside an obstacle" in str(info.value)


def test_reset_returns_to_the_start_pose_with_zero_velocity():
    base = SimBase(pose(1, 1, 0.0), cmd_timeout=10.0)
    base.command([1.0, 0, 0], [0, 0, 0.5], 0.0)
    base.step(1.0)
    base.set_pose(pose(5, 5, 1.0), 1.0, as_start=True)
    base.step(2.0)
    assert base.reset(3.0) is None
    np.testing.assert_allclose(base.step(4.0), pose(5, 5, 1.0))
    lin, ang = base.twist(4.0)
    assert not lin.any() and not ang.any()


def test_bad_options_raise_typed_errors_with_the_value():
    with pytest.raises(InvalidSimOptionError) as info:
        SimBase(np.eye(4), motion="hover")
    assert info.value.value == "hover" and "hover" in str(info.value)
    with pytest.raises(InvalidSimOptionError) as info:
        SimBase(np.eye(4), footprint_radius=-0.1)
    assert info.value.value == -0.1
    with pytest.raises(InvalidSimOptionError):
        SimBase(np.eye(4), cmd_timeout=math.inf)
