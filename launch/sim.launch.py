"""Launch worldfm_node as a simulator on a saved world: a virtual robot driven by sim/cmd_vel
publishes sim/odom and a simulated RGB-D camera rendered from the stored keyframes.

    ros2 launch worldfm_ros sim.launch.py world_path:=/data/lab.world

`world_path` is required. The real camera subscriptions stay open but are not needed.
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
            },
        ],
    )
    return LaunchDescription(arguments + [node])
