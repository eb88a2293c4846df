"""Undistortion of incoming RGB-D frames (plumb-bob / rational polynomial), ROS-free.

The contract: incoming images with non-zero distortion coefficients are undistorted before
use, onto a pinhole image with the same ``K``. Colour is resampled bilinearly; depth by
nearest neighbour (blending depth across an edge would invent surfaces). The remap tables
are cached for the last calibration seen, since a camera's calibration rarely changes.
"""

from __future__ import annotations

import threading
from typing import Optional

import cv2
import numpy as np

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import InvalidIntrinsicsError

#: Distortion models whose coefficients OpenCV's camera model reads directly.
SUPPORTED_MODELS = ("plumb_bob", "rational_polynomial", "")


def needs_undistortion(distortion: np.ndarray) -> bool:
    """True when any coefficient is non-zero."""
    d = np.asarray(distortion, dtype=np.float64).reshape(-1)
    return bool(d.size and np.any(d != 0.0))


class Undistorter:
    """Maps distorted colour + depth to the undistorted pinhole image of the same ``K``; thread-safe."""

    def __init__(self):
        self._key: Optional[tuple] = None
        self._maps: Optional[tuple[np.ndarray, np.ndarray]] = None
        self._lock = threading.Lock()

    def _tables(self, intrinsics: Intrinsics, distortion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = (intrinsics, tuple(distortion.tolist()))
        with self._lock:
            if key != self._key:
                K = intrinsics.matrix
                self._maps = cv2.initUndistortRectifyMap(
                    K, distortion, None, K, (intrinsics.width, intrinsics.height), cv2.CV_32FC1
                )
                self._key = key
            return self._maps

    def __call__(
        self,
        colour: np.ndarray,  # uint8 [H, W, 3]
        depth: np.ndarray,  # float32 [H, W] metres
        intrinsics: Intrinsics,
        distortion,  # [N] coefficients in OpenCV order (k1, k2, p1, p2, k3, ...)
        model: str = "plumb_bob",
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(colour, depth)`` undistorted; unchanged when every coefficient is zero.

        Raises :class:`InvalidIntrinsicsError` for an unsupported model or coefficient count.
        """
        d = np.asarray(distortion, dtype=np.float64).reshape(-1)
        if not needs_undistortion(d):
            return colour, depth
        if model not in SUPPORTED_MODELS:
            raise InvalidIntrinsicsError(f"distortion model {model!r} is not supported", model)
        if d.size not in (4, 5, 8, 12, 14) or not np.all(np.isfinite(d)):
            raise InvalidIntrinsicsError(f"distortion must have 4, 5, 8, 12 or 14 finite entries, got {d.tolist()}", d)
        map_x, map_y = self._tables(intrinsics, d)
        colour_out = cv2.remap(colour, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        depth_out = cv2.remap(depth, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return colour_out, depth_out
