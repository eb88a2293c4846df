"""``~/render_views``: up to 256 camera poses rendered in one batch (CONTRACT.md v2,
"Batched views for planners"), served by :meth:`WorldService.render_batch`."""

from __future__ import annotations

from typing import Callable

import numpy as np
from builtin_interfaces.msg import Time

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import EmptyMemoryError, InvalidPoseError, WorldFMError
from worldfm_ros.core.world_service import MAX_BATCH_VIEWS, WorldService
from worldfm_ros.ros.image_conversion import depth_to_image, rgb_to_image
from worldfm_ros.ros.messages import pose_to_matrix
from worldfm_ros.srv import RenderViews


def poses_to_matrices(poses) -> np.ndarray:
    """``geometry_msgs/Pose[]`` -> ``[B, 4, 4]`` (1 <= B <= 256). Raises ``InvalidPoseError``
    naming the 0-based index of the first invalid pose."""
    if not 1 <= len(poses) <= MAX_BATCH_VIEWS:
        raise InvalidPoseError(f"poses must hold 1..{MAX_BATCH_VIEWS} poses, got {len(poses)}", len(poses))
    T = np.empty((len(poses), 4, 4))
    for i, pose in enumerate(poses):
        try:
            T[i] = pose_to_matrix(pose)
        except InvalidPoseError as error:
            raise InvalidPoseError(f"pose {i}: {error}", i) from error
    return T


def serve_render_views(world: WorldService, request: RenderViews.Request, response: RenderViews.Response,
                       intrinsics_of: Callable[[object], Intrinsics], stamp: Time) -> RenderViews.Response:
    """Fill ``response`` for ``request``; ``intrinsics_of(camera_info)`` resolves the request's
    camera as ``~/render_view`` does. Every core error is answered (``success: false``)."""
    try:
        if world is None:
            raise EmptyMemoryError("the node is not configured", 0)
        T = poses_to_matrices(request.poses)
        intrinsics = intrinsics_of(request.camera_info)
        out = world.render_batch(T, intrinsics)
    except WorldFMError as error:
        response.success, response.message = False, str(error)
        return response
    frame_id = request.camera_info.header.frame_id
    result = out.result
    response.images = [rgb_to_image(rgb, stamp=stamp, frame_id=frame_id) for rgb in result.rgb]
    if request.want_depth:
        response.depths = [depth_to_image(depth, stamp=stamp, frame_id=frame_id) for depth in result.depth]
    response.coverage = [float(c) for c in result.coverage]
    response.render_ms = float(out.render_ms)
    response.success = True
    response.message = f"rendered {len(T)} views"
    return response
