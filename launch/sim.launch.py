"""Launch worldfm_node as a simulator on a saved world: a virtual robot driven by sim/cmd_vel
publishes sim/odom and a simulated RGB-D camera rendered from the stored keyframes.

    ros2 launch worldfm_ros sim.launch.py world_path:=/data/lab.world

`world_path` is required. The real camera subscriptions stay open but are not needed.

For nav2 (config/nav2_example.yaml: ~/map as the static map, sim/scan for the local costmap):

    ros2 launch worldfm_ros sim.launch.py world_path:=/data/lab.world publish_clock:=true use_sim_time:=true

The arguments below default to what config/nav2_example.yaml assumes (footprint 0.2 m, 5 cm
cells, an 8 m scan); change both together.
Needs a real ROS 2 install (launch, launch_ros); without one:
`worldfm_node --ros-args --params-file config/worldfm.yaml -p sim.enabled:=true -p world_path:=...`.
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
        DeclareLaunchArgument("world_path", description="Saved world file to simulate (required)"),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="Parameter file of worldfm_node (defaults: the installed config/worldfm.yaml)"),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node and its topics"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="Use /clock instead of the system clock"),
        DeclareLaunchArgument("backend", default_value="geometric",
                              description="Renderer backend: geometric | nearest | learned"),
        DeclareLaunchArgument("device", default_value="cpu", description="Renderer device: cpu | cuda"),
        DeclareLaunchArgument("rate_hz", default_value="10.0", description="Simulated camera rate [Hz]"),
        DeclareLaunchArgument("width", default_value="320", description="Simulated image width [px]"),
        DeclareLaunchArgument("height", default_value="240", description="Simulated image height [px]"),
        DeclareLaunchArgument("motion", default_value="planar",
                              description="planar (ground robot: x, y, yaw) | free (v1's 3D flying camera)"),
        DeclareLaunchArgument("collision", default_value="true",
                              description="Refuse steps whose footprint would touch an occupied map cell"),
        DeclareLaunchArgument("footprint_radius", default_value="0.2",
                              description="Radius of the base's footprint [m] (nav2_example.yaml robot_radius)"),
        DeclareLaunchArgument("publish_clock", default_value="false",
                              description="Publish /clock (then run nav2 and this node with use_sim_time:=true)"),
        DeclareLaunchArgument("real_time_factor", default_value="1.0",
                              description="Simulated / wall time with publish_clock; 0 = as fast as rendering allows"),
        DeclareLaunchArgument("scan_range_max", default_value="8.0",
                              description="Range of sim/scan [m] (nav2_example.yaml raytrace_max_range)"),
        DeclareLaunchArgument("map_resolution", default_value="0.05",
                              description="Cell side of ~/map [m] (nav2_example.yaml costmap resolution)"),
    ]
    node = Node(
        package="worldfm_ros",
        executable="worldfm_node",
        name="worldfm_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "sim.enabled": True,
                "world_path": ParameterValue(LaunchConfiguration("world_path"), value_type=str),
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
                "backend": LaunchConfiguration("backend"),
                "device": LaunchConfiguration("device"),
                "sim.rate_hz": ParameterValue(LaunchConfiguration("rate_hz"), value_type=float),
                "sim.width": ParameterValue(LaunchConfiguration("width"), value_type=int),
                "sim.height": ParameterValue(LaunchConfiguration("height"), value_type=int),
                "sim.motion": LaunchConfiguration("motion"),
                "sim.collision": ParameterValue(LaunchConfiguration("collision"), value_type=bool),
                "sim.footprint_radius": ParameterValue(LaunchConfiguration("footprint_radius"), value_type=float),
                "sim.publish_clock": ParameterValue(LaunchConfiguration("publish_clock"), value_type=bool),
                "sim.real_time_factor": ParameterValue(LaunchConfiguration("real_time_factor"), value_type=float),
                "sim.scan.range_max": ParameterValue(LaunchConfiguration("scan_range_max"), value_type=float),
                "map.resolution": ParameterValue(LaunchConfiguration("map_resolution"), value_type=float),
            },
        ],
    )
    return LaunchDescription(arguments + [node])
