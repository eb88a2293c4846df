"""worldfm_ros: a learned world-model simulator for ROS 2 robots.

`worldfm_ros.core` is ROS-free (numpy / torch / OpenCV only); `worldfm_ros.ros` is the thin
ROS 2 adapter around it.
"""

__version__ = "0.1.0"
