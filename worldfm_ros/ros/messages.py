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
from geometry_msgs.msg import Point, Pose, Quaternion, Transform, TransformStamped, Twist, Vector3
from nav_msgs.msg import OccupancyGrid, Odometry
from sensor_msgs.msg import CameraInfo, LaserScan, PointCloud2, PointField

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


def matrix_to_transform(T_parent_child: np.ndarray, stamp: Time, parent: str, child: str) -> TransformStamped:
    """``[4, 4]`` ``T_parent_child`` -> ``geometry_msgs/TransformStamped`` (``header.frame_id`` =
    ``parent``, ``child_frame_id`` = ``child``, as tf2 reads it: child points into parent)."""
    pose = matrix_to_pose(T_parent_child)
    msg = TransformStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = parent
    msg.child_frame_id = child
    msg.transform = Transform(
        translation=Vector3(x=pose.position.x, y=pose.position.y, z=pose.position.z),
        rotation=pose.orientation,
    )
    return msg


def transform_to_matrix(msg: TransformStamped) -> np.ndarray:
    """``geometry_msgs/TransformStamped`` -> ``[4, 4]`` ``T_parent_child`` (quaternion normalised)."""
    t, q = msg.transform.translation, msg.transform.rotation
    return pose_from_position_quaternion([t.x, t.y, t.z], [q.x, q.y, q.z, q.w])


def make_occupancy_grid(cells: np.ndarray, origin_xy, resolution: float, stamp: Time, frame_id: str,
                        origin_z: float = 0.0) -> OccupancyGrid:
    """``int8 [H, W]`` cells (100 / 0 / -1; row = y, column = x) -> ``nav_msgs/OccupancyGrid``
    whose origin is the world ``(x, y)`` [m] of the outer corner of cell ``[0, 0]``, unrotated,
    at height ``origin_z``."""
    cells = np.asarray(cells, dtype=np.int8)
    if cells.ndim != 2:
        raise ValueError(f"occupancy cells must be [H, W], got shape {cells.shape}")
    msg = OccupancyGrid()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.info.map_load_time = stamp
    msg.info.resolution = float(resolution)
    msg.info.height, msg.info.width = (int(n) for n in cells.shape)
    msg.info.origin.position.x = float(origin_xy[0])
    msg.info.origin.position.y = float(origin_xy[1])
    msg.info.origin.position.z = float(origin_z)
    msg.info.origin.orientation.w = 1.0
    msg.data = cells.reshape(-1).tobytes()  # row-major, as OccupancyGrid.data asks
    return msg


def occupancy_grid_to_cells(msg: OccupancyGrid) -> tuple[np.ndarray, tuple[float, float], float]:
    """``nav_msgs/OccupancyGrid`` (unrotated origin) -> ``(cells int8 [H, W], origin_xy [m], resolution [m])``."""
    cells = np.asarray(msg.data, dtype=np.int8).reshape(int(msg.info.height), int(msg.info.width))
    origin = (float(msg.info.origin.position.x), float(msg.info.origin.position.y))
    return cells, origin, float(msg.info.resolution)


def make_laser_scan(ranges: np.ndarray, stamp: Time, frame_id: str, range_max: float, range_min: float = 0.0,
                    scan_time: float = 0.0) -> LaserScan:
    """A full-circle ``sensor_msgs/LaserScan``: ``ranges [N]`` [m] at angles
    ``-pi + k * 2 pi / N`` (counter-clockwise about z of ``frame_id``, REP 103), ``inf`` = no
    hit within ``range_max``."""
    ranges = np.asarray(ranges, dtype=np.float32).reshape(-1)
    n = len(ranges)
    if n < 1:
        raise ValueError("a scan needs at least one beam")
    msg = LaserScan()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.angle_increment = float(2.0 * math.pi / n)
    msg.angle_min = float(-math.pi)
    msg.angle_max = float(-math.pi + (n - 1) * 2.0 * math.pi / n)
    msg.time_increment = 0.0
    msg.scan_time = float(scan_time)
    msg.range_min = float(range_min)
    msg.range_max = float(range_max)
    msg.ranges = ranges
    return msg


def scan_angles(samples: int) -> np.ndarray:
    """Beam angles ``float64 [samples]`` [rad] of :func:`make_laser_scan`, in the scan frame."""
    return -math.pi + np.arange(samples) * (2.0 * math.pi / samples)


def laser_scan_to_arrays(msg: LaserScan) -> tuple[np.ndarray, np.ndarray]:
    """``sensor_msgs/LaserScan`` -> ``(angles [N] [rad], ranges float32 [N] [m])``."""
    ranges = np.asarray(msg.ranges, dtype=np.float32)
    return msg.angle_min + np.arange(len(ranges)) * msg.angle_increment, ranges


#: Point layout of :func:`make_point_cloud`: x, y, z float32 and rgb packed in a float32
#: (the PCL convention: bytes 0x00RRGGBB of a little-endian uint32), 16 bytes per point.
_CLOUD_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])


def make_point_cloud(points: np.ndarray, colours: np.ndarray, stamp: Time, frame_id: str) -> PointCloud2:
    """``points float32 [N, 3]`` [m] and ``colours uint8 [N, 3]`` (RGB) -> an unorganised
    ``sensor_msgs/PointCloud2`` (height 1) with fields x, y, z (FLOAT32) and rgb (FLOAT32
    holding the packed 0x00RRGGBB bytes, as PCL and RViz read it)."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    colours = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    if len(points) != len(colours):
        raise ValueError(f"{len(points)} points but {len(colours)} colours")
    cloud = np.empty(len(points), _CLOUD_DTYPE)
    cloud["x"], cloud["y"], cloud["z"] = points[:, 0], points[:, 1], points[:, 2]
    c = colours.astype(np.uint32)
    cloud["rgb"] = (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
    msg = PointCloud2()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = 1, len(points)
    msg.fields = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, name in enumerate(("x", "y", "z", "rgb"))]
    msg.is_bigendian = False
    msg.point_step = _CLOUD_DTYPE.itemsize
    msg.row_step = msg.point_step * len(points)
    msg.is_dense = True
    msg.data = cloud.tobytes()
    return msg


def point_cloud_to_arrays(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray]:
    """A cloud of :func:`make_point_cloud`'s layout -> ``(points float32 [N, 3], colours uint8 [N, 3])``."""
    names = [f.name for f in msg.fields]
    if names[:4] != ["x", "y", "z", "rgb"] or msg.point_step != _CLOUD_DTYPE.itemsize or msg.is_bigendian:
        raise ValueError(f"unsupported point layout: fields {names}, point_step {msg.point_step}")
    cloud = np.frombuffer(bytes(msg.data), dtype=_CLOUD_DTYPE)
    points = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1)
    rgb = cloud["rgb"]
    colours = np.stack([(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255], axis=1).astype(np.uint8)
    return points, colours
