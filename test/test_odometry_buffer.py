"""OdometryBuffer: interpolation, extrapolation limits and bounds against closed-form motion."""

import math

import numpy as np
import pytest
import transforms3d.euler as te

from worldfm_ros.core.errors import InvalidPoseError
from worldfm_ros.core.odometry_buffer import OdometryBuffer, PoseMiss, PoseUnavailableError


def pose_at_time(t: float) -> np.ndarray:
    """Ground truth: constant velocity (0.5, -0.2, 0.1) m/s and yaw rate 0.3 rad/s."""
    T = np.eye(4)
    T[:3, :3] = te.euler2mat(0.0, 0.0, 0.3 * t)
    T[:3, 3] = [0.5 * t, -0.2 * t, 0.1 * t]
    return T


def filled(stamps, **kwargs) -> OdometryBuffer:
    buf = OdometryBuffer(**kwargs)
    for t in stamps:
        buf.add(t, pose_at_time(t))
    return buf


def test_interpolates_between_samples_exactly_for_constant_rates():
    buf = filled(np.arange(0.0, 1.01, 0.1))
    for t in (0.03, 0.25, 0.5, 0.77, 0.999):
        np.testing.assert_allclose(buf.pose_at(t), pose_at_time(t), atol=1e-9)


def test_exact_stamp_returns_the_sample():
    buf = filled([0.0, 0.1, 0.2])
    np.testing.assert_allclose(buf.pose_at(0.1), pose_at_time(0.1), atol=1e-12)


def test_extrapolates_up_to_the_limit_then_refuses():
    buf = filled(np.arange(0.0, 1.01, 0.1), max_extrapolation=0.1)
    np.testing.assert_allclose(buf.pose_at(1.08), pose_at_time(1.08), atol=1e-9)
    with pytest.raises(PoseUnavailableError) as info:
        buf.pose_at(1.11)
    assert info.value.reason is PoseMiss.BEYOND_EXTRAPOLATION
    assert buf.misses[PoseMiss.BEYOND_EXTRAPOLATION] == 1


def test_single_sample_is_held_within_extrapolation():
    buf = filled([2.0], max_extrapolation=0.1)
    np.testing.assert_allclose(buf.pose_at(2.05), pose_at_time(2.0))


def test_refuses_before_buffer_and_when_empty():
    buf = OdometryBuffer()
    with pytest.raises(PoseUnavailableError) as info:
        buf.pose_at(1.0)
    assert info.value.reason is PoseMiss.NO_ODOMETRY
    buf = filled([1.0, 1.1])
    with pytest.raises(PoseUnavailableError) as info:
        buf.pose_at(0.99)
    assert info.value.reason is PoseMiss.BEFORE_BUFFER


def test_does_not_interpolate_across_a_large_gap():
    buf = filled([0.0, 5.0], max_interpolation_gap=1.0)
    with pytest.raises(PoseUnavailableError) as info:
        buf.pose_at(2.5)
    assert info.value.reason is PoseMiss.GAP_TOO_LARGE


def test_out_of_order_samples_are_sorted():
    buf = filled([0.0, 0.2, 0.1, 0.4, 0.3])
    np.testing.assert_allclose(buf.pose_at(0.15), pose_at_time(0.15), atol=1e-9)


def test_length_is_bounded_to_the_newest_samples():
    buf = filled(np.arange(0, 100) * 0.01, max_samples=10)
    assert len(buf) == 10
    assert buf.latest()[0] == pytest.approx(0.99)
    with pytest.raises(PoseUnavailableError):
        buf.pose_at(0.85)  # evicted
    np.testing.assert_allclose(buf.pose_at(0.955), pose_at_time(0.955), atol=1e-9)


def test_time_jump_back_empties_the_buffer():
    buf = filled([100.0, 100.1], jump_back_reset=2.0)
    buf.add(3.0, pose_at_time(3.0))
    assert len(buf) == 1 and buf.resets == 1


def test_invalid_samples_are_refused():
    buf = OdometryBuffer()
    bad = np.eye(4)
    bad[0, 3] = math.nan
    with pytest.raises(InvalidPoseError):
        buf.add(0.0, bad)
    with pytest.raises(ValueError):
        buf.add(math.inf, np.eye(4))
    assert len(buf) == 0
