"""Colour/depth registration: resampling depth onto a wider colour camera, and estimating the
colour focal ratio from posed frames (procedural worlds with a known ratio, and 7-Scenes)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.colour_registration import (
    colour_intrinsics,
    estimate_colour_focal_ratio,
    register_frame,
    register_to_colour,
    resolve_colour_focal_ratio,
    select_pairs,
)
from worldfm_ros.core.datasets import Frame, open_dataset
from worldfm_ros.core.evaluation import split_leave_out


def _intrinsics(f=200.0, w=160, h=120):
    return Intrinsics(f, f, (w - 1) / 2, (h - 1) / 2, w, h)


@pytest.fixture(scope="module")
def loop():
    """A world and 60 poses of a robot loop through it (every second loop frame)."""
    from worldfm_ros.core.synthetic.generate import generate_world
    from worldfm_ros.core.synthetic.trajectory import plan_loop

    world = generate_world(5)
    traj = plan_loop(world, 5, 400, speed=0.3, yaw_wobble=0.4)
    return world, [traj.T_world_cam[i] for i in range(0, 120, 2)]


def _rig_frames(loop, ratio: float) -> list[Frame]:
    """Frames of an unregistered rig: depth from a camera with the reported intrinsics K,
    colour from a camera at the same pose with focal ``ratio`` times K's."""
    world, poses = loop
    K = _intrinsics()
    K_colour = colour_intrinsics(K, ratio)
    frames = []
    for i, T in enumerate(poses):
        colour, _ = world.render(T, K_colour, supersample=2)
        depth = world.cast(T, K).depth.astype(np.float32)
        frames.append(Frame(colour, depth, K, T, float(i), i))
    return frames


@pytest.mark.parametrize("ratio", [1.0, 0.9])
def test_estimate_recovers_the_colour_focal_of_a_simulated_rig(loop, ratio):
    estimate = estimate_colour_focal_ratio(_rig_frames(loop, ratio))
    assert estimate.ratio == pytest.approx(ratio, abs=0.01)
    assert len(estimate.pairs) >= 8 and estimate.points > 2000
    # The cost has its minimum there, not at an end of the searched range.
    assert estimate.ratios[0] < estimate.ratio < estimate.ratios[-1]


def test_registered_frames_put_depth_where_the_colour_camera_sees_it(loop):
    world, poses = loop
    K = _intrinsics()
    frame = _rig_frames(loop, 0.9)[10]
    registered = register_frame(frame, 0.9)
    truth = world.cast(frame.T_world_cam, registered.intrinsics).depth
    inside = registered.depth > 0
    # The depth camera's field of view is narrower: the colour image's border has no depth.
    assert not inside[:, 0].any() and not inside[0, :].any() and inside[60, 80]
    assert 0.7 < inside.mean() < 0.9
    rel = np.abs(registered.depth[inside] - truth[inside]) / truth[inside]
    assert np.median(rel) < 1e-3  # nearest-sample resampling: exact except at depth edges
    assert registered.intrinsics.fx == pytest.approx(0.9 * K.fx) and registered.intrinsics.cx == K.cx
    assert registered.colour is frame.colour


def test_ratio_one_is_the_identity_and_bad_ratios_are_refused():
    K = _intrinsics()
    depth = np.ones((120, 160), np.float32)
    same_depth, same_K = register_to_colour(depth, K, 1.0)
    assert same_depth is depth and same_K == K
    for bad in (0.0, -1.0, float("nan"), float("inf"), 3.0):
        with pytest.raises(ValueError, match="colour focal ratio"):
            register_to_colour(depth, K, bad)
    with pytest.raises(ValueError, match="number or 'auto'"):
        resolve_colour_focal_ratio("wide", [])
    assert resolve_colour_focal_ratio("0.9", []) == (0.9, None)


def test_estimate_needs_frames_that_see_the_same_place(loop):
    frames = _rig_frames(loop, 1.0)
    with pytest.raises(ValueError, match="at least two"):
        estimate_colour_focal_ratio(frames[:1])
    still = [dataclasses.replace(f, T_world_cam=frames[0].T_world_cam) for f in frames[:5]]
    with pytest.raises(ValueError, match="no two frames"):
        estimate_colour_focal_ratio(still)


def test_pairs_are_rotated_views_of_one_place():
    def yaw(deg, x=0.0):
        T = np.eye(4)
        a = np.radians(deg)
        T[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
        T[0, 3] = x
        return T

    poses = [yaw(0), yaw(2), yaw(10), yaw(50), yaw(10, x=2.0)]
    # 0 pairs with 2 (10 deg; 3 is too far rotated, 4 too far away), 1 with 2 (8 deg).
    assert select_pairs(poses) == [(0, 2), (1, 2)]


def test_estimate_on_redkitchen_is_near_kinect_v1s_colour_focal(shared_data):
    folder = shared_data / "redkitchen_a"
    if not (folder / "frame-000000.color.jpg").exists():
        pytest.skip(f"7-Scenes redkitchen_a data not found at {folder}")
    memory, _ = split_leave_out(list(open_dataset(folder, "7scenes", scale=0.5)))
    ratio, estimate = resolve_colour_focal_ratio("auto", memory)
    # Reported (depth) focal 585 px; Kinect v1's colour camera about 525 px: 0.897.
    assert 0.86 < ratio < 0.92 and estimate is not None
