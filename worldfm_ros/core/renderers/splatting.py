"""Shared pieces of the geometric renderers: reference point clouds, view weights, hole filling.

A reference keyframe becomes a coloured point cloud in the world frame: every valid depth
pixel back-projected, minus the pixels on a depth discontinuity (there colour and depth are
least trustworthy: 7-Scenes' colour is misregistered by a few pixels at edges, and a pixel
straddling two surfaces would float between them).
"""

from __future__ import annotations

import math

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


def view_weight(T_ref: np.ndarray, T_target: np.ndarray, angle_sigma_deg: float, distance_scale: float) -> float:
    """How much a reference's colour is trusted at a target, in (0, 1].

    Falls off with the angle between the two optical axes (Gaussian, ``angle_sigma_deg``)
    and with the distance between the camera centres (``1 / (1 + d / distance_scale)``).
    """
    c = float(np.clip(T_ref[:3, 2] @ T_target[:3, 2], -1.0, 1.0))
    angle = math.degrees(math.acos(c))
    distance = float(np.linalg.norm(T_ref[:3, 3] - T_target[:3, 3]))
    return math.exp(-((angle / angle_sigma_deg) ** 2)) / (1.0 + distance / distance_scale) + 1e-6
