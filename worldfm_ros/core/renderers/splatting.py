"""Shared pieces of the geometric renderers: reference point clouds, view weights, depth.

A reference keyframe becomes a coloured point cloud in the world frame: every valid depth
pixel back-projected, optionally minus the pixels on a depth discontinuity (a pixel
straddling two surfaces floats between them; on 7-Scenes, though, keeping them scored
better, so the renderer's default keeps them).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from worldfm_ros.core.keyframe import Keyframe

#: Points closer than this to the target camera are not drawn [m].
NEAR_PLANE = 0.05


def discontinuity_mask(depth: np.ndarray, edge_ratio: float) -> np.ndarray:
    """``bool [H, W]``: valid pixels whose 3x3 neighbourhood spans at most ``edge_ratio``
    of their depth (``edge_ratio <= 0`` keeps every valid pixel)."""
    valid = depth > 0
    if edge_ratio <= 0:
        return valid
    kernel = np.ones((3, 3), np.uint8)
    # 3x3 min over valid samples (invalid ones count as very far) and 3x3 max (OpenCV's
    # erode/dilate, border replicated).
    near = cv2.erode(np.where(valid, depth, np.float32(1e9)), kernel, borderType=cv2.BORDER_REPLICATE)
    far = cv2.dilate(depth, kernel, borderType=cv2.BORDER_REPLICATE)
    return valid & (far <= near * (1.0 + edge_ratio))


def reference_points(keyframe: Keyframe, edge_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """World points ``float32 [N, 3]`` and their colours ``float32 [N, 3]`` (0..255)."""
    keep = discontinuity_mask(keyframe.depth, edge_ratio)
    v, u = np.nonzero(keep)
    z = keyframe.depth[v, u]
    K = keyframe.intrinsics
    pts_cam = np.stack([(u - np.float32(K.cx)) * (z / np.float32(K.fx)),
                        (v - np.float32(K.cy)) * (z / np.float32(K.fy)), z], axis=1)
    T = keyframe.T_world_cam
    # einsum, not @: a multi-threaded BLAS call for a [N, 3] x [3, 3] product stalls on a
    # loaded machine (15 ms against 1 ms measured here).
    pts_world = np.einsum("nj,ij->ni", pts_cam, T[:3, :3].astype(np.float32)) + T[:3, 3].astype(np.float32)
    return pts_world.astype(np.float32), keyframe.colour[v, u].astype(np.float32)


def front_depth(zbuf: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Rendered depth ``float32 [H, W]`` [m]: the z-buffer ``zbuf [H, W]`` (nearest surface
    splatted to each pixel, ``inf`` where none) at covered pixels; where only a neighbour's
    bilinear footprint reached, the 3x3 minimum of the z-buffer (that neighbour's surface);
    0 at pixels not covered."""
    zbuf = np.asarray(zbuf, np.float32)
    around = cv2.erode(zbuf, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    depth = np.where(np.isfinite(zbuf), zbuf, around)
    return np.where(covered & np.isfinite(depth), depth, 0.0).astype(np.float32)


#: Floor of a reference's view weight relative to the best one: a reference far from the
#: target still fills what the others do not see.
MIN_VIEW_WEIGHT = 1e-6


def view_weights(ref_poses: Sequence[np.ndarray], T_target: np.ndarray, angle_scale_deg: float,
                 distance_scale: float) -> np.ndarray:
    """How much each reference's colour is trusted at a target: ``float64 [K]`` in
    [``MIN_VIEW_WEIGHT``, 1], 1 for the most similar view.

    ``w_k = exp(-(angle_k / angle_scale_deg + distance_k / distance_scale))`` divided by the
    largest, with ``angle_k`` the angle between the optical axes [deg] and ``distance_k`` the
    distance between the camera centres [m]. The fall-off is steep on purpose: on real data
    a reference a few centimetres further away is measurably worse (depth/colour
    misregistration and pose error grow with the baseline; on 7-Scenes redkitchen this
    weighting scored 0.1 dB (parallax insertion policy) to 0.3 dB (pose policy) above a
    Gaussian angle term times ``1 / (1 + d / 5 cm)``), so the nearest view dominates where it
    sees the surface and the others mostly fill what it does not see.
    """
    poses = np.asarray(ref_poses, dtype=np.float64).reshape(-1, 4, 4)
    axis, centre = T_target[:3, 2], T_target[:3, 3]
    # Written out per component (no BLAS call, one vector expression for all references).
    cos = poses[:, 0, 2] * axis[0] + poses[:, 1, 2] * axis[1] + poses[:, 2, 2] * axis[2]
    angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    offset = poses[:, :3, 3] - centre
    distance = np.sqrt(offset[:, 0] ** 2 + offset[:, 1] ** 2 + offset[:, 2] ** 2)
    scores = angle / angle_scale_deg + distance / distance_scale
    return np.maximum(np.exp(-(scores - scores.min())), MIN_VIEW_WEIGHT)
