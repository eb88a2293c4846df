"""Pinhole camera intrinsics and their validation.

Pixel convention: integer pixel coordinates address pixel *centres*; pixel (u, v) covers
[u - 0.5, u + 0.5). Rescaling by ``s`` therefore maps ``cx' = (cx + 0.5) * s - 0.5``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from worldfm_ros.core.errors import InvalidIntrinsicsError, InvalidSizeError

#: Largest image side the core renders or stores [px].
MAX_IMAGE_SIDE = 8192


def validate_image_size(width: int, height: int, max_side: int = MAX_IMAGE_SIDE) -> None:
    """Raise :class:`InvalidSizeError` unless ``1 <= width, height <= max_side``."""
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise InvalidSizeError(f"image {name} must be an integer, got {value!r}", value)
        if value < 1 or value > max_side:
            raise InvalidSizeError(
                f"image {name} {value} is outside the supported range [1, {max_side}]", value
            )


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of an undistorted image of ``width`` x ``height`` pixels.

    ``fx, fy, cx, cy`` are in pixels.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        validate_image_size(self.width, self.height)
        for name in ("fx", "fy", "cx", "cy"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise InvalidIntrinsicsError(f"intrinsics {name} is not finite: {value!r}", value)
        for name in ("fx", "fy"):
            value = getattr(self, name)
            if abs(value) < 1e-9:
                raise InvalidIntrinsicsError(f"intrinsics {name} must be non-zero, got {value!r}", value)
            if value < 0:
                raise InvalidIntrinsicsError(f"intrinsics {name} must be positive, got {value!r}", value)

    @classmethod
    def from_matrix(cls, K, width: int, height: int) -> "Intrinsics":
        """Build from a 3x3 matrix (or its 9 row-major entries, as in CameraInfo.k)."""
        K = np.asarray(K, dtype=np.float64)
        if K.size != 9:
            raise InvalidIntrinsicsError(f"K must have 9 entries, got shape {K.shape}", K)
        K = K.reshape(3, 3)
        return cls(
            fx=float(K[0, 0]), fy=float(K[1, 1]), cx=float(K[0, 2]), cy=float(K[1, 2]),
            width=int(width), height=int(height),
        )

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 calibration matrix K, float64."""
        return np.array(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64
        )

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return self.width, self.height

    def scaled(self, s: float) -> "Intrinsics":
        """Intrinsics of the same camera with the image rescaled by ``s`` (pixel-centre rule)."""
        width = int(round(self.width * s))
        height = int(round(self.height * s))
        return Intrinsics(
            fx=self.fx * s, fy=self.fy * s,
            cx=(self.cx + 0.5) * s - 0.5, cy=(self.cy + 0.5) * s - 0.5,
            width=width, height=height,
        )

    def resized(self, width: int, height: int) -> "Intrinsics":
        """Intrinsics for the image resized to ``width`` x ``height`` (per-axis scales)."""
        validate_image_size(width, height)
        sx = width / self.width
        sy = height / self.height
        return Intrinsics(
            fx=self.fx * sx, fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5, cy=(self.cy + 0.5) * sy - 0.5,
            width=int(width), height=int(height),
        )
