"""ROS-free core: camera and pose conventions, keyframe memory, renderers, world files.

Conventions, written once (see also ../shared/CONTRACT.md):
- ``T_world_cam`` is a float64 ``[4, 4]`` matrix that maps points in the camera *optical*
  frame (x right, y down, z forward) to the world frame.
- Colour images are ``uint8 [H, W, 3]`` RGB; depth images are ``float32 [H, W]`` in metres,
  0 = invalid / unknown.
- Quaternions in the public API are in ROS order ``(x, y, z, w)``; transforms3d (``w, x, y, z``)
  is used underneath.
- Nothing in this package may import rclpy or any ROS message package.
"""
