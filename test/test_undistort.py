"""Undistortion of incoming frames against an image distorted with OpenCV's own model."""

import cv2
import numpy as np

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.undistort import Undistorter

K = Intrinsics(fx=300.0, fy=300.0, cx=159.5, cy=119.5, width=320, height=240)
D = np.array([-0.25, 0.08, 0.001, -0.002, 0.0])


def distort(image: np.ndarray, interpolation: int) -> np.ndarray:
    """Image a distorting camera would see of the pinhole ``image`` (same K)."""
    h, w = image.shape[:2]
    uu, vv = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pts = np.stack([uu.ravel(), vv.ravel()], axis=1).reshape(-1, 1, 2)
    # for each distorted pixel: where its ray hits the pinhole image
    und = cv2.undistortPoints(pts, K.matrix, D, P=K.matrix).reshape(h, w, 2).astype(np.float32)
    return cv2.remap(image, und[..., 0], und[..., 1], interpolation, borderMode=cv2.BORDER_CONSTANT)


def test_undistortion_recovers_the_pinhole_image():
    yy, xx = np.mgrid[0:240, 0:320]
    colour = np.stack([(xx * 0.8) % 256, (yy * 1.0) % 256, ((xx + yy) * 0.5) % 256], axis=2).astype(np.uint8)
    depth = (1.0 + xx / 32.0).astype(np.float32)  # 1/32 m per pixel
    colour_out, depth_out = Undistorter()(distort(colour, cv2.INTER_LINEAR), distort(depth, cv2.INTER_NEAREST), K, D)
    inner = (slice(40, 200), slice(50, 270))
    err = np.abs(colour_out[inner].astype(int) - colour[inner].astype(int))
    assert np.median(err) <= 1.0
    assert np.abs(depth_out[inner] - depth[inner]).max() <= 2 / 32 + 1e-6  # within two pixels
    # doing nothing would be far off
    assert np.abs(distort(depth, cv2.INTER_NEAREST)[inner] - depth[inner]).max() > 4 / 32


def test_zero_distortion_is_a_no_op():
    colour = np.zeros((240, 320, 3), np.uint8)
    depth = np.ones((240, 320), np.float32)
    c, d = Undistorter()(colour, depth, K, np.zeros(5))
    assert c is colour and d is depth
