"""OccupancyMap: cell rules, grid layout, incremental updates, ray casting, and the map of a
streamed synthetic world against its exact floor plan; WorldService keeps it in step."""

import math

import numpy as np
import pytest

from nav_truth import exact_scan, map_scores, streamed_keyframes
from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.memory import MemoryConfig
from worldfm_ros.core.occupancy_map import FREE, OCCUPIED, UNKNOWN, InvalidMapOptionError, OccupancyMap
from worldfm_ros.core.renderers.nearest import NearestRenderer
from worldfm_ros.core.synthetic.trajectory import DEFAULT_CAMERA_TO_BASE, base_pose
from worldfm_ros.core.world_file import write_world
from worldfm_ros.core.world_service import WorldService, WorldServiceConfig

K = Intrinsics(40.0, 40.0, 19.5, 14.5, 40, 30)


def wall_keyframe(distance=2.0, x=0.0, y=0.0, yaw=0.0, height=0.3, kid=-1) -> Keyframe:
    """A level camera at ``height`` facing ``yaw`` sees a flat wall ``distance`` ahead (every
    pixel's z-depth is the distance: a plane perpendicular to the optical axis)."""
    T = base_pose(x, y, yaw, height) @ DEFAULT_CAMERA_TO_BASE
    kf = Keyframe(np.zeros((30, 40, 3), np.uint8), np.full((30, 40), distance, np.float32), K, T)
    kf.id = kid
    return kf


@pytest.fixture(scope="module")
def streamed():
    return streamed_keyframes()


def test_a_wall_ahead_is_occupied_and_the_floor_before_it_free():
    m = OccupancyMap(resolution=0.1, ray_stride=1)
    m.integrate(wall_keyframe(2.0))
    cells, (ox, oy) = m.grid()
    assert cells.dtype == np.int8
    assert set(np.unique(cells)) <= {OCCUPIED, FREE, UNKNOWN}
    # The wall plane x = 2.0 lies in column floor(2.0 / 0.1) = 20; the camera sees y within
    # +-2.0 * 19.5 / 40 = +-0.975 m of its axis.
    assert m.cell_state(2.05, 0.0) == OCCUPIED
    assert m.cell_state(2.05, 0.9) == OCCUPIED
    assert m.cell_state(1.0, 0.0) == FREE
    assert m.cell_state(1.95, 0.0) == FREE
    assert m.cell_state(2.5, 0.0) == UNKNOWN  # behind the wall
    assert m.cell_state(1.0, 1.5) == UNKNOWN  # outside the field of view
    # Row index = y, column index = x, origin = corner of cell [0, 0].
    col = int(math.floor((2.05 - ox) / 0.1))
    row = int(math.floor((0.05 - oy) / 0.1))
    assert cells[row, col] == OCCUPIED
    assert cells[row, col - 5] == FREE
    assert ox == pytest.approx(round(ox / 0.1) * 0.1) and oy == pytest.approx(round(oy / 0.1) * 0.1)


def test_points_outside_the_height_band_are_not_obstacles():
    m = OccupancyMap(resolution=0.1, min_height=0.05, max_height=1.5)
    # Camera at 3 m looking level: the wall points are at 3 m +- 0.75 m, above the band.
    m.integrate(wall_keyframe(2.0, height=3.0))
    assert m.grid()[0].size == 0  # no rays in the band, no points in it: all unknown
    m.integrate(wall_keyframe(2.0, height=0.6))
    assert m.cell_state(2.05, 0.0) == OCCUPIED


def test_integrate_remove_and_clear_are_exact_and_bump_the_version():
    frames = [wall_keyframe(2.0, kid=0), wall_keyframe(1.5, y=0.3, yaw=0.4, kid=1), wall_keyframe(3.0, x=-1, yaw=2.0, kid=2)]
    everything = OccupancyMap()
    for kf in frames:
        everything.integrate(kf)
    without_1 = OccupancyMap()
    for kf in (frames[0], frames[2]):
        without_1.integrate(kf)
    v = everything.version
    assert everything.remove(1) and everything.version == v + 1
    assert not everything.remove(1)
    a, oa = everything.grid()
    b, ob = without_1.grid()
    assert oa == ob and np.array_equal(a, b)
    # Re-integrating the same id replaces its contribution instead of adding it twice.
    everything.integrate(frames[0])
    everything.remove(0)
    only_2 = OccupancyMap()
    only_2.integrate(frames[2])
    assert np.array_equal(everything.grid()[0], only_2.grid()[0])
    v = everything.version
    everything.clear()
    assert everything.version == v + 1 and everything.grid()[0].shape == (0, 0) and len(everything) == 0


def test_footprint_collision_uses_occupied_cell_centres():
    m = OccupancyMap(resolution=0.1)
    m.integrate(wall_keyframe(2.0))
    # The wall's cells have centres at x = 2.05.
    assert not m.footprint_collides(1.8, 0.0, 0.2)
    assert m.footprint_collides(1.86, 0.0, 0.2)
    assert m.nearest_obstacle(1.8, 0.05, 1.0) == pytest.approx(0.25)
    assert m.nearest_obstacle(0.0, 0.0, 0.5) == math.inf
    with pytest.raises(InvalidMapOptionError):
        m.footprint_collides(math.nan, 0.0, 0.2)


