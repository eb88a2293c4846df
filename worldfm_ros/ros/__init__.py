"""The ROS 2 adapter around :mod:`worldfm_ros.core`: the node, message conversions, DDS set-up.

Modules here may import rclpy and ROS message packages; the core must not. Importing this
package itself imports nothing from ROS.
"""
