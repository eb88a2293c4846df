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
        # The f*f samples of each block as strided views, combined element-wise in block
        # order (row by row): 640x480 -> 320x240 takes 3.3 ms instead of 21 ms for a
        # reduction over a copied [H, W, f*f] array, with bit-identical results at f = 2
        # (larger factors may differ in the last bit of a float32 sum: summation order).
        total = np.zeros((height, width), np.float32)
        count = np.zeros((height, width), np.int64)
        near = np.full((height, width), np.inf, np.float32)
        far = np.zeros((height, width), np.float32)
        for dy in range(f):
            for dx in range(f):
                sample = depth[dy::f, dx::f]
                valid = sample > 0
                total += sample  # invalid samples are 0 and add nothing
                count += valid
                np.minimum(near, np.where(valid, sample, np.float32(np.inf)), out=near)
                np.maximum(far, np.where(valid, sample, np.float32(0.0)), out=far)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
        one_surface = (far - near) <= _DEPTH_EDGE_RATIO * near
        depth_out = np.where(count == 0, 0.0, np.where(one_surface, mean, near)).astype(np.float32)
    else:
        depth_out = cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)
    return colour_out, depth_out, new_intrinsics
