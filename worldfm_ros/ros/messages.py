"""Conversions between ROS messages and the core's numpy types (images excepted: see
:mod:`worldfm_ros.ros.image_conversion`).

Quaternion order: ROS messages carry ``(x, y, z, w)``; the core's pose helpers take the same
ROS order and use transforms3d's ``(w, x, y, z)`` only internally. Poses are ``float64 [4, 4]``
matrices ``T_parent_child`` mapping child-frame points into the parent frame.
Times: ``builtin_interfaces/Time`` <-> float seconds.
"""

from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Twist, Vector3
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.pose import pose_from_position_quaternion, position_quaternion_from_pose


def time_to_seconds(stamp: Time) -> float:
    """``builtin_interfaces/Time`` -> seconds (float)."""
    return stamp.sec + stamp.nanosec * 1e-9


def seconds_to_time(seconds: float) -> Time:
    """Seconds -> ``builtin_interfaces/Time`` (rounded to the nanosecond; negative -> error)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"stamp must be finite and >= 0 s, got {seconds!r}")
    ns = int(round(seconds * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def pose_to_matrix(pose: Pose) -> np.ndarray:
    """``geometry_msgs/Pose`` -> ``[4, 4]``; the quaternion is normalised.

    Raises ``InvalidPoseError`` for non-finite values or a quaternion of norm < 1e-6.
    """
    p, q = pose.position, pose.orientation
    return pose_from_position_quaternion([p.x, p.y, p.z], [q.x, q.y, q.z, q.w])


def matrix_to_pose(T: np.ndarray) -> Pose:
    """``[4, 4]`` rigid transform -> ``geometry_msgs/Pose`` (unit quaternion, w >= 0)."""
    position, q = position_quaternion_from_pose(T)
    return Pose(
        position=Point(x=float(position[0]), y=float(position[1]), z=float(position[2])),
        orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
    )


def odometry_to_pose(msg: Odometry) -> tuple[float, np.ndarray]:
    """``nav_msgs/Odometry`` -> ``(stamp [s], T_world_base [4, 4])`` (its ``pose.pose``)."""
    return time_to_seconds(msg.header.stamp), pose_to_matrix(msg.pose.pose)


def twist_to_arrays(twist: Twist) -> tuple[np.ndarray, np.ndarray]:
    """``geometry_msgs/Twist`` -> ``(linear [m/s] [3], angular [rad/s] [3])``."""
    return (
        np.array([twist.linear.x, twist.linear.y, twist.linear.z], dtype=np.float64),
        np.array([twist.angular.x, twist.angular.y, twist.angular.z], dtype=np.float64),
    )


def make_odometry(
    T_world_base: np.ndarray,
    linear: np.ndarray,
    angular: np.ndarray,
    stamp: Time,
    frame_id: str,
    child_frame_id: str,
) -> Odometry:
    """``nav_msgs/Odometry`` with the base pose in ``frame_id`` and its body-frame twist
    (``linear`` [m/s], ``angular`` [rad/s], expressed in ``child_frame_id`` as REP 105 asks)."""
    msg = Odometry()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.child_frame_id = child_frame_id
    msg.pose.pose = matrix_to_pose(T_world_base)
    msg.twist.twist = Twist(
        linear=Vector3(x=float(linear[0]), y=float(linear[1]), z=float(linear[2])),
        angular=Vector3(x=float(angular[0]), y=float(angular[1]), z=float(angular[2])),
    )
    return msg


def intrinsics_to_camera_info(intrinsics: Intrinsics, stamp: Time, frame_id: str) -> CameraInfo:
    """``CameraInfo`` of an undistorted pinhole image: ``k`` and ``p`` from ``intrinsics``,
    ``d`` zeros (plumb_bob), ``r`` identity."""
    msg = CameraInfo()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.width = int(intrinsics.width)
    msg.height = int(intrinsics.height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    fx, fy, cx, cy = (float(v) for v in (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy))
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg
