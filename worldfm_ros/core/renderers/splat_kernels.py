"""The CPU hot path of the geometric renderer as fused loops compiled by numba.

The same two passes as the torch path of :mod:`worldfm_ros.core.renderers.geometric`, one
point at a time instead of a dozen whole-array operations: on a 2-core CPU that is what
makes 320x240 views from four 320x240 references fit in a robot's control loop.
Loops run in point order and accumulate in float64, so results are deterministic.
Compiled on first use (``cache=True`` keeps the machine code in ``__pycache__``).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def zbuffer_pass(points, KR, Kt, width, height, near, zbuf):  # pragma: no cover - compiled
    """Nearest-pixel z-buffer: ``zbuf[v * W + u] = min(z)`` over the points ``[3, N]``."""
    n = points.shape[1]
    for i in range(n):
        x, y, z = points[0, i], points[1, i], points[2, i]
        zc = KR[2, 0] * x + KR[2, 1] * y + KR[2, 2] * z + Kt[2]
        if zc <= near:
            continue
        u = (KR[0, 0] * x + KR[0, 1] * y + KR[0, 2] * z + Kt[0]) / zc
        v = (KR[1, 0] * x + KR[1, 1] * y + KR[1, 2] * z + Kt[1]) / zc
        if u < -0.5 or u >= width - 0.5 or v < -0.5 or v >= height - 0.5:
            continue
        p = int(v + 0.5) * width + int(u + 0.5)
        if zc < zbuf[p]:
            zbuf[p] = zc


@njit(cache=True, nogil=True)
def blend_pass(points, colours, KR, Kt, width, height, near, zbuf, tolerance, weight, bilinear, acc):  # pragma: no cover
    """Accumulate ``acc[p] += (r*w, g*w, b*w, z*w, w, footprint)`` for the points within
    ``tolerance`` (relative) of ``zbuf`` at each pixel they touch; ``w = footprint * weight``."""
    n = points.shape[1]
    for i in range(n):
        x, y, z = points[0, i], points[1, i], points[2, i]
        zc = KR[2, 0] * x + KR[2, 1] * y + KR[2, 2] * z + Kt[2]
        if zc <= near:
            continue
        u = (KR[0, 0] * x + KR[0, 1] * y + KR[0, 2] * z + Kt[0]) / zc
        v = (KR[1, 0] * x + KR[1, 1] * y + KR[1, 2] * z + Kt[1]) / zc
        if u < -0.5 or u >= width - 0.5 or v < -0.5 or v >= height - 0.5:
            continue
        r, g, b = colours[0, i], colours[1, i], colours[2, i]
        if not bilinear:
            p = int(v + 0.5) * width + int(u + 0.5)
            if zc <= zbuf[p] * (1.0 + tolerance):
                _add(acc, p, r, g, b, zc, weight, 1.0)
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
                    _add(acc, p, r, g, b, zc, weight, wu * wv)


@njit(cache=True, inline="always")
def _add(acc, p, r, g, b, z, weight, footprint):  # pragma: no cover - compiled
    w = footprint * weight
    acc[p, 0] += r * w
    acc[p, 1] += g * w
    acc[p, 2] += b * w
    acc[p, 3] += z * w
    acc[p, 4] += w
    acc[p, 5] += footprint
