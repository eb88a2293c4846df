"""The CPU hot path of the geometric renderer as fused loops compiled by numba.

The same two passes as the torch path of :mod:`worldfm_ros.core.renderers.geometric`, one
reference pixel at a time (back-projected on the fly, no point cloud kept) instead of a
dozen whole-array operations: on a 2-core CPU that is what
makes 320x240 views from four 320x240 references fit in a robot's control loop.
Loops run in point order and accumulate in float64, so results are deterministic.
Compiled on first use (``cache=True`` keeps the machine code in ``__pycache__``).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _add(acc, p, r, g, b, z, weight, footprint):  # pragma: no cover - compiled
    w = footprint * weight
    acc[p, 0] += r * w
    acc[p, 1] += g * w
    acc[p, 2] += b * w
    acc[p, 3] += z * w
    acc[p, 4] += w
    acc[p, 5] += footprint


@njit(cache=True, nogil=True)
def edge_free_mask(depth, edge_ratio, keep):  # pragma: no cover - compiled
    """``keep[y, x] = 1`` for valid depth whose 3x3 neighbourhood (border replicated) spans at
    most ``edge_ratio`` of it: the same rule as ``splatting.discontinuity_mask``."""
    h, w = depth.shape
    for y in range(h):
        for x in range(w):
            d = depth[y, x]
            if d <= 0:
                keep[y, x] = 0
                continue
            if edge_ratio <= 0:
                keep[y, x] = 1
                continue
            lo = d
            hi = d
            for dy in range(-1, 2):
                yy = min(max(y + dy, 0), h - 1)
                for dx in range(-1, 2):
                    xx = min(max(x + dx, 0), w - 1)
                    n = depth[yy, xx]
                    if n > hi:
                        hi = n
                    if n > 0 and n < lo:
                        lo = n
            keep[y, x] = 1 if hi <= lo * (1.0 + edge_ratio) else 0


@njit(cache=True, nogil=True)
def zbuffer_pass_rgbd(depth, keep, C, b, width, height, near, zbuf):  # pragma: no cover
    """Nearest-pixel z-buffer ``zbuf[v * W + u] = min(z)`` of a reference depth image.

    A reference pixel ``(x, y)`` of depth ``d`` lands at ``(u*z, v*z, z) = d * C @ (x, y, 1) + b``
    in the target image: ``C [3, 3] = K_target R_target_ref K_ref^-1``, ``b [3] = K_target t``."""
    h, w = depth.shape
    for y in range(h):
        for x in range(w):
            if keep[y, x] == 0:
                continue
            d = depth[y, x]
            zc = d * (x * C[2, 0] + y * C[2, 1] + C[2, 2]) + b[2]
            if zc <= near:
                continue
            u = (d * (x * C[0, 0] + y * C[0, 1] + C[0, 2]) + b[0]) / zc
            v = (d * (x * C[1, 0] + y * C[1, 1] + C[1, 2]) + b[1]) / zc
            if u < -0.5 or u >= width - 0.5 or v < -0.5 or v >= height - 0.5:
                continue
            p = int(v + 0.5) * width + int(u + 0.5)
            if zc < zbuf[p]:
                zbuf[p] = zc


@njit(cache=True, nogil=True)
def blend_pass_rgbd(depth, colour, keep, C, b, width, height, near, zbuf, tolerance, weight, bilinear,
                    acc):  # pragma: no cover - compiled
    """Accumulate ``acc[p] += (r*w, g*w, b*w, z*w, w, footprint)`` for the reference pixels
    within ``tolerance`` (relative) of ``zbuf`` at each target pixel ``p`` their bilinear (or
    nearest, ``bilinear=False``) footprint touches; ``w = footprint * weight``.

    The projection is written out here and in :func:`zbuffer_pass_rgbd` rather than shared:
    a helper returning a tuple made this loop twice as slow (numba 0.68, measured).
    """
    h, w = depth.shape
    for y in range(h):
        for x in range(w):
            if keep[y, x] == 0:
                continue
            d = depth[y, x]
            zc = d * (x * C[2, 0] + y * C[2, 1] + C[2, 2]) + b[2]
            if zc <= near:
                continue
            u = (d * (x * C[0, 0] + y * C[0, 1] + C[0, 2]) + b[0]) / zc
            v = (d * (x * C[1, 0] + y * C[1, 1] + C[1, 2]) + b[1]) / zc
            if u < -0.5 or u >= width - 0.5 or v < -0.5 or v >= height - 0.5:
                continue
            r = float(colour[y, x, 0])
            g = float(colour[y, x, 1])
            bl = float(colour[y, x, 2])
            if not bilinear:
                p = int(v + 0.5) * width + int(u + 0.5)
                if zc <= zbuf[p] * (1.0 + tolerance):
                    _add(acc, p, r, g, bl, zc, weight, 1.0)
                continue
            u0 = np.floor(u)
            v0 = np.floor(v)
            fu = u - u0
            fv = v - v0
            iu = int(u0)
            iv = int(v0)
            for dv in range(2):
                vv = iv + dv
                if vv < 0 or vv > height - 1:
                    continue
                wv = fv if dv == 1 else 1.0 - fv
                for du in range(2):
                    uu = iu + du
                    if uu < 0 or uu > width - 1:
                        continue
                    wu = fu if du == 1 else 1.0 - fu
                    p = vv * width + uu
                    if zc <= zbuf[p] * (1.0 + tolerance):
                        _add(acc, p, r, g, bl, zc, weight, wu * wv)


@njit(cache=True, nogil=True)
def normalise(acc, min_support, colour, depth, covered, confidence):  # pragma: no cover - compiled
    """Blend sums ``acc [HW, 6]`` -> ``colour [3, HW]`` (weighted mean), ``depth [HW]``,
    ``covered [HW]`` (footprint support >= ``min_support``) and ``confidence [HW]`` in [0, 1]."""
    n = acc.shape[0]
    for p in range(n):
        total = acc[p, 4]
        support = acc[p, 5]
        if total > 0:
            inv = 1.0 / total
            colour[0, p] = acc[p, 0] * inv
            colour[1, p] = acc[p, 1] * inv
            colour[2, p] = acc[p, 2] * inv
        else:
            colour[0, p] = 0.0
            colour[1, p] = 0.0
            colour[2, p] = 0.0
        if total > 0 and support >= min_support:
            covered[p] = True
            depth[p] = acc[p, 3] / total
            confidence[p] = min(support, 1.0)
        else:
            covered[p] = False
            depth[p] = 0.0
            confidence[p] = 0.0
