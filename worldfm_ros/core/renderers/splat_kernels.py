"""The CPU hot path of the geometric renderer as fused loops compiled by numba.

The same two passes as the torch path of :mod:`worldfm_ros.core.renderers.geometric`, one
reference pixel at a time (back-projected on the fly, no point cloud kept) instead of a
dozen whole-array operations, then the push-pull fill and the ``uint8`` conversion, so the
CPU path runs no torch operation at all (torch's intra-op threads stall each other on a
loaded 2-core machine: 12 ms for one 320x240 ``avg_pool2d`` was measured there). On a
2-core CPU this is what makes 320x240 views from four 320x240 references fit in a robot's
control loop.

Loops run in a fixed order and accumulate in float32 (a pixel gathers a few dozen samples at
most: the sums keep 6 significant digits), so results are deterministic.
Compiled on first use (``cache=True`` keeps the machine code in ``__pycache__``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Channels of the blend sums: colour * w (3), w, footprint support. (Depth comes from the
#: z-buffer: a sixth channel for a blended depth made the blend pass 30 % slower, measured.)
ACC_CHANNELS = 5


@njit(cache=True, nogil=True)
def edge_free_mask(depth, edge_ratio, keep):  # pragma: no cover - compiled
    """``keep[y, x] = 1`` for valid depth whose 3x3 neighbourhood (border replicated) spans at
    most ``edge_ratio`` of it (max over all neighbours, min over the valid ones): the same
    rule as ``splatting.discontinuity_mask``. Separable: a row pass, then a column pass."""
    h, w = depth.shape
    if edge_ratio <= 0:
        for y in range(h):
            for x in range(w):
                keep[y, x] = 1 if depth[y, x] > 0 else 0
        return
    big = np.float32(3.0e38)
    lo_row = np.empty((h, w), np.float32)
    hi_row = np.empty((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            lo = big
            hi = np.float32(0.0)
            for dx in range(-1, 2):
                n = depth[y, min(max(x + dx, 0), w - 1)]
                if n > hi:
                    hi = n
                if n > 0 and n < lo:
                    lo = n
            lo_row[y, x] = lo
            hi_row[y, x] = hi
    limit = 1.0 + edge_ratio
    for y in range(h):
        for x in range(w):
            if depth[y, x] <= 0:
                keep[y, x] = 0
                continue
            lo = big
            hi = np.float32(0.0)
            for dy in range(-1, 2):
                yy = min(max(y + dy, 0), h - 1)
                if hi_row[yy, x] > hi:
                    hi = hi_row[yy, x]
                if lo_row[yy, x] < lo:
                    lo = lo_row[yy, x]
            keep[y, x] = 1 if hi <= lo * limit else 0


@njit(cache=True, nogil=True)
def zbuffer_pass_rgbd(depth, keep, C, b, width, height, near, zbuf):  # pragma: no cover
    """Nearest-pixel z-buffer ``zbuf[v * W + u] = min(z)`` (float32) of a reference depth image.

    A reference pixel ``(x, y)`` of depth ``d`` lands at ``(u*z, v*z, z) = d * C @ (x, y, 1) + b``
    in the target image: ``C [3, 3] = K_target R_target_ref K_ref^-1``, ``b [3] = K_target t``."""
    h, w = depth.shape
    # Constants in locals: numba cannot prove that the output arrays do not alias C and b,
    # and would reload them on every pixel (10 % slower, measured).
    c00, c01, c02 = C[0, 0], C[0, 1], C[0, 2]
    c10, c11, c12 = C[1, 0], C[1, 1], C[1, 2]
    c20, c21, c22 = C[2, 0], C[2, 1], C[2, 2]
    b0, b1, b2 = b[0], b[1], b[2]
    for y in range(h):
        for x in range(w):
            if keep[y, x] == 0:
                continue
            d = depth[y, x]
            zc = d * (x * c20 + y * c21 + c22) + b2
            if zc <= near:
                continue
            iz = 1.0 / zc
            u = (d * (x * c00 + y * c01 + c02) + b0) * iz
            v = (d * (x * c10 + y * c11 + c12) + b1) * iz
            if u < -0.5 or u >= width - 0.5 or v < -0.5 or v >= height - 0.5:
                continue
            p = int(v + 0.5) * width + int(u + 0.5)
            z32 = np.float32(zc)
            # Branch-free: which reference is in front is a coin toss where several overlap,
            # and a mispredicted branch cost more than the store (measured).
            zbuf[p] = min(zbuf[p], z32)


@njit(cache=True, nogil=True)
def blend_pass_rgbd(depth, colour, keep, C, b, width, height, near, limit, weight, bilinear,
                    acc):  # pragma: no cover - compiled
    """Accumulate ``acc[p] += (r*w, g*w, b*w, w, footprint)`` (float32 ``[HW, 5]``) for
    the reference pixels whose depth is at most ``limit[p]`` (the z-buffer widened by the
    depth tolerance) at each target pixel ``p`` their bilinear (or nearest, ``bilinear=False``)
    footprint touches; ``w = footprint * weight``.

    The projection is written out here and in :func:`zbuffer_pass_rgbd` rather than shared:
    a helper returning a tuple made this loop twice as slow (numba 0.68, measured).
    """
    h, w = depth.shape
    weight = np.float32(weight)
    # Constants in locals: numba cannot prove that the output arrays do not alias C and b,
    # and would reload them on every pixel (10 % slower, measured).
    c00, c01, c02 = C[0, 0], C[0, 1], C[0, 2]
    c10, c11, c12 = C[1, 0], C[1, 1], C[1, 2]
    c20, c21, c22 = C[2, 0], C[2, 1], C[2, 2]
    b0, b1, b2 = b[0], b[1], b[2]
    for y in range(h):
        for x in range(w):
            if keep[y, x] == 0:
                continue
            d = depth[y, x]
            zc = d * (x * c20 + y * c21 + c22) + b2
            if zc <= near:
                continue
            iz = 1.0 / zc
            u = (d * (x * c00 + y * c01 + c02) + b0) * iz
            v = (d * (x * c10 + y * c11 + c12) + b1) * iz
            if u < -0.5 or u >= width - 0.5 or v < -0.5 or v >= height - 0.5:
                continue
            r = np.float32(colour[y, x, 0])
            g = np.float32(colour[y, x, 1])
            bl = np.float32(colour[y, x, 2])
            z32 = np.float32(zc)
            if not bilinear:
                p = int(v + 0.5) * width + int(u + 0.5)
                if z32 <= limit[p]:
                    acc[p, 0] += r * weight
                    acc[p, 1] += g * weight
                    acc[p, 2] += bl * weight
                    acc[p, 3] += weight
                    acc[p, 4] += 1.0
                continue
            u0 = np.floor(u)
            v0 = np.floor(v)
            fu = np.float32(u - u0)
            fv = np.float32(v - v0)
            gu = np.float32(1.0) - fu
            gv = np.float32(1.0) - fv
            iu = int(u0)
            iv = int(v0)
            if iu >= 0 and iu < width - 1 and iv >= 0 and iv < height - 1:
                # All four taps inside the image (nearly every point): written out, the same
                # sums as the general loop below (each tap adds to its own pixel).
                q = iv * width + iu
                if z32 <= limit[q]:
                    footprint = gu * gv
                    wt = footprint * weight
                    acc[q, 0] += r * wt
                    acc[q, 1] += g * wt
                    acc[q, 2] += bl * wt
                    acc[q, 3] += wt
                    acc[q, 4] += footprint
                q += 1
                if z32 <= limit[q]:
                    footprint = fu * gv
                    wt = footprint * weight
                    acc[q, 0] += r * wt
                    acc[q, 1] += g * wt
                    acc[q, 2] += bl * wt
                    acc[q, 3] += wt
                    acc[q, 4] += footprint
                q += width - 1
                if z32 <= limit[q]:
                    footprint = gu * fv
                    wt = footprint * weight
                    acc[q, 0] += r * wt
                    acc[q, 1] += g * wt
                    acc[q, 2] += bl * wt
                    acc[q, 3] += wt
                    acc[q, 4] += footprint
                q += 1
                if z32 <= limit[q]:
                    footprint = fu * fv
                    wt = footprint * weight
                    acc[q, 0] += r * wt
                    acc[q, 1] += g * wt
                    acc[q, 2] += bl * wt
                    acc[q, 3] += wt
                    acc[q, 4] += footprint
                continue
            for dv in range(2):
                vv = iv + dv
                if vv < 0 or vv > height - 1:
                    continue
                for du in range(2):
                    uu = iu + du
                    if uu < 0 or uu > width - 1:
                        continue
                    q = vv * width + uu
                    if z32 <= limit[q]:
                        footprint = (fu if du else gu) * (fv if dv else gv)
                        wt = footprint * weight
                        acc[q, 0] += r * wt
                        acc[q, 1] += g * wt
                        acc[q, 2] += bl * wt
                        acc[q, 3] += wt
                        acc[q, 4] += footprint


@njit(cache=True, nogil=True)
def normalise(acc, zbuf, width, min_support, colour, depth, covered, confidence):  # pragma: no cover
    """Blend sums ``acc [HW, 5]`` -> ``colour [3, HW]`` (weighted mean), ``covered [HW]``
    (footprint support >= ``min_support``), ``confidence [HW]`` in [0, 1] and ``depth [HW]``:
    the z-buffer ``zbuf [HW]`` (nearest surface splatted to the pixel) at covered pixels, its
    3x3 minimum where only a neighbour's footprint reached (the same rule as
    ``splatting.front_depth``), 0 elsewhere."""
    n = acc.shape[0]
    height = n // width
    for p in range(n):
        total = acc[p, 3]
        support = acc[p, 4]
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
            confidence[p] = min(support, 1.0)
            z = zbuf[p]
            if not z < np.inf:
                y = p // width
                x = p - y * width
                for yy in range(max(y - 1, 0), min(y + 2, height)):
                    for xx in range(max(x - 1, 0), min(x + 2, width)):
                        z = min(z, zbuf[yy * width + xx])
            depth[p] = z if z < np.inf else 0.0
        else:
            covered[p] = False
            depth[p] = 0.0
            confidence[p] = 0.0


def pyramid_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """Level sizes of the push-pull pyramid: halved with odd sizes rounded up, at most
    ``levels`` levels, the last one 1 pixel high or wide (or level ``levels - 1``)."""
    sizes = [(height, width)]
    while len(sizes) < levels and min(sizes[-1]) > 1:
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def push_pull_workspace_size(height: int, width: int, levels: int) -> int:
    """float32 elements of the ``work`` buffer :func:`push_pull` needs."""
    return 4 * sum(h * w for h, w in pyramid_sizes(height, width, levels))


@njit(cache=True, nogil=True)
def push_pull(colour, weight, levels, out, work):  # pragma: no cover - compiled
    """Fill ``colour [3, H, W]`` where ``weight [H, W]`` (in [0, 1]) is low, into ``out``.

    The same scheme as :func:`worldfm_ros.core.renderers.hole_filling.push_pull` (its
    docstring explains it): 2x2 averages with odd sizes rounded up (``avg_pool2d``
    ``ceil_mode``), partly known coarse cells saturated to known, bilinear upsampling with
    half-pixel centres (``align_corners=False``). Every level lives in ``work`` (float32,
    :func:`push_pull_workspace_size` elements): premultiplied colour then weight per level;
    the pull pass overwrites each level's colour with its filled version.
    """
    H, W = weight.shape
    # Level sizes and offsets into work.
    hs = [H]
    ws = [W]
    while len(hs) < levels and min(hs[-1], ws[-1]) > 1:
        hs.append((hs[-1] + 1) // 2)
        ws.append((ws[-1] + 1) // 2)
    n = len(hs)
    offsets = [0]
    for i in range(n):
        offsets.append(offsets[-1] + 4 * hs[i] * ws[i])
    c0 = work[offsets[0] : offsets[0] + 3 * H * W].reshape((3, H, W))
    w0 = work[offsets[0] + 3 * H * W : offsets[1]].reshape((H, W))
    for y in range(H):
        for x in range(W):
            wt = weight[y, x]
            w0[y, x] = wt
            for k in range(3):
                c0[k, y, x] = colour[k, y, x] * wt
    # Push: average 2x2 blocks down the pyramid.
    for i in range(1, n):
        ph, pw_ = hs[i - 1], ws[i - 1]
        nh, nw = hs[i], ws[i]
        pc = work[offsets[i - 1] : offsets[i - 1] + 3 * ph * pw_].reshape((3, ph, pw_))
        pw = work[offsets[i - 1] + 3 * ph * pw_ : offsets[i]].reshape((ph, pw_))
        nc = work[offsets[i] : offsets[i] + 3 * nh * nw].reshape((3, nh, nw))
        nwt = work[offsets[i] + 3 * nh * nw : offsets[i + 1]].reshape((nh, nw))
        for y in range(nh):
            for x in range(nw):
                s = np.float32(0.0)
                r0 = np.float32(0.0)
                r1 = np.float32(0.0)
                r2 = np.float32(0.0)
                count = 0
                for yy in range(2 * y, min(2 * y + 2, ph)):
                    for xx in range(2 * x, min(2 * x + 2, pw_)):
                        count += 1
                        s += pw[yy, xx]
                        r0 += pc[0, yy, xx]
                        r1 += pc[1, yy, xx]
                        r2 += pc[2, yy, xx]
                s /= count
                # A coarse cell that is partly known counts as known: saturate its weight.
                scale = np.float32(min(s * 4.0, 1.0) / max(s, 1e-12))
                nwt[y, x] = s * scale
                nc[0, y, x] = r0 / count * scale
                nc[1, y, x] = r1 / count * scale
                nc[2, y, x] = r2 / count * scale
    # Pull: normalise the top level, then blend each finer level with its upsampled parent.
    top = n - 1
    th, tw = hs[top], ws[top]
    tc = work[offsets[top] : offsets[top] + 3 * th * tw].reshape((3, th, tw))
    twt = work[offsets[top] + 3 * th * tw : offsets[top + 1]].reshape((th, tw))
    for k in range(3):
        for y in range(th):
            for x in range(tw):
                tc[k, y, x] = tc[k, y, x] / max(twt[y, x], 1e-12)
    for i in range(top - 1, -1, -1):
        h, w = hs[i], ws[i]
        fh, fw = hs[i + 1], ws[i + 1]
        c = work[offsets[i] : offsets[i] + 3 * h * w].reshape((3, h, w))
        wt = work[offsets[i] + 3 * h * w : offsets[i + 1]].reshape((h, w))
        filled = work[offsets[i + 1] : offsets[i + 1] + 3 * fh * fw].reshape((3, fh, fw))
        dst = out if i == 0 else c
        sy = fh / h
        sx = fw / w
        # The column taps, the same for every row.
        x0s = np.empty(w, np.int64)
        x1s = np.empty(w, np.int64)
        axs = np.empty(w, np.float64)
        for x in range(w):
            fx = max((x + 0.5) * sx - 0.5, 0.0)
            x0s[x] = min(int(fx), fw - 1)
            x1s[x] = min(x0s[x] + 1, fw - 1)
            axs[x] = fx - x0s[x]
        for y in range(h):
            fy = max((y + 0.5) * sy - 0.5, 0.0)
            y0 = min(int(fy), fh - 1)
            y1 = min(y0 + 1, fh - 1)
            ay = fy - y0
            for x in range(w):
                rest = 1.0 - wt[y, x]
                if rest == 0.0:
                    # A fully known pixel keeps its colour (c + 0 * up is c: colours are finite
                    # and never -0); most pixels of a rendered view are.
                    if i == 0:
                        for k in range(3):
                            dst[k, y, x] = c[k, y, x]
                    continue
                x0 = x0s[x]
                x1 = x1s[x]
                ax = axs[x]
                for k in range(3):
                    up = ((1.0 - ay) * ((1.0 - ax) * filled[k, y0, x0] + ax * filled[k, y0, x1])
                          + ay * ((1.0 - ax) * filled[k, y1, x0] + ax * filled[k, y1, x1]))
                    dst[k, y, x] = c[k, y, x] + rest * up
    if top == 0:
        for k in range(3):
            for y in range(H):
                for x in range(W):
                    out[k, y, x] = c0[k, y, x]


@njit(cache=True, nogil=True)
def to_rgb8(colour, rgb):  # pragma: no cover - compiled
    """``colour [3, H, W]`` float -> ``rgb [H, W, 3]`` uint8, rounded half to even and clipped
    (as ``torch.round(...).clamp(0, 255)``)."""
    _, h, w = colour.shape
    for y in range(h):
        for x in range(w):
            for k in range(3):
                v = np.rint(colour[k, y, x])
                rgb[y, x, k] = np.uint8(0.0 if v < 0.0 else (255.0 if v > 255.0 else v))


@njit(cache=True, nogil=True)
def halve_rgbd(depth, colour, tolerance, depth_out, colour_out):  # pragma: no cover - compiled
    """One level down a reference's level-of-detail pyramid: each 2x2 block of ``depth
    [h, w]`` / ``colour [h, w, 3]`` -> one pixel of ``depth_out [h // 2, w // 2]`` /
    ``colour_out [h // 2, w // 2, 3]`` (an odd last row or column is dropped).

    The block's front surface only: the valid samples within ``tolerance`` (relative) of its
    nearest depth are averaged (depth, and colour rounded half to even); samples behind them
    are another surface and left out, so an edge block becomes a pixel of the near surface
    rather than a point floating between the two. A block without valid depth is invalid (0).
    """
    h2, w2 = depth_out.shape
    limit_scale = np.float32(1.0 + tolerance)
    for y in range(h2):
        for x in range(w2):
            nearest = np.float32(np.inf)
            for yy in range(2 * y, 2 * y + 2):
                for xx in range(2 * x, 2 * x + 2):
                    d = depth[yy, xx]
                    if d > 0 and d < nearest:
                        nearest = d
            if not nearest < np.inf:
                depth_out[y, x] = 0.0
                for k in range(3):
                    colour_out[y, x, k] = 0
                continue
            limit = nearest * limit_scale
            n = 0
            z = np.float32(0.0)
            r = np.float32(0.0)
            g = np.float32(0.0)
            b = np.float32(0.0)
            for yy in range(2 * y, 2 * y + 2):
                for xx in range(2 * x, 2 * x + 2):
                    d = depth[yy, xx]
                    if d > 0 and d <= limit:
                        n += 1
                        z += d
                        r += np.float32(colour[yy, xx, 0])
                        g += np.float32(colour[yy, xx, 1])
                        b += np.float32(colour[yy, xx, 2])
            inv = np.float32(1.0) / np.float32(n)
            depth_out[y, x] = z * inv
            colour_out[y, x, 0] = np.uint8(np.rint(r * inv))
            colour_out[y, x, 1] = np.uint8(np.rint(g * inv))
            colour_out[y, x, 2] = np.uint8(np.rint(b * inv))


@njit(cache=True, nogil=True)
def render_views_rgbd(views, depths, colours, keeps, ref_offsets, ref_heights, ref_widths, job_starts, job_refs,
                      job_C, job_b, job_weights, width, height, near, limit_scale, bilinear, min_support,
                      fill_holes, levels, zbufs, accs, limit, colour, confidence, filled, work, rgb_out, depth_out,
                      covered_out):  # pragma: no cover - compiled
    """Render the views ``views`` of a batch in one call, each through the same passes in the
    same order as the per-view path of the geometric renderer (the same bytes), without
    returning to Python between them: the GIL is taken once per call, not a dozen times per
    view (with a Python thread busy elsewhere in the process each of those can wait up to the
    interpreter's 5 ms switch interval; the renderer's ``_render_views_numba`` has figures).

    Args:
        views: ``int64 [n]``: the batch views to render, in order.
        depths, colours, keeps: the batch's references packed one after the other: depth
            ``float32``, colour ``uint8`` (3 per pixel) and drawn-pixel mask ``uint8``;
            reference ``r`` is ``ref_heights[r] x ref_widths[r]`` pixels from pixel
            ``ref_offsets[r]``.
        job_starts: ``int64 [B + 1]``: view ``v`` draws jobs ``job_starts[v]:job_starts[v + 1]``;
            job ``j`` draws reference ``job_refs[j]`` with ``job_C[j] [3, 3]``, ``job_b[j] [3]``
            (see :func:`zbuffer_pass_rgbd`) and view weight ``job_weights[j]``. A view's jobs
            form two fixed groups (even and odd positions) whose sums are combined in group
            order, as the per-view path does.
        limit_scale: ``float32`` 1 + the depth tolerance.
        zbufs ``[2, HW]``, accs ``[2, HW, ACC_CHANNELS]``, limit, colour, confidence, filled,
            work: the calling thread's working buffers (see the renderer's scratch).
        rgb_out ``uint8 [B, H, W, 3]``, depth_out ``float32 [B, H, W]``, covered_out
            ``bool [B, H, W]``: the views' rows are written.
    """
    HW = width * height
    for i in range(views.shape[0]):
        v = views[i]
        j0 = job_starts[v]
        n = job_starts[v + 1] - j0
        groups = min(2, n)
        for g in range(groups):
            zbuf = zbufs[g]
            zbuf[:] = np.inf
            for j in range(j0 + g, j0 + n, 2):
                r = job_refs[j]
                o = ref_offsets[r]
                h = ref_heights[r]
                w = ref_widths[r]
                zbuffer_pass_rgbd(depths[o : o + h * w].reshape((h, w)), keeps[o : o + h * w].reshape((h, w)),
                                  job_C[j], job_b[j], width, height, near, zbuf)
        zbuf = zbufs[0]
        if groups > 1:
            other = zbufs[1]
            for p in range(HW):
                zbuf[p] = min(zbuf[p], other[p])
        for p in range(HW):
            limit[p] = zbuf[p] * limit_scale
        for g in range(groups):
            acc = accs[g]
            acc[:] = 0.0
            for j in range(j0 + g, j0 + n, 2):
                r = job_refs[j]
                o = ref_offsets[r]
                h = ref_heights[r]
                w = ref_widths[r]
                blend_pass_rgbd(depths[o : o + h * w].reshape((h, w)),
                                colours[3 * o : 3 * (o + h * w)].reshape((h, w, 3)),
                                keeps[o : o + h * w].reshape((h, w)), job_C[j], job_b[j], width, height, near,
                                limit, job_weights[j], bilinear, acc)
        acc = accs[0]
        if groups > 1:
            other_acc = accs[1]
            for p in range(HW):
                for c in range(ACC_CHANNELS):
                    acc[p, c] += other_acc[p, c]
        covered = covered_out[v].reshape(HW)
        normalise(acc, zbuf, width, min_support, colour.reshape((3, HW)), depth_out[v].reshape(HW), covered,
                  confidence.reshape(HW))
        n_covered = 0
        for p in range(HW):
            if covered[p]:
                n_covered += 1
        if fill_holes and 0 < n_covered < HW:
            push_pull(colour, confidence, levels, filled, work)
            to_rgb8(filled, rgb_out[v])
        else:
            to_rgb8(colour, rgb_out[v])
