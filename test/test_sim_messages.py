"""Round trips of the simulator's message conversions: TF transforms, occupancy grid, scan,
point cloud (worldfm_ros.ros.messages)."""

import math

import numpy as np
import pytest
import transforms3d.euler as te

pytest.importorskip("rclpy", reason="ROS message packages are needed")

from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import LaserScan, PointCloud2  # noqa: E402
from nav_msgs.msg import OccupancyGrid  # noqa: E402

from worldfm_ros.ros.messages import (  # noqa: E402
    laser_scan_to_arrays,
    make_laser_scan,
    make_occupancy_grid,
    make_point_cloud,
    matrix_to_transform,
    occupancy_grid_to_cells,
    point_cloud_to_arrays,
    scan_angles,
    transform_to_matrix,
)

STAMP = Time(sec=12, nanosec=345)


def test_transform_round_trip_keeps_parent_child_and_quaternion_order():
    T = np.eye(4)
    T[:3, :3] = te.euler2mat(0.3, -0.2, 1.1, "sxyz")
    T[:3, 3] = [1.0, -2.0, 0.5]
    msg = matrix_to_transform(T, STAMP, "odom", "base_link")
    assert (msg.header.frame_id, msg.child_frame_id) == ("odom", "base_link")
    assert np.allclose(transform_to_matrix(msg), T, atol=1e-12)
    # A 90 degree yaw is (x, y, z, w) = (0, 0, sin 45, cos 45) in ROS order.
    Rz = np.eye(4)
    Rz[:3, :3] = te.euler2mat(0, 0, math.pi / 2, "sxyz")
    q = matrix_to_transform(Rz, STAMP, "a", "b").transform.rotation
    assert np.allclose([q.x, q.y, q.z, q.w], [0, 0, math.sqrt(0.5), math.sqrt(0.5)])


def test_occupancy_grid_round_trip_is_row_major_y_rows():
    cells = np.full((3, 5), -1, np.int8)
    cells[0, 4] = 100  # y row 0, x column 4
    cells[2, 0] = 0
    msg = deserialize_message(serialize_message(make_occupancy_grid(cells, (1.5, -2.0), 0.05, STAMP, "odom")),
                              OccupancyGrid)
    assert (msg.info.width, msg.info.height) == (5, 3)
    assert msg.data[4] == 100 and msg.data[10] == 0
    back, origin, resolution = occupancy_grid_to_cells(msg)
    assert np.array_equal(back, cells) and origin == (1.5, -2.0) and resolution == pytest.approx(0.05)
    with pytest.raises(ValueError):
        make_occupancy_grid(np.zeros(4, np.int8), (0, 0), 0.05, STAMP, "odom")


def test_laser_scan_round_trip_covers_the_full_circle():
    ranges = np.array([1.0, np.inf, 2.5, 0.3], np.float32)
    msg = deserialize_message(serialize_message(make_laser_scan(ranges, STAMP, "base_scan", 8.0)), LaserScan)
    angles, back = laser_scan_to_arrays(msg)
    assert np.array_equal(back, ranges)
    assert np.allclose(angles, scan_angles(4)) and np.allclose(angles, [-math.pi, -math.pi / 2, 0, math.pi / 2])
    assert msg.range_max == 8.0 and msg.header.frame_id == "base_scan"


def test_point_cloud_round_trip_packs_rgb_as_pcl_does():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 3)).astype(np.float32)
    colours = rng.integers(0, 256, size=(50, 3)).astype(np.uint8)
    msg = deserialize_message(serialize_message(make_point_cloud(points, colours, STAMP, "cam")), PointCloud2)
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb"] and msg.point_step == 16 and msg.width == 50
    back_points, back_colours = point_cloud_to_arrays(msg)
    assert np.array_equal(back_points, points) and np.array_equal(back_colours, colours)
    first = np.frombuffer(bytes(msg.data[12:16]), "<u4")[0]
    assert first == (int(colours[0, 0]) << 16) | (int(colours[0, 1]) << 8) | int(colours[0, 2])
    with pytest.raises(ValueError):
        make_point_cloud(points, colours[:3], STAMP, "cam")


def test_render_views_has_exactly_the_contract_fields():
    from worldfm_ros.srv import RenderViews

    assert RenderViews.Request.get_fields_and_field_types() == {
        "poses": "sequence<geometry_msgs/Pose>", "camera_info": "sensor_msgs/CameraInfo", "want_depth": "boolean",
    }
    assert RenderViews.Response.get_fields_and_field_types() == {
        "success": "boolean", "message": "string", "images": "sequence<sensor_msgs/Image>",
        "depths": "sequence<sensor_msgs/Image>", "coverage": "sequence<float>", "render_ms": "float",
    }


def test_world_status_counts_simulator_collisions():
    from worldfm_ros.msg import WorldStatus

    assert WorldStatus.get_fields_and_field_types()["sim_collisions"] == "uint32"


def test_tf_and_clock_types_are_the_ros_ones():
    """The vendored tf2_msgs (where no ROS install provides it) has ros2/geometry2's type name
    and definition, so it matches a ROS install's on the wire."""
    from rosgraph_msgs.msg import Clock
    from tf2_msgs.msg import TFMessage

    assert TFMessage.get_fields_and_field_types() == {"transforms": "sequence<geometry_msgs/TransformStamped>"}
    assert Clock.get_fields_and_field_types() == {"clock": "builtin_interfaces/Time"}
    msg = TFMessage(transforms=[matrix_to_transform(np.eye(4), STAMP, "odom", "base_link")])
    back = deserialize_message(serialize_message(msg), TFMessage)
    assert back.transforms[0].child_frame_id == "base_link"
