"""Image operations shared by the readers, the memory and the node (OpenCV underneath)."""

from __future__ import annotations

import cv2
import numpy as np

from worldfm_ros.core.camera import Intrinsics, validate_image_size

#: Depth samples in one block that differ by more than this fraction are a discontinuity.
_DEPTH_EDGE_RATIO = 0.05


def downscale_rgbd(
    colour: np.ndarray,  # uint8 [H, W, 3]
    depth: np.ndarray,  # float32 [H, W] metres, 0 = invalid
    intrinsics: Intrinsics,
    width: int,
    height: int,
) -> tuple[np.ndarray, np.ndarray, Intrinsics]:
    """Resize a registered colour + depth pair to ``width`` x ``height``.

    Colour is area-averaged. Depth is averaged over the valid samples of each block when
    they lie on one surface, and takes the nearest valid sample across a depth
    discontinuity (averaging there would invent points floating between two surfaces).
    Non-integer factors and upscaling fall back to nearest-neighbour depth.
    Returns ``(colour, depth, intrinsics)`` at the new size.
    """
    validate_image_size(width, height)
    h, w = depth.shape
    if (w, h) == (width, height):
        return colour, depth, intrinsics
    new_intrinsics = intrinsics.resized(width, height)
    colour_out = cv2.resize(colour, (width, height), interpolation=cv2.INTER_AREA)
    fx, fy = w / width, h / height
    if fx == fy and fx == int(fx) and fx > 1 and w % width == 0 and h % height == 0:
        f = int(fx)
        blocks = depth.reshape(height, f, width, f).transpose(0, 2, 1, 3).reshape(height, width, f * f)
        valid = blocks > 0
        count = valid.sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, blocks.sum(axis=2) / np.maximum(count, 1), 0.0)
        big = np.where(valid, blocks, np.inf)
        near = big.min(axis=2)
        far = np.where(valid, blocks, 0.0).max(axis=2)
        one_surface = (far - near) <= _DEPTH_EDGE_RATIO * near
        depth_out = np.where(count == 0, 0.0, np.where(one_surface, mean, near)).astype(np.float32)
    else:
        depth_out = cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)
    return colour_out, depth_out, new_intrinsics
