"""The CPU hot path of :mod:`worldfm_ros.learned.warp` as fused loops compiled by numba.

The torch implementation in ``warp.py`` runs a few hundred whole-array operations per view
(about 400 multiplications alone for eight references), each a pass over memory plus an
allocation; these kernels do the same arithmetic one pixel at a time in float32, in a fixed
order, so results are deterministic and agree with the torch path up to float rounding
(``test/test_learned.py`` checks the agreement). Compiled on first use (``cache=True``
keeps the machine code in ``__pycache__``), like the geometric renderer's kernels.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def zbuffer_reference(depth, rays, P, width, height, near, full, half):  # pragma: no cover - compiled
    """Splat one reference's depth into the target z-buffers.

    ``depth [Hr, Wr]`` reference z-depth (0 = none), ``rays [Hr, Wr, 3]`` its pixel rays
    (z = 1), ``P [3, 4]`` reference camera point -> target ``[u z, v z, z]``; ``full``
    (``[H * W]``) and ``half`` (``[ceil(H/2) * ceil(W/2)]``) keep the nearest depth per pixel
    (initialised to ``inf``). Same rules as ``warp._zbuffer``.
    """
    hr, wr = depth.shape
    w2 = (width + 1) // 2
    h2 = (height + 1) // 2
    for y in range(hr):
        for x in range(wr):
            d = depth[y, x]
            if not d > 0:
                continue
            px = rays[y, x, 0] * d
            py = rays[y, x, 1] * d
            z = P[2, 0] * px + P[2, 1] * py + P[2, 2] * d + P[2, 3]
            if not z > near:
                continue
            inv = np.float32(1.0) / z
            u = (P[0, 0] * px + P[0, 1] * py + P[0, 2] * d + P[0, 3]) * inv
            v = (P[1, 0] * px + P[1, 1] * py + P[1, 2] * d + P[1, 3]) * inv
            us = u + np.float32(0.5)
            vs = v + np.float32(0.5)
            if us >= 0 and us < width and vs >= 0 and vs < height:
                i = int(vs) * width + int(us)
                if z < full[i]:
                    full[i] = z
            us = us * np.float32(0.5)
            vs = vs * np.float32(0.5)
            if us >= 0 and us < w2 and vs >= 0 and vs < h2:
                i = int(vs) * w2 + int(us)
                if z < half[i]:
                    half[i] = z


@njit(cache=True, nogil=True)
def project_reference(depth, guessed, rays, KR, ref_depth, near, tolerance,
                      u_out, v_out, valid, plausible, phase, rel_out):  # pragma: no cover - compiled
    """Project every target pixel (``depth [H, W]``, 0 = none; ``guessed`` where filled)
    into one reference (``KR [3, 4]``: target camera point -> reference ``[u z, v z, z]``,
    ``ref_depth [Hr, Wr]``) and test visibility, as ``warp.warp_references``' torch path.

    Writes the sample position ``u_out, v_out`` (pixel centres at integers), ``valid`` (1
    where the reference's nearest depth agrees within ``tolerance``), ``plausible`` (inside
    the reference but not verifiable), ``phase`` (squared distance from the nearest pixel
    centre) and ``rel_out`` (relative depth disagreement, 0 where not comparable).
    """
    h, w = depth.shape
    hr, wr = ref_depth.shape
    one = np.float32(1.0)
    for y in range(h):
        for x in range(w):
            d = depth[y, x]
            px = rays[y, x, 0] * d
            py = rays[y, x, 1] * d
            z = KR[2, 0] * px + KR[2, 1] * py + KR[2, 2] * d + KR[2, 3]
            front = d > 0 and z > near
            inv = one / z if front else one
            u = (KR[0, 0] * px + KR[0, 1] * py + KR[0, 2] * d + KR[0, 3]) * inv
            v = (KR[1, 0] * px + KR[1, 1] * py + KR[1, 2] * d + KR[1, 3]) * inv
            u_out[y, x] = u
            v_out[y, x] = v
            inside = front and u > -0.5 and u < wr - 0.5 and v > -0.5 and v < hr - 0.5
            ru = np.float32(np.rint(u))
            rv = np.float32(np.rint(v))
            fu = u - ru
            fv = v - rv
            phase[y, x] = fu * fu + fv * fv
            ui = int(min(max(ru, 0.0), wr - 1.0)) if math.isfinite(ru) else 0
            vi = int(min(max(rv, 0.0), hr - 1.0)) if math.isfinite(rv) else 0
            z_ref = ref_depth[vi, ui]
            ok = inside and z_ref > 0
            rel = (z_ref - z) * inv if ok else np.float32(0.0)
            rel_out[y, x] = rel
            visible = ok and abs(rel) <= tolerance
            valid[y, x] = 1.0 if visible else 0.0
            plausible[y, x] = 1.0 if (inside and not visible and (z_ref <= 0 or guessed[y, x])) else 0.0


@njit(cache=True, nogil=True)
def geometry_features(points, unit_rays, centre, R, t, rel, stride, moment_scale, out):  # pragma: no cover
    """The 11 per-reference geometry channels (``warp`` module docstring) at the target pixels
    ``(stride i, stride j)``: ``points [3, hc, wc]`` target-frame surface points, ``unit_rays``,
    ``centre`` the reference camera centre in the target frame, ``R, t`` target -> reference,
    ``rel [H, W]`` the depth disagreement; writes ``out [11, hc, wc]``."""
    _, h2, w2 = points.shape
    s = 1.0 / moment_scale
    baseline = math.sqrt(t[0] * t[0] + t[1] * t[1] + t[2] * t[2]) / 0.1
    rotation = math.acos(max(-1.0, min(1.0, (R[0, 0] + R[1, 1] + R[2, 2] - 1.0) / 2.0))) / 0.1
    for y in range(h2):
        for x in range(w2):
            hx = points[0, y, x]
            hy = points[1, y, x]
            hz = points[2, y, x]
            ux = unit_rays[0, y, x]
            uy = unit_rays[1, y, x]
            uz = unit_rays[2, y, x]
            known = 1.0 if hz > 0 else 0.0
            r = rel[stride * y, stride * x]
            out[0, y, x] = min(max(r, -0.25), 0.25) * 4.0
            ax = hx - centre[0]
            ay = hy - centre[1]
            az = hz - centre[2]
            ref_dist = max(math.sqrt(ax * ax + ay * ay + az * az), 1e-6)
            point_dist = max(hz / uz, 1e-6)
            cos = min(max((ax * hx + ay * hy + az * hz) / (ref_dist * point_dist), -1.0), 1.0)
            out[1, y, x] = math.acos(cos) * 10.0 * known
            out[2, y, x] = min(max(math.log(ref_dist / point_dist), -1.0), 1.0) * 5.0 * known
            dx = R[0, 0] * ux + R[0, 1] * uy + R[0, 2] * uz
            dy = R[1, 0] * ux + R[1, 1] * uy + R[1, 2] * uz
            dz = R[2, 0] * ux + R[2, 1] * uy + R[2, 2] * uz
            out[3, y, x] = dx
            out[4, y, x] = dy
            out[5, y, x] = dz
            out[6, y, x] = (t[1] * dz - t[2] * dy) * s
            out[7, y, x] = (t[2] * dx - t[0] * dz) * s
            out[8, y, x] = (t[0] * dy - t[1] * dx) * s
            out[9, y, x] = baseline
            out[10, y, x] = rotation


@njit(cache=True, nogil=True)
def pool_inverse_depth(inv, weight, inv_out, weight_out):  # pragma: no cover - compiled
    """One push step of ``warp.fill_depth``: 2x2 means (windows cut at the border count only
    their pixels, as ``avg_pool2d(ceil_mode=True)``) of ``inv * weight`` and ``weight``;
    ``inv_out`` = their ratio (0 where no weight), ``weight_out`` = 1 where any weight."""
    h, w = inv.shape
    h2, w2 = inv_out.shape
    tiny = np.float32(1e-6)
    for y in range(h2):
        for x in range(w2):
            s_inv = np.float32(0.0)
            s_w = np.float32(0.0)
            n = 0
            for yy in range(2 * y, min(2 * y + 2, h)):
                for xx in range(2 * x, min(2 * x + 2, w)):
                    s_inv += inv[yy, xx] * weight[yy, xx]
                    s_w += weight[yy, xx]
                    n += 1
            a = s_inv / np.float32(n)
            b = s_w / np.float32(n)
            inv_out[y, x] = a / max(b, tiny)
            weight_out[y, x] = 1.0 if b > 0 else 0.0


@njit(cache=True, nogil=True)
def pull_inverse_depth(inv, weight, coarse, out):  # pragma: no cover - compiled
    """One pull step of ``warp.fill_depth``: ``inv`` where ``weight`` is set, else the
    coarser level's value of the 2x2 block (nearest upsampling)."""
    h, w = inv.shape
    for y in range(h):
        for x in range(w):
            out[y, x] = inv[y, x] if weight[y, x] > 0 else coarse[y // 2, x // 2]


@njit(cache=True, nogil=True)
def depth_to_inverse(depth, inv, weight):  # pragma: no cover - compiled
    """``inv = 1 / depth`` and ``weight = 1`` where depth > 0, both 0 elsewhere."""
    h, w = depth.shape
    for y in range(h):
        for x in range(w):
            d = depth[y, x]
            if d > 0:
                inv[y, x] = np.float32(1.0) / max(d, np.float32(1e-6))
                weight[y, x] = 1.0
            else:
                inv[y, x] = 0.0
                weight[y, x] = 0.0


@njit(cache=True, nogil=True)
def inverse_to_depth(inv, observed, depth, guessed):  # pragma: no cover - compiled
    """``depth = 1 / inv`` (0 where ``inv`` is 0) and ``guessed`` = filled where nothing was observed."""
    h, w = inv.shape
    for y in range(h):
        for x in range(w):
            f = inv[y, x]
            d = np.float32(1.0) / max(f, np.float32(1e-6)) if f > 0 else np.float32(0.0)
            depth[y, x] = d
            guessed[y, x] = observed[y, x] <= 0 and d > 0


@njit(cache=True, nogil=True)
def masked_colour(sampled, valid, plausible, out):  # pragma: no cover - compiled
    """``out [3, H, W]`` = ``sampled [H, W, 3]`` (uint8) / 255 where the sample is usable
    (``valid`` or ``plausible``), 0 elsewhere: the arithmetic of
    ``sampled.transpose(2, 0, 1) * (usable * (1 / 255))`` in one pass."""
    h, w = valid.shape
    scale = np.float32(1.0 / 255.0)
    for y in range(h):
        for x in range(w):
            m = (valid[y, x] + plausible[y, x]) * scale
            for c in range(3):
                out[c, y, x] = np.float32(sampled[y, x, c]) * m


@njit(cache=True, nogil=True)
def coarse_coverage(valid, stride, out):  # pragma: no cover - compiled
    """``out [hc, wc]``: share of the 2x2 block at pixel ``(stride i, stride j)`` that at least
    one reference sees (``valid [K, 1, H, W]``; blocks cut at the border count their pixels)."""
    k = valid.shape[0]
    h, w = valid.shape[2], valid.shape[3]
    hc, wc = out.shape
    for i in range(hc):
        for j in range(wc):
            seen = np.float32(0.0)
            n = 0
            for y in range(stride * i, min(stride * i + 2, h)):
                for x in range(stride * j, min(stride * j + 2, w)):
                    n += 1
                    for r in range(k):
                        if valid[r, 0, y, x] > 0:
                            seen += 1.0
                            break
            out[i, j] = seen / np.float32(n)
