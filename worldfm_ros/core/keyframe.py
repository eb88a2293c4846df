"""A posed RGB-D frame: the unit of the spatial memory."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import InvalidImageError
from worldfm_ros.core.pose import validate_pose_matrix


@dataclass(eq=False)
class Keyframe:
    """One posed observation.

    Attributes:
        colour: ``uint8 [H, W, 3]`` RGB.
        depth: ``float32 [H, W]`` metres along the optical axis, 0 = invalid.
        intrinsics: pinhole intrinsics of both images (they are registered).
        T_world_cam: ``float64 [4, 4]`` camera optical pose in the world frame.
        stamp: acquisition time [s].
        id: memory-assigned identifier (-1 until the memory accepts the frame).
    """

    colour: np.ndarray
    depth: np.ndarray
    intrinsics: Intrinsics
    T_world_cam: np.ndarray
    stamp: float = 0.0
    id: int = -1
    extras: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.T_world_cam = validate_pose_matrix(self.T_world_cam)
        validate_frame_images(self.colour, self.depth, self.intrinsics)
        self.colour = np.ascontiguousarray(self.colour, dtype=np.uint8)
        depth = np.asarray(self.depth, dtype=np.float32)
        if not np.all(np.isfinite(depth)) or (depth < 0).any():
            depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
        self.depth = np.ascontiguousarray(depth)
        if not math.isfinite(float(self.stamp)):
            raise InvalidImageError(f"keyframe stamp is not finite: {self.stamp!r}", self.stamp)
        self.stamp = float(self.stamp)

    @property
    def position(self) -> np.ndarray:
        """Camera centre in the world frame [m], ``[3]``."""
        return self.T_world_cam[:3, 3]

    @property
    def nbytes(self) -> int:
        """Bytes held by the images of this keyframe."""
        return int(self.colour.nbytes + self.depth.nbytes)


def validate_frame_images(colour: np.ndarray, depth: np.ndarray, intrinsics: Intrinsics) -> None:
    """Raise :class:`InvalidImageError` unless colour ``[H, W, 3]`` uint8 and depth ``[H, W]``
    agree with each other and with the intrinsics' size."""
    colour = np.asarray(colour)
    depth = np.asarray(depth)
    if colour.ndim != 3 or colour.shape[2] != 3:
        raise InvalidImageError(f"colour must be [H, W, 3], got shape {colour.shape}", colour.shape)
    if colour.dtype != np.uint8:
        raise InvalidImageError(f"colour must be uint8, got {colour.dtype}", colour.dtype)
    if depth.ndim != 2:
        raise InvalidImageError(f"depth must be [H, W], got shape {depth.shape}", depth.shape)
    if depth.shape != colour.shape[:2]:
        raise InvalidImageError(
            f"depth size {depth.shape[1]}x{depth.shape[0]} differs from colour size "
            f"{colour.shape[1]}x{colour.shape[0]}",
            (depth.shape, colour.shape),
        )
    if (intrinsics.height, intrinsics.width) != depth.shape:
        raise InvalidImageError(
            f"image size {depth.shape[1]}x{depth.shape[0]} differs from the intrinsics' "
            f"{intrinsics.width}x{intrinsics.height}",
            (depth.shape, intrinsics.size),
        )
