"""Message conversions: round trips and the quaternion order (ROS x, y, z, w)."""

import math

import numpy as np
import pytest
import transforms3d.euler as te

pytest.importorskip("rclpy", reason="ROS message packages are needed")

from geometry_msgs.msg import Pose, Twist  # noqa: E402

from worldfm_ros.core.camera import Intrinsics  # noqa: E402
from worldfm_ros.core.errors import InvalidPoseError  # noqa: E402
from worldfm_ros.ros.messages import (  # noqa: E402
    intrinsics_to_camera_info,
    make_odometry,
    matrix_to_pose,
    odometry_to_pose,
    pose_to_matrix,
    seconds_to_time,
    time_to_seconds,
    twist_to_arrays,
)


def test_pose_round_trip_and_quaternion_order():
    T = np.eye(4)
    T[:3, :3] = te.euler2mat(0.1, -0.4, 2.0)
    T[:3, 3] = [1.5, -2.0, 0.25]
    msg = matrix_to_pose(T)
    np.testing.assert_allclose(pose_to_matrix(msg), T, atol=1e-12)
    # 90 degrees about z: ROS order puts sin(45) in z and cos(45) in w
    msg = Pose()
    msg.orientation.z = msg.orientation.w = math.sqrt(0.5)
    np.testing.assert_allclose(pose_to_matrix(msg)[:3, 0], [0, 1, 0], atol=1e-12)


def test_unnormalised_quaternion_is_normalised_and_bad_ones_refused():
    msg = Pose()
    msg.orientation.w = 3.0
    np.testing.assert_allclose(pose_to_matrix(msg), np.eye(4))
    msg.orientation.w = 0.0
    with pytest.raises(InvalidPoseError):
        pose_to_matrix(msg)  # zero quaternion
    msg.orientation.w = 1.0
    msg.position.y = math.nan
    with pytest.raises(InvalidPoseError):
        pose_to_matrix(msg)


def test_time_round_trip():
    for t in (0.0, 1.5, 1_700_000_000.123456789):
        assert time_to_seconds(seconds_to_time(t)) == pytest.approx(t, abs=1e-9 * max(1.0, t) * 1e-6 + 1e-9)
    msg = seconds_to_time(12.25)
    assert (msg.sec, msg.nanosec) == (12, 250_000_000)
    with pytest.raises(ValueError):
        seconds_to_time(-1.0)


def test_odometry_round_trip_with_twist():
    T = np.eye(4)
    T[:3, :3] = te.euler2mat(0, 0, 0.7)
    T[:3, 3] = [3, 4, 0]
    msg = make_odometry(T, np.array([0.5, 0, 0]), np.array([0, 0, 0.2]), seconds_to_time(7.5), "odom", "base_link")
    stamp, T_back = odometry_to_pose(msg)
    assert stamp == 7.5 and msg.header.frame_id == "odom" and msg.child_frame_id == "base_link"
    np.testing.assert_allclose(T_back, T, atol=1e-12)
    lin, ang = twist_to_arrays(msg.twist.twist)
    assert lin.tolist() == [0.5, 0, 0] and ang.tolist() == [0, 0, 0.2]
    assert twist_to_arrays(Twist())[0].tolist() == [0, 0, 0]


def test_camera_info_carries_the_intrinsics():
    K = Intrinsics(fx=300.0, fy=310.0, cx=159.5, cy=119.5, width=320, height=240)
    msg = intrinsics_to_camera_info(K, seconds_to_time(1.0), "cam")
    assert (msg.width, msg.height, msg.header.frame_id) == (320, 240, "cam")
    assert Intrinsics.from_matrix(msg.k, msg.width, msg.height) == K
    assert list(msg.p)[:3] == [300.0, 0.0, 159.5] and not any(msg.d)
