"""SimBase: exact integration of body-frame twists, timeouts, teleports."""

import math

import numpy as np
import pytest
import transforms3d.euler as te

from worldfm_ros.core.errors import InvalidPoseError
from worldfm_ros.core.sim_base import SimBase, se3_exp


def yaw_pose(x, y, yaw, z=0.0):
    T = np.eye(4)
    T[:3, :3] = te.euler2mat(0.0, 0.0, yaw)
    T[:3, 3] = [x, y, z]
    return T


def test_forward_and_yaw_drive_an_exact_circle():
    base = SimBase(np.eye(4), cmd_timeout=10.0)
    v, w = 0.5, 0.25  # radius 2 m
    base.command([v, 0, 0], [0, 0, w], now=0.0)
    for k in range(1, 41):
        T = base.step(now=k * 0.1)
    t = 4.0
    r = v / w
    expected = yaw_pose(r * math.sin(w * t), r * (1 - math.cos(w * t)), w * t)
    np.testing.assert_allclose(T, expected, atol=1e-9)


def test_step_length_does_not_matter():
    a = SimBase(yaw_pose(1, 2, 0.3), cmd_timeout=10.0, motion="free")
    b = SimBase(yaw_pose(1, 2, 0.3), cmd_timeout=10.0, motion="free")
    for s in (a, b):
        s.command([0.3, 0.1, 0.05], [0.1, -0.2, 0.4], now=0.0)
    a.step(0.9)
    for k in range(1, 91):
        b.step(k * 0.01)
    np.testing.assert_allclose(a.pose, b.pose, atol=1e-9)


def test_lateral_and_vertical_motion_are_in_the_body_frame():
    base = SimBase(yaw_pose(0, 0, math.pi / 2), cmd_timeout=10.0, motion="free")
    base.command([0.0, 1.0, 0.5], [0, 0, 0], now=0.0)
    base.step(1.0)
    T = base.step(2.0)
    # facing +y, "left" is -x in the world
    np.testing.assert_allclose(T[:3, 3], [-2.0, 0.0, 1.0], atol=1e-12)


def test_old_command_counts_as_zero():
    base = SimBase(np.eye(4), cmd_timeout=0.5)
    base.command([1.0, 0, 0], [0, 0, 0], now=0.0)
    T = base.step(3.0)
    np.testing.assert_allclose(T[:3, 3], [0.5, 0, 0], atol=1e-12)
    lin, ang = base.twist(3.0)
    assert not lin.any() and not ang.any()
    lin, _ = base.twist(0.2)
    np.testing.assert_allclose(lin, [1.0, 0, 0])


def test_new_command_ends_the_old_one_at_its_stamp():
    base = SimBase(np.eye(4), cmd_timeout=5.0)
    base.command([1.0, 0, 0], [0, 0, 0], now=0.0)
    base.command([0.0, -1.0, 0], [0, 0, 0], now=1.0)
    T = base.step(2.0)
    np.testing.assert_allclose(T[:3, 3], [1.0, -1.0, 0], atol=1e-12)


def test_clock_jump_is_clamped_and_backwards_clock_restarts():
    base = SimBase(np.eye(4), cmd_timeout=100.0)
    base.command([1.0, 0, 0], [0, 0, 0], now=0.0)
    T = base.step(50.0)
    assert T[0, 3] == pytest.approx(1.0)  # at most MAX_STEP of motion per step
    base.step(10.0)  # the clock went back: no motion, integration restarts
    T = base.step(10.5)
    assert T[0, 3] == pytest.approx(1.5)


def test_set_pose_and_invalid_inputs():
    base = SimBase(np.eye(4))
    base.set_pose(yaw_pose(3, 4, 1.0), now=0.0)
    np.testing.assert_allclose(base.step(0.1), yaw_pose(3, 4, 1.0))
    bad = np.eye(4)
    bad[:3, :3] *= 2
    with pytest.raises(InvalidPoseError):
        base.set_pose(bad, now=0.2)
    with pytest.raises(ValueError):
        base.command([math.nan, 0, 0], [0, 0, 0], now=0.3)


def test_se3_exp_matches_matrix_exponential():
    from scipy.linalg import expm  # noqa: PLC0415 - scipy comes with scikit-image

    v, w, dt = np.array([0.3, -0.2, 0.7]), np.array([0.5, 0.1, -0.9]), 0.8
    xi = np.zeros((4, 4))
    xi[:3, :3] = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])
    xi[:3, 3] = v
    np.testing.assert_allclose(se3_exp(v, w, dt), expm(xi * dt), atol=1e-12)
