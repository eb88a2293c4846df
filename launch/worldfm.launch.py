"""Launch worldfm_node on a live robot: it learns the world from the robot's RGB-D camera and
odometry, serves ~/render_view and persists to `world_path`.

    ros2 launch worldfm_ros worldfm.launch.py world_path:=/data/lab.world namespace:=robot1

Remap the camera and odometry topics to your robot's names with the `camera_ns` and `odom_topic`
arguments. Needs a real ROS 2 install (launch, launch_ros); without one, run the console script:
`worldfm_node --ros-args --params-file config/worldfm.yaml -p world_path:=...`.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory("worldfm_ros"), "config", "worldfm.yaml")
    arguments = [
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="Parameter file of worldfm_node (defaults: the installed config/worldfm.yaml)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node and of its relative topics"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="Use /clock (bag replay, simulators) instead of the system clock"),
        DeclareLaunchArgument("world_path", default_value="",
                              description="World file loaded at start and committed to on each keyframe; empty = memory only "
                                          "(overrides params_file)"),
        DeclareLaunchArgument("backend", default_value="geometric",
                              description="Renderer backend: geometric | nearest | learned (overrides params_file)"),
        DeclareLaunchArgument("device", default_value="cpu",
                              description="Renderer device: cpu | cuda (overrides params_file)"),
        DeclareLaunchArgument("camera_ns", default_value="camera",
                              description="Namespace of the RGB-D camera (image_raw, camera_info, depth/image_raw)"),
        DeclareLaunchArgument("odom_topic", default_value="odom", description="nav_msgs/Odometry topic of the robot"),
    ]
    camera_ns = LaunchConfiguration("camera_ns")
    node = Node(
        package="worldfm_ros",
        executable="worldfm_node",
        name="worldfm_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
                "world_path": ParameterValue(LaunchConfiguration("world_path"), value_type=str),
                "backend": LaunchConfiguration("backend"),
                "device": LaunchConfiguration("device"),
            },
        ],
        remappings=[
            ("camera/image_raw", [camera_ns, "/image_raw"]),
            ("camera/camera_info", [camera_ns, "/camera_info"]),
            ("camera/depth/image_raw", [camera_ns, "/depth/image_raw"]),
            ("odom", LaunchConfiguration("odom_topic")),
        ],
    )
    return LaunchDescription(arguments + [node])
