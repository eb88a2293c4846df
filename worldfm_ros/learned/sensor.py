"""A cheap model of a consumer RGB-D sensor, applied to exact synthetic frames so a model
trained on them transfers to real cameras (7-Scenes' Kinect v1 in particular).

Per *sequence* (one camera rig): a fixed colour-to-depth misregistration (the colour image is
shifted by a sub-pixel offset relative to depth, as when the depth camera's pose is used for
colour), depth noise level, hole rate, blur and JPEG quality ranges.
Per *frame*: exposure and white-balance gains (i.i.d. jitter; :func:`smooth_drift` gives the
slow part), blur, pixel noise, JPEG compression; depth
noise (relative, growing with distance), dropout at depth discontinuities and low-frequency
blobs of invalid depth (about ``hole_rate`` of the pixels), and no depth beyond ``max_range``.
Every draw comes from the ``numpy.random.Generator`` passed in, so a seed fixes the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SensorModel:
    """Parameters of one simulated camera rig (see :meth:`draw`).

    Attributes:
        shift: colour-to-depth misregistration ``(dx, dy)`` [px].
        depth_noise: relative depth noise at 1 m (grows linearly with depth).
        hole_rate: target fraction of invalid depth pixels.
        edge_dropout: probability of losing depth at a discontinuity pixel.
        max_range: depth beyond this is invalid [m].
        blur_sigma: ``(low, high)`` Gaussian blur sigma of colour [px].
        jpeg_quality: ``(low, high)`` JPEG quality of colour.
        exposure_sigma: per-frame log-gain standard deviation.
        white_balance_sigma: per-frame per-channel log-gain standard deviation.
        pixel_noise: colour noise standard deviation [0-255 units].
    """

    shift: tuple = (0.0, 0.0)
    depth_noise: float = 0.004
    hole_rate: float = 0.08
    edge_dropout: float = 0.5
    max_range: float = 6.0
    blur_sigma: tuple = (0.0, 0.7)
    jpeg_quality: tuple = (75, 95)
    exposure_sigma: float = 0.05
    white_balance_sigma: float = 0.02
    pixel_noise: float = 1.5

    @staticmethod
    def draw(rng: np.random.Generator, strength: float = 1.0) -> "SensorModel":
        """A random rig; ``strength`` 0 gives a perfect sensor, 1 a Kinect-like one."""
        s = float(strength)
        angle = rng.uniform(0, 2 * np.pi)
        radius = rng.uniform(0.0, 2.0) * s
        lo_blur = rng.uniform(0.0, 0.4) * s
        return SensorModel(
            shift=(float(radius * np.cos(angle)), float(radius * np.sin(angle))),
            depth_noise=float(rng.uniform(0.001, 0.008) * s),
            hole_rate=float(rng.uniform(0.0, 0.15) * s),
            edge_dropout=float(rng.uniform(0.2, 0.8) * s),
            max_range=float(rng.uniform(4.0, 8.0)) if s > 0 else float("inf"),
            blur_sigma=(float(lo_blur), float(lo_blur + rng.uniform(0.0, 0.6) * s)),
            jpeg_quality=(int(85 + 10 * (1 - s)), 98) if s > 0 else (100, 100),
            exposure_sigma=float(0.06 * s),
            white_balance_sigma=float(0.02 * s),
            pixel_noise=float(rng.uniform(0.0, 1.0) * s),
        )

    # ------------------------------------------------------------------ colour
    def colour(self, image: np.ndarray, rng: np.random.Generator, log_gain=0.0) -> np.ndarray:
        """``uint8 [H, W, 3]`` RGB as this sensor would deliver it; ``log_gain`` (scalar or
        ``[3]``) is added to the random exposure, e.g. a slow auto-exposure drift."""
        img = image.astype(np.float32)
        if self.shift != (0.0, 0.0):
            M = np.array([[1.0, 0.0, self.shift[0]], [0.0, 1.0, self.shift[1]]], np.float32)
            img = cv2.warpAffine(img, M, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
        sigma = rng.uniform(*self.blur_sigma)
        if sigma > 0.05:
            img = cv2.GaussianBlur(img, (0, 0), sigma)
        gain = np.exp(rng.normal(0.0, self.exposure_sigma) + rng.normal(0.0, self.white_balance_sigma, 3)
                      + np.asarray(log_gain, np.float64))
        img = img * gain.astype(np.float32)
        if self.pixel_noise > 0:
            img = img + rng.normal(0.0, self.pixel_noise, img.shape).astype(np.float32)
        out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        quality = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
        if quality < 100:
            ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
        return out

    # ------------------------------------------------------------------ depth
    def depth(self, depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``float32 [H, W]`` metres, 0 = invalid, as this sensor would deliver it."""
        d = depth.astype(np.float32).copy()
        valid = d > 0
        if self.depth_noise > 0:
            d *= 1.0 + rng.normal(0.0, self.depth_noise, d.shape).astype(np.float32) * np.maximum(d, 0.5)
        # Discontinuities: relative jump to a 4-neighbour above 5 %.
        if self.edge_dropout > 0:
            pad = np.pad(depth, 1, mode="edge")
            jump = np.zeros(depth.shape, bool)
            for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
                nb = pad[dy:dy + depth.shape[0], dx:dx + depth.shape[1]]
                jump |= np.abs(nb - depth) > 0.05 * np.maximum(depth, 1e-3)
            jump = cv2.dilate(jump.astype(np.uint8), np.ones((2, 2), np.uint8)).astype(bool)
            valid &= ~(jump & (rng.random(d.shape) < self.edge_dropout))
        if self.hole_rate > 0:
            h, w = d.shape
            coarse = rng.random((max(2, h // 16), max(2, w // 16))).astype(np.float32)
            field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
            field += rng.random(d.shape).astype(np.float32) * 0.15
            threshold = np.quantile(field, 1.0 - self.hole_rate)
            valid &= field < threshold
        valid &= d < self.max_range
        return np.where(valid, d, 0.0).astype(np.float32)


def smooth_drift(rng: np.random.Generator, n: int, dims: int, amplitude: float,
                 periods=(40.0, 200.0), terms: int = 3) -> np.ndarray:
    """``[n, dims]`` smooth random signal (sum of ``terms`` sinusoids per dimension with
    periods in ``periods`` frames), each dimension within about ``+-amplitude``: slowly
    drifting pose error or exposure, so frames close in time agree more than distant ones."""
    i = np.arange(n, dtype=np.float64)[:, None]
    out = np.zeros((n, dims))
    for _ in range(terms):
        period = rng.uniform(*periods, size=dims)
        phase = rng.uniform(0, 2 * np.pi, size=dims)
        out += rng.uniform(-1, 1, size=dims) * np.sin(2 * np.pi * i / period + phase)
    return out * (amplitude / terms)
