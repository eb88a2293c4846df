"""Reference keyframes warped into a target camera: the geometric inputs of the frame model.

For one target camera (``T_world_cam [4, 4]``, intrinsics ``W x H``) and up to ``K``
reference keyframes:

1. **Target depth** - every valid depth pixel of every reference is moved into the target
   camera and z-buffered (``scatter_reduce(amin)``, order-independent, so deterministic) at
   the target resolution. Cracks (a reference seen closer than it was captured) are filled
   from a second splat at half resolution.
2. **Depth fill** - target pixels no reference point reached (depth holes of the sensor,
   disocclusions) get a guessed depth by push-pull interpolation of inverse depth; they are
   flagged as guessed.
3. **Inverse warp** - per reference, each target pixel is projected into the reference with
   its depth; colour is sampled bicubically (and the sample's distance from the reference's
   nearest pixel centre, its *phase*, recorded: see :class:`WarpBundle`), the reference depth at that spot (nearest) is
   compared with the projected depth: agreement within :data:`VISIBILITY_TOLERANCE` (relative)
   marks the pixel *visible* in that reference (occlusion test). Where the comparison is
   impossible (the reference has no depth there, or the target depth is a guess) but the
   point projects inside the reference, the sample is *plausible*: the network may use it,
   the renderer does not count it as covered.
4. **Geometry per reference and pixel** - relative depth disagreement, the angle between the
   target ray and the reference ray at the surface point, the log distance ratio (scale
   change), the Plücker coordinates ``(d, o x d)`` of the target ray expressed in the
   reference camera frame, and the reference's baseline and rotation relative to the target
   (constant maps).

Everything is float32 torch on one device. Conventions: ``T_world_cam`` maps camera optical
coordinates (x right, y down, z forward) to the world; depth is z-depth [m], 0 = unknown.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.keyframe import Keyframe

#: Points closer than this to a camera are dropped [m].
NEAR = 0.05
#: A target pixel is visible in a reference when the reference depth there agrees with the
#: projected depth within this fraction of it.
VISIBILITY_TOLERANCE = 0.05
#: Moments of Plücker coordinates are divided by this baseline [m] (indoor baselines are cm).
MOMENT_SCALE = 0.1
#: Per-reference geometry channels: depth disagreement, angle, log scale, Plücker (6), and two
#: constants of the reference's pose relative to the target: baseline / 0.1 m, rotation / 0.1 rad.
GEOMETRY_CHANNELS = 11
#: Target channels: inverse depth [1/m], coverage, depth-is-guessed flag, unit ray direction (3).
TARGET_CHANNELS = 6
#: Per-reference geometry and target maps are sampled at every ``COARSE_STRIDE``-th pixel
#: (rows and columns ``0, 4, 8, ...``): the frame model's working resolution.
COARSE_STRIDE = 4
#: Push-pull levels of the depth fill (holes up to about 2^levels pixels across are filled).
FILL_LEVELS = 7


@dataclass
class WarpBundle:
    """Inputs of the frame model for ``B`` targets of one size (``B`` = 1 from :func:`warp_references`).

    Attributes:
        colour: ``[B, K, 3, H, W]`` warped reference colour in [0, 1], 0 where not usable.
        valid: ``[B, K, 1, H, W]`` 1 where the target pixel is visible in that reference.
        plausible: ``[B, K, 1, H, W]`` 1 where the sample is usable but not verified.
        geometry: ``[B, K, 11, h, w]`` per-reference geometry (see module docstring) at
            the pixels ``(4i, 4j)`` (:data:`COARSE_STRIDE`): ``h = ceil(H / 4)``,
            ``w = ceil(W / 4)``.
        target: ``[B, 6, h, w]`` inverse depth [1/m] (0 unknown), coverage (fraction of the
            2x2 block from that pixel on), depth guessed, ray direction; sampled like ``geometry``.
        depth: ``[B, 1, H, W]`` target z-depth [m] from the splat, 0 = unknown (not the guess).
        phase: ``[B, K, 1, H, W]`` squared distance [px^2] of the sample position in the
            reference from the nearest pixel centre (0 ... 0.5): a sample on a pixel centre
            is that pixel, one between centres is interpolated, i.e. blurred.
    """

    colour: torch.Tensor
    valid: torch.Tensor
    plausible: torch.Tensor
    geometry: torch.Tensor
    target: torch.Tensor
    depth: torch.Tensor
    phase: torch.Tensor

    @property
    def covered(self) -> torch.Tensor:
        """``bool [B, H, W]``: visible in at least one reference."""
        return self.valid.amax(dim=1)[:, 0] > 0

    def to(self, device) -> "WarpBundle":
        return WarpBundle(*(getattr(self, n).to(device) for n in _FIELDS))

    def crop(self, y0: int, x0: int, h: int, w: int) -> "WarpBundle":
        """The window ``[y0:y0+h, x0:x0+w]`` of every map (``y0``, ``x0`` multiples of
        :data:`COARSE_STRIDE`, so the coarse maps stay aligned; others raise ``ValueError``)."""
        s = COARSE_STRIDE
        if y0 % s or x0 % s:
            raise ValueError(f"crop offsets must be multiples of {s}, got ({y0}, {x0})")
        full = {n: getattr(self, n)[..., y0:y0 + h, x0:x0 + w]
                for n in ("colour", "valid", "plausible", "depth", "phase")}
        coarse = {n: getattr(self, n)[..., y0 // s:(y0 + h + s - 1) // s, x0 // s:(x0 + w + s - 1) // s]
                  for n in ("geometry", "target")}
        return WarpBundle(**full, **coarse)

    @staticmethod
    def stack(bundles: Sequence["WarpBundle"]) -> "WarpBundle":
        """Concatenate bundles of one size along ``B``."""
        return WarpBundle(*(torch.cat([getattr(b, n) for b in bundles])
                            for n in _FIELDS))


_FIELDS = ("colour", "valid", "plausible", "geometry", "target", "depth", "phase")


@lru_cache(maxsize=32)
def _pixel_rays(intrinsics: Intrinsics) -> np.ndarray:
    """``float32 [H, W, 3]`` rays ``((u - cx) / fx, (v - cy) / fy, 1)`` of pixel centres."""
    u = (np.arange(intrinsics.width, dtype=np.float64) - intrinsics.cx) / intrinsics.fx
    v = (np.arange(intrinsics.height, dtype=np.float64) - intrinsics.cy) / intrinsics.fy
    rays = np.empty((intrinsics.height, intrinsics.width, 3), np.float32)
    rays[..., 0] = u[None, :]
    rays[..., 1] = v[:, None]
    rays[..., 2] = 1.0
    return rays


_CACHE: "weakref.WeakKeyDictionary[Keyframe, dict]" = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def _reference_tensors(ref: Keyframe, device: torch.device) -> tuple:
    """``(colour [3, H, W] in [0, 1], depth [H, W], x [H, W], y [H, W])`` of a keyframe on
    ``device``, camera-frame coordinates of its depth pixels; cached while the keyframe lives
    (keyframes are never modified after insertion)."""
    key = str(device)
    with _CACHE_LOCK:
        entry = _CACHE.get(ref)
        if entry is not None and key in entry:
            return entry[key]
    d = torch.from_numpy(ref.depth).to(device)
    rays = torch.from_numpy(_pixel_rays(ref.intrinsics)).to(device)
    colour = torch.from_numpy(ref.colour).to(device).permute(2, 0, 1).float().div_(255.0).contiguous()
    value = (colour, d, rays[..., 0] * d, rays[..., 1] * d)
    with _CACHE_LOCK:
        _CACHE.setdefault(ref, {})[key] = value
    return value


def _sample_cubic(ref: Keyframe, image: torch.Tensor, u: torch.Tensor, v: torch.Tensor, device) -> torch.Tensor:
    """``[3, H, W]`` in [0, 1]: the reference colour sampled at pixel coordinates ``u, v``
    (``[H, W]``, pixel centres at integers) with bicubic interpolation (a = -0.75), edges
    replicated. Bicubic keeps the fine texture that bilinear sampling blurs: +1.0 dB over
    bilinear on exact synthetic worlds (seeds 3 and 7, ground-truth depth). On CPU OpenCV's
    SIMD ``remap`` of the uint8 keyframe (6x faster than ``grid_sample``), elsewhere torch."""
    if device.type == "cpu":
        import cv2

        out = cv2.remap(ref.colour, u.numpy(), v.numpy(), cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        return torch.from_numpy(out).permute(2, 0, 1).float().div_(255.0)
    H, W = ref.colour.shape[:2]
    grid = torch.stack([(u + 0.5) * (2.0 / W) - 1, (v + 0.5) * (2.0 / H) - 1], dim=-1)
    return F.grid_sample(image[None], grid[None], mode="bicubic", padding_mode="border",
                         align_corners=False)[0].clamp_(0.0, 1.0)


def pose_score(T_a: np.ndarray, T_b: np.ndarray) -> float:
    """Pose distance used to choose references: metres / 0.3 + view angle / 20 degrees
    (the memory's pre-ranking weights)."""
    trans = float(np.linalg.norm(T_a[:3, 3] - T_b[:3, 3]))
    c = float(np.clip(T_a[:3, 2] @ T_b[:3, 2], -1.0, 1.0))
    return trans / 0.3 + math.degrees(math.acos(c)) / 20.0


def select_references(references: Sequence[Keyframe], T_world_cam: np.ndarray, k: int) -> list[Keyframe]:
    """The ``k`` references closest to ``T_world_cam`` by :func:`pose_score` (ties by
    position in ``references``); all of them, in order, when there are at most ``k``."""
    refs = list(references)
    if len(refs) <= k:
        return refs
    order = sorted(range(len(refs)), key=lambda i: (pose_score(refs[i].T_world_cam, T_world_cam), i))
    return [refs[i] for i in sorted(order[:k])]


def _zbuffer(u: torch.Tensor, v: torch.Tensor, z: torch.Tensor, width: int, height: int, scale: int,
             buffer: torch.Tensor) -> None:
    """Splat points at continuous pixel coordinates ``u, v`` (full resolution) with depth ``z``
    (``inf`` = no point) into ``buffer`` (``[h * w + 1]``, last = discard) at ``1/scale``."""
    w = -(-width // scale)
    h = -(-height // scale)
    us = (u + 0.5) * (1.0 / scale)
    vs = (v + 0.5) * (1.0 / scale)
    inside = (us >= 0) & (us < w) & (vs >= 0) & (vs < h) & torch.isfinite(z)
    idx = torch.where(inside, vs.clamp(0, h - 1).long() * w + us.clamp(0, w - 1).long(), h * w)
    buffer.scatter_reduce_(0, idx, z, reduce="amin")


def target_depth(references: Sequence[Keyframe], T_world_cam: np.ndarray, intrinsics: Intrinsics,
                 device="cpu") -> torch.Tensor:
    """``float32 [H, W]`` z-depth [m] of the target seen through the references' depth, 0 = unknown."""
    H, W = intrinsics.height, intrinsics.width
    if not references:
        return torch.zeros(H, W, device=device)
    T_cam_world = np.linalg.inv(T_world_cam)
    full = torch.full((H * W + 1,), math.inf, dtype=torch.float32, device=device)
    half = torch.full((((H + 1) // 2) * ((W + 1) // 2) + 1,), math.inf, dtype=torch.float32, device=device)
    for ref in references:
        _, d, x, y = _reference_tensors(ref, device)
        P = intrinsics.matrix @ (T_cam_world @ ref.T_world_cam)[:3]  # [3, 4]: camera point -> [u z, v z, z]
        pts = torch.stack([x.reshape(-1), y.reshape(-1), d.reshape(-1)])  # [3, N]
        proj = torch.addmm(torch.from_numpy(P[:, 3:].astype(np.float32)).to(device),
                           torch.from_numpy(P[:, :3].astype(np.float32)).to(device), pts)
        z = proj[2]
        z = torch.where((pts[2] > 0) & (z > NEAR), z, torch.full_like(z, math.inf))
        inv_z = 1.0 / z  # 0 where no point
        u, v = proj[0] * inv_z, proj[1] * inv_z
        _zbuffer(u, v, z, W, H, 1, full)
        _zbuffer(u, v, z, W, H, 2, half)
    full = full[:-1].view(H, W)
    half = half[:-1].view((H + 1) // 2, (W + 1) // 2)
    half_up = half.repeat_interleave(2, 0).repeat_interleave(2, 1)[: intrinsics.height, : intrinsics.width]
    # A full-resolution pixel that no point hit (a crack: the surface is seen closer or more
    # obliquely than it was captured) takes the half-resolution depth, which is denser.
    depth = torch.where(torch.isfinite(full), full, half_up)
    return torch.where(torch.isfinite(depth), depth, torch.zeros_like(depth))


def fill_depth(depth: torch.Tensor, levels: int = FILL_LEVELS) -> torch.Tensor:
    """``depth [H, W]`` with holes (0) filled by push-pull interpolation of inverse depth
    (mean of the valid pixels at the finest pyramid level that has one); still 0 where the
    whole image has no depth."""
    inv = torch.where(depth > 0, 1.0 / depth.clamp_min(1e-6), torch.zeros_like(depth))[None, None]
    w = (depth > 0).float()[None, None]
    pyramid = [(inv, w)]
    for _ in range(levels):
        s_inv = F.avg_pool2d(inv * w, 2, ceil_mode=True)
        s_w = F.avg_pool2d(w, 2, ceil_mode=True)
        inv = s_inv / s_w.clamp_min(1e-6)
        w = (s_w > 0).float()
        pyramid.append((inv, w))
        if min(inv.shape[-2:]) == 1:
            break
    filled = pyramid[-1][0]
    for inv, w in reversed(pyramid[:-1]):
        up = filled.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., : inv.shape[-2], : inv.shape[-1]]
        filled = torch.where(w > 0, inv, up)
    filled = filled[0, 0]
    return torch.where(filled > 0, 1.0 / filled.clamp_min(1e-6), torch.zeros_like(filled))


def warp_references(
    references: Sequence[Keyframe],
    T_world_cam: np.ndarray,  # [4, 4] target camera optical pose
    intrinsics: Intrinsics,  # target camera; gives the output size
    k: int,
    device="cpu",
) -> WarpBundle:
    """Warp up to ``k`` references into the target camera (see the module docstring).

    ``references`` beyond ``k`` are dropped by :func:`select_references`; fewer than ``k``
    leave empty (all-invalid) slots at the end.
    """
    refs = select_references(references, T_world_cam, k)
    device = torch.device(device)
    if device.type == "cpu" and not _FORCE_TORCH:
        return _warp_cpu(refs, T_world_cam, intrinsics, k)
    return _warp_torch(refs, T_world_cam, intrinsics, k, device)


#: Tests set this to run the torch path on the CPU (the reference for the numba kernels).
_FORCE_TORCH = False


def _warp_cpu(refs: Sequence[Keyframe], T_world_cam: np.ndarray, intrinsics: Intrinsics, k: int) -> WarpBundle:
    """:func:`warp_references` on the CPU: numba kernels (:mod:`warp_kernels`) and OpenCV,
    the same arithmetic as :func:`_warp_torch` in float32."""
    import cv2

    from worldfm_ros.learned import warp_kernels as kern

    H, W = intrinsics.height, intrinsics.width
    h2, w2 = (H + 1) // 2, (W + 1) // 2
    T_cam_world = np.linalg.inv(T_world_cam)
    # References are split into two fixed groups, run on two threads when torch may use two
    # (the kernels release the GIL); each group splats into its own z-buffers, merged by
    # minimum, and each reference writes only its own slot: the bytes out depend on neither
    # the thread count nor the scheduling.
    groups = [list(range(g, len(refs), 2)) for g in range(min(2, len(refs)))]
    zbuffers = [(np.full(H * W, np.inf, np.float32), np.full(h2 * w2, np.inf, np.float32)) for _ in groups]

    def splat(g: int) -> None:
        full, half = zbuffers[g]
        for i in groups[g]:
            ref = refs[i]
            P = (intrinsics.matrix @ (T_cam_world @ ref.T_world_cam)[:3]).astype(np.float32)
            kern.zbuffer_reference(ref.depth, _pixel_rays(ref.intrinsics), P, W, H, np.float32(NEAR), full, half)

    _run_groups(splat, len(groups))
    full, half = zbuffers[0] if zbuffers else (np.full(H * W, np.inf, np.float32), np.full(h2 * w2, np.inf, np.float32))
    for other_full, other_half in zbuffers[1:]:
        np.minimum(full, other_full, out=full)
        np.minimum(half, other_half, out=half)
    observed = _merge_zbuffers(full, half, H, W)
    depth, guessed = _fill_depth_cpu(observed)
    rays = _pixel_rays(intrinsics)
    c = COARSE_STRIDE
    points = (rays[::c, ::c] * depth[::c, ::c, None]).transpose(2, 0, 1).copy()  # [3, hc, wc]
    inv_norm = 1.0 / np.sqrt(rays[::c, ::c, 0] ** 2 + rays[::c, ::c, 1] ** 2 + 1.0)
    unit = np.stack([rays[::c, ::c, 0] * inv_norm, rays[::c, ::c, 1] * inv_norm, inv_norm]).astype(np.float32)

    # Slots of references are written whole by the kernels below (every pixel, every
    # channel); only the empty slots at the end are zeroed: no memset of ~20 MB per view.
    colour = np.empty((k, 3, H, W), np.float32)
    valid = np.empty((k, 1, H, W), np.float32)
    plausible = np.empty((k, 1, H, W), np.float32)
    phase = np.empty((k, 1, H, W), np.float32)
    geometry = np.empty((k, GEOMETRY_CHANNELS) + points.shape[1:], np.float32)
    for array in (colour, valid, plausible, phase, geometry):
        array[len(refs):] = 0.0

    def warp_group(g: int) -> None:
        u = np.empty((H, W), np.float32)
        v = np.empty((H, W), np.float32)
        rel = np.empty((H, W), np.float32)
        for slot in groups[g]:
            ref = refs[slot]
            T_ref_target = np.linalg.inv(ref.T_world_cam) @ T_world_cam
            KR = (ref.intrinsics.matrix @ T_ref_target[:3]).astype(np.float32)
            kern.project_reference(depth, guessed, rays, KR, ref.depth, np.float32(NEAR),
                                   np.float32(VISIBILITY_TOLERANCE), u, v, valid[slot, 0], plausible[slot, 0],
                                   phase[slot, 0], rel)
            sampled = cv2.remap(ref.colour, u, v, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
            kern.masked_colour(sampled, valid[slot, 0], plausible[slot, 0], colour[slot])
            centre = (T_cam_world @ ref.T_world_cam)[:3, 3]
            kern.geometry_features(points, unit, centre, T_ref_target[:3, :3], T_ref_target[:3, 3], rel, c,
                                   MOMENT_SCALE, geometry[slot])

    _run_groups(warp_group, len(groups))
    # The target maps in numpy: no torch operation in the CPU warp, so torch's OpenMP
    # threads (spin-waiting between operations) never compete with the warp threads.
    target = np.empty((TARGET_CHANNELS,) + points.shape[1:], np.float32)
    hz = points[2]
    np.divide(np.float32(1.0), np.maximum(hz, np.float32(1e-3)), out=target[0])
    target[0][~(hz > 0)] = 0.0
    kern.coarse_coverage(valid, c, target[1])
    target[2] = guessed[::c, ::c]
    target[3:] = unit
    return WarpBundle(colour=torch.from_numpy(colour)[None], valid=torch.from_numpy(valid)[None],
                      plausible=torch.from_numpy(plausible)[None], geometry=torch.from_numpy(geometry)[None],
                      target=torch.from_numpy(target)[None], depth=torch.from_numpy(observed)[None, None],
                      phase=torch.from_numpy(phase)[None])


def _fill_depth_cpu(observed: np.ndarray, levels: int = FILL_LEVELS) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fill_depth` in numba (the same push-pull of inverse depth in float32): the
    filled depth ``[H, W]`` and ``bool [H, W]`` where it is a guess (nothing observed)."""
    from worldfm_ros.learned import warp_kernels as kern

    inv = np.empty_like(observed)
    weight = np.empty_like(observed)
    kern.depth_to_inverse(observed, inv, weight)
    pyramid = [(inv, weight)]
    for _ in range(levels):
        h, w = inv.shape
        inv2 = np.empty(((h + 1) // 2, (w + 1) // 2), np.float32)
        weight2 = np.empty_like(inv2)
        kern.pool_inverse_depth(inv, weight, inv2, weight2)
        inv, weight = inv2, weight2
        pyramid.append((inv, weight))
        if min(inv.shape) == 1:
            break
    filled = pyramid[-1][0]
    for inv, weight in reversed(pyramid[:-1]):
        finer = np.empty_like(inv)
        kern.pull_inverse_depth(inv, weight, filled, finer)
        filled = finer
    depth = np.empty_like(observed)
    guessed = np.empty(observed.shape, np.bool_)
    kern.inverse_to_depth(filled, observed, depth, guessed)
    return depth, guessed


_POOL = None
_POOL_LOCK = threading.Lock()


def _run_groups(fn, n: int) -> None:
    """``fn(0) ... fn(n - 1)``: on two threads when ``torch.get_num_threads() >= 2``."""
    global _POOL
    if n <= 1 or torch.get_num_threads() < 2:
        for g in range(n):
            fn(g)
        return
    with _POOL_LOCK:
        if _POOL is None:
            from concurrent.futures import ThreadPoolExecutor

            _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="worldfm-warp")
    list(_POOL.map(fn, range(n)))


def _coarse_coverage(valid: torch.Tensor) -> torch.Tensor:
    """``[1, hc, wc]``: share of the 2x2 block at each coarse sample that some reference sees."""
    c = COARSE_STRIDE
    return F.avg_pool2d(valid.amax(dim=0, keepdim=True), 2, ceil_mode=True)[0, :, ::c // 2, ::c // 2]


def _merge_zbuffers(full: np.ndarray, half: np.ndarray, H: int, W: int) -> np.ndarray:
    """``[H, W]`` depth from the full- and half-resolution z-buffers (``inf`` = empty): a
    full-resolution pixel no point hit (a crack) takes the half-resolution depth; 0 = none."""
    full = full.reshape(H, W)
    half_up = half.reshape((H + 1) // 2, (W + 1) // 2).repeat(2, 0).repeat(2, 1)[:H, :W]
    depth = np.where(np.isfinite(full), full, half_up)
    return np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)


def _warp_torch(refs: Sequence[Keyframe], T_world_cam: np.ndarray, intrinsics: Intrinsics, k: int,
                device: torch.device) -> WarpBundle:
    """:func:`warp_references` as torch operations (any device)."""
    H, W = intrinsics.height, intrinsics.width
    observed = target_depth(refs, T_world_cam, intrinsics, device)  # [H, W]
    depth = fill_depth(observed)
    guessed = (observed <= 0) & (depth > 0)
    rays = torch.from_numpy(_pixel_rays(intrinsics)).to(device).permute(2, 0, 1)  # [3, H, W]
    has_depth = depth > 0
    points = (rays * depth).view(3, -1)  # [3, H*W] target-frame points (ray z = 1)
    px, py, pz = points.view(3, H, W)
    # Geometry features at the network's working resolution: every COARSE_STRIDE-th pixel.
    cs = COARSE_STRIDE
    hx, hy, hz = px[::cs, ::cs], py[::cs, ::cs], pz[::cs, ::cs]
    rx, ry = rays[0, ::cs, ::cs], rays[1, ::cs, ::cs]
    inv_norm = torch.rsqrt(rx * rx + ry * ry + 1.0)
    ux, uy, uz = rx * inv_norm, ry * inv_norm, inv_norm  # unit rays
    point_dist = (hz / inv_norm).clamp_min(1e-6)  # |p| = z * |ray|
    known = (hz > 0).float()
    h2, w2 = hz.shape

    colour = torch.zeros(k, 3, H, W, device=device)
    valid = torch.zeros(k, 1, H, W, device=device)
    plausible = torch.zeros(k, 1, H, W, device=device)
    phase = torch.zeros(k, 1, H, W, device=device)
    geometry = torch.zeros(k, GEOMETRY_CHANNELS, h2, w2, device=device)
    T_cam_world = np.linalg.inv(T_world_cam)
    for slot, ref in enumerate(refs):
        T_ref_target = np.linalg.inv(ref.T_world_cam) @ T_world_cam
        R = T_ref_target[:3, :3].astype(np.float64)
        t = T_ref_target[:3, 3].astype(np.float64)
        Kr = ref.intrinsics
        # One matrix product projects every target point into the reference: [u z, v z, z].
        KR = Kr.matrix @ np.concatenate([R, t[:, None]], axis=1)  # [3, 4]
        proj = torch.addmm(torch.from_numpy(KR[:, 3:].astype(np.float32)).to(device),
                           torch.from_numpy(KR[:, :3].astype(np.float32)).to(device), points).view(3, H, W)
        z = proj[2]
        front = has_depth & (z > NEAR)
        inv_z = 1.0 / torch.where(front, z, torch.ones_like(z))
        u = proj[0] * inv_z
        v = proj[1] * inv_z
        inside = front & (u > -0.5) & (u < Kr.width - 0.5) & (v > -0.5) & (v < Kr.height - 0.5)
        ui = torch.round(u).clamp_(0, Kr.width - 1).long()
        vi = torch.round(v).clamp_(0, Kr.height - 1).long()
        image, ref_depth, _, _ = _reference_tensors(ref, device)
        z_ref = ref_depth.reshape(-1)[(vi * Kr.width + ui).view(-1)].view(H, W)
        ok = inside & (z_ref > 0)
        rel = torch.where(ok, (z_ref - z) * inv_z, torch.zeros_like(z))
        visible = ok & (rel.abs() <= VISIBILITY_TOLERANCE)
        maybe = inside & ~visible & ((z_ref <= 0) | guessed)
        sampled = _sample_cubic(ref, image, u, v, device)
        colour[slot] = sampled * (visible | maybe).float()
        valid[slot, 0] = visible.float()
        plausible[slot, 0] = maybe.float()
        fu = u - torch.round(u)
        fv = v - torch.round(v)
        phase[slot, 0] = fu * fu + fv * fv
        # Geometry: rays from the reference centre (in the target frame) to the surface.
        c = (T_cam_world @ ref.T_world_cam)[:3, 3]
        ax, ay, az = hx - float(c[0]), hy - float(c[1]), hz - float(c[2])
        ref_dist = torch.sqrt(ax * ax + ay * ay + az * az).clamp_min(1e-6)
        cos = ((ax * hx + ay * hy + az * hz) / (ref_dist * point_dist)).clamp(-1.0, 1.0)
        g = geometry[slot]
        g[0] = rel[::cs, ::cs].clamp(-0.25, 0.25) * 4.0
        g[1] = torch.arccos(cos) * (10.0 * known)
        g[2] = torch.log(ref_dist / point_dist).clamp(-1.0, 1.0) * (5.0 * known)
        # Plücker coordinates of the target rays in the reference frame: d = R u, m = t x d.
        dx, dy, dz = (float(R[i, 0]) * ux + float(R[i, 1]) * uy + float(R[i, 2]) * uz for i in range(3))
        g[3], g[4], g[5] = dx, dy, dz
        s = 1.0 / MOMENT_SCALE
        g[6] = (float(t[1]) * dz - float(t[2]) * dy) * s
        g[7] = (float(t[2]) * dx - float(t[0]) * dz) * s
        g[8] = (float(t[0]) * dy - float(t[1]) * dx) * s
        g[9] = float(np.linalg.norm(t)) / 0.1
        g[10] = math.acos(max(-1.0, min(1.0, (float(np.trace(R)) - 1.0) / 2.0))) / 0.1
    covered = _coarse_coverage(valid)
    inv_depth = torch.where(hz > 0, 1.0 / hz.clamp_min(1e-3), torch.zeros_like(hz))
    target = torch.cat([inv_depth[None], covered, guessed[::cs, ::cs].float()[None],
                        torch.stack([ux, uy, uz])], dim=0)
    return WarpBundle(colour=colour[None], valid=valid[None], plausible=plausible[None], geometry=geometry[None],
                      target=target[None], depth=observed[None, None], phase=phase[None])