def test_raycast_hits_the_wall_and_reads_unknown_as_free():
    m = OccupancyMap(resolution=0.1)
    m.integrate(wall_keyframe(2.0))
    ranges = m.raycast(0.0, 0.0, [0.0, math.pi, 0.2], range_max=8.0)
    assert ranges.dtype == np.float32
    assert ranges[0] == pytest.approx(2.0, abs=1e-6)  # entry of the cell [2.0, 2.1)
    assert ranges[1] == math.inf  # unknown space behind the camera
    assert ranges[2] == pytest.approx(2.0 / math.cos(0.2), abs=1e-5)
    assert m.raycast(0.0, 0.0, [0.0], range_max=1.5)[0] == math.inf
    assert m.raycast(2.05, 0.0, [1.0], range_max=1.0)[0] == 0.0  # starting inside an obstacle
    with pytest.raises(InvalidMapOptionError):
        m.raycast(0.0, 0.0, [0.0], range_max=-1.0)


def test_bad_options_are_refused_with_the_value():
    for options in ({"resolution": 0.0}, {"resolution": math.nan}, {"min_height": 1.0, "max_height": 0.5},
                    {"ray_stride": 0}, {"free_max_height": 0.0}):
        with pytest.raises(InvalidMapOptionError) as info:
            OccupancyMap(**options)
        assert info.value.value is not None
    with pytest.raises(ValueError):
        WorldServiceConfig(map_resolution=-0.05)


def test_map_of_a_streamed_world_matches_the_exact_floor_plan(streamed, tmp_path):
    world, keyframes, bases = streamed
    m = OccupancyMap()
    for kf in keyframes:
        m.integrate(kf)
    scores = map_scores(m, world)
    print(f"map vs truth: {scores}")
    assert scores["occupied_iou"] >= 0.8
    assert scores["free_correct"] >= 0.95
    assert scores["free_cells"] > 2000  # the map covers the driven room, not a corner of it
    path = m.save_png(tmp_path / "map.png", trajectory=bases, marks={"start": bases[0][:2, 3]})
    assert path.stat().st_size > 1000


def test_scan_matches_the_exact_ray_cast_over_observed_surfaces(streamed):
    world, keyframes, bases = streamed
    m = OccupancyMap()
    for kf in keyframes:
        m.integrate(kf)
    angles = np.linspace(-math.pi, math.pi, 360, endpoint=False)
    errors = []
    for T in bases[::10]:
        x, y, yaw = T[0, 3], T[1, 3], math.atan2(T[1, 0], T[0, 0])
        ranges = m.raycast(x, y, yaw + angles, 8.0)
        truth = exact_scan(world, x, y, yaw + angles, 8.0)
        hit = np.isfinite(truth)
        ends = np.stack([x + truth[hit] * np.cos(yaw + angles[hit]), y + truth[hit] * np.sin(yaw + angles[hit])], 1)
        # Beams whose true end point lies on a surface the map saw (its cell is occupied).
        seen = np.array([m.cell_state(px, py) == OCCUPIED for px, py in ends])
        errors.append(np.abs(ranges[hit][seen] - truth[hit][seen]))
    errors = np.concatenate(errors)
    print(f"scan vs exact: {errors.size} beams, median error {np.median(errors):.4f} m")
    assert errors.size > 1000
    assert np.median(errors) <= m.resolution


def test_world_service_keeps_the_map_in_step_with_memory(streamed, tmp_path):
    world, keyframes, _ = streamed
    frames = [Keyframe(k.colour, k.depth, k.intrinsics, k.T_world_cam, k.stamp) for k in keyframes[:40]]
    config = WorldServiceConfig(keyframe_width=160, keyframe_height=120, memory=MemoryConfig(max_keyframes=25))
    service = WorldService(config, renderer=NearestRenderer())
    for frame in frames:
        service.load_keyframes([frame])
    kept = service.keyframes()
    assert len(kept) == 25  # 15 evicted
    rebuilt = OccupancyMap()
    for kf in kept:
        rebuilt.integrate(kf)
    assert np.array_equal(service.occupancy_map.grid()[0], rebuilt.grid()[0])
    assert service.occupancy_map.grid()[1] == rebuilt.grid()[1]
    # A world file reloads the same map.
    path = tmp_path / "w.world"
    write_world(str(path), kept)
    loaded = WorldService(WorldServiceConfig(world_path=str(path), memory=MemoryConfig(max_keyframes=25)),
                          renderer=NearestRenderer())
    assert np.array_equal(loaded.occupancy_map.grid()[0], rebuilt.grid()[0])
    version = loaded.occupancy_map.version
    loaded.reset()
    assert loaded.occupancy_map.grid()[0].size == 0 and loaded.occupancy_map.version > version
    loaded.close()


def test_compile_kernels_compiles_every_kernel():
    from worldfm_ros.core import occupancy_map

    occupancy_map.compile_kernels()
    kernels = [value for value in vars(occupancy_map).values() if hasattr(value, "signatures")]
    assert len(kernels) == 6 and all(kernel.signatures for kernel in kernels)
