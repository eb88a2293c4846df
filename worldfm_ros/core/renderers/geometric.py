"""``backend: geometric`` - explicit anchors: reference depth forward-projected into the target.

Per target view:

1. every valid depth pixel of each reference is back-projected and moved into the target
   camera (optionally minus pixels on a depth discontinuity, ``edge_ratio``);
2. a z-buffer of the nearest depth per pixel is built (nearest-pixel splat);
3. each point is splatted again with a bilinear footprint over its 4 neighbouring pixels,
   kept where it lies within ``depth_tolerance`` (relative) of the z-buffer: points of one
   surface seen by several references blend, weighted by how similar each reference's view
   is to the target's (:func:`~worldfm_ros.core.renderers.splatting.view_weights`), while
   occluded surfaces are discarded;
4. a pixel is covered when the footprints kept there add up to ``min_support``; the others
   are filled by push-pull and marked not covered; depth is the z-buffer's.

Two implementations of the same passes: fused numba loops on the CPU
(:mod:`.splat_kernels`, reading the keyframes' images directly) and tensor operations on
cached point clouds for any torch device (CUDA). A target that magnifies its references is
splatted at the references' resolution and upsampled (:func:`splat_intrinsics`); a target
much smaller than its references is splatted from cached halved copies of them
(``level_of_detail``, :func:`reference_level`), so its cost follows its own size.

Determinism: the same inputs give the same bytes, whatever the cache state or thread count.
The z-buffer is a minimum (order-independent); the blend sums are added in a fixed order
(CPU loops and CPU ``index_add_`` run sequentially; references are split into two fixed
groups whose sums are added in group order) and on CUDA, whose scatter-adds are atomic and
unordered, in exact 64-bit fixed point.
:class:`worldfm_ros.core.renderers.reference.ReferenceGeometricRenderer` is the plain numpy
version of the same algorithm, kept as the test oracle.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch

from worldfm_ros.core.camera import Intrinsics, validate_image_size
from worldfm_ros.core.errors import EmptyMemoryError, InvalidPoseError
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.pose import invert_pose, validate_pose_matrix
from worldfm_ros.core.renderers.base import RenderResult, _check_batch, render_views_one_by_one
from worldfm_ros.core.renderers.hole_filling import push_pull
from worldfm_ros.core.renderers.splatting import NEAR_PLANE, front_depth, reference_points, view_weights

#: Targets whose focal length exceeds the finest reference's by more than this are splatted
#: at a smaller size and upsampled (see :func:`splat_intrinsics`).
MAX_MAGNIFICATION = 1.1

#: Coarsest level of detail a reference is drawn at, and the smallest side a level may have.
MAX_REFERENCE_LEVEL = 4
MIN_LEVEL_SIDE = 8

#: Pyramid levels of the push-pull fill (holes up to ~2**10 pixels across).
PUSH_PULL_LEVELS = 10

#: Fixed groups the references are split into on the numba path (one per thread).
_GROUPS = 2

#: A batch is rendered in about this many chunks of views, one compiled call each (the
#: threads take chunks one at a time).
_BATCH_CHUNKS = 8

#: At most about this many bytes of references are packed for the batch kernel at once.
_MAX_PACKED_BYTES = 64 << 20

#: Working buffers of targets up to this many pixels are kept between renders.
_MAX_KEPT_SCRATCH_PIXELS = 1 << 20

#: Fixed-point scale of the blend sums (2**20: weights resolve to 1e-6, sums stay < 2**63).
_FIXED_POINT = float(2**20)


@dataclass(frozen=True)
class GeometricConfig:
    """Parameters of the geometric renderer.

    Attributes:
        depth_tolerance: points within this fraction of the nearest depth at a pixel blend.
        edge_ratio: reference pixels whose 3x3 depth neighbourhood spans more than this
            fraction are dropped (depth discontinuities); 0 keeps every valid pixel. Off by
            default: on 7-Scenes redkitchen dropping them at 0.05 cost 0.12 dB (parallax
            policy) and 0.19 dB (pose policy).
        angle_scale_deg: view-weight fall-off with the angle between optical axes [deg]
            (see :func:`~worldfm_ros.core.renderers.splatting.view_weights`).
        distance_scale: view-weight fall-off with the distance between camera centres [m].
        fill_holes: push-pull fill of pixels no point reached.
        footprint: ``"bilinear"`` (each point spreads over its 4 neighbouring pixels) or
            ``"point"`` (nearest pixel only; faster, more aliasing and cracks).
        min_support: a pixel counts as covered when the footprint weights of the points
            kept there add up to at least this (1 = one whole point).
        kernel: ``"numba"`` (fused CPU loops, :mod:`.splat_kernels`), ``"torch"`` (tensor ops,
            any device) or ``"auto"`` (numba on CPU when it is installed, else torch).
        threads: CPU threads of the numba kernels, 1 or 2 (the references are split into
            two fixed groups; with 2 threads the groups run in parallel, with the same bytes
            out).
        cache_size: per-reference data kept (LRU): point clouds on the torch path, depth-edge
            masks on the numba path, levels of detail.
        level_of_detail: a target much smaller than its references (in focal length) is
            splatted from a halved copy of each reference, halved again while the copy's
            focal length stays at least ``level_of_detail`` times the target's
            (:func:`reference_level`, :func:`halve_keyframe`): with 2 (the default), a 64x48
            or 80x60 view of 320x240 keyframes draws a quarter of their points, so the cost
            follows the target's size rather than the references'. 0 turns it off. Single
            and batched renders take the same levels (the same bytes).
    """

    depth_tolerance: float = 0.03
    edge_ratio: float = 0.0
    angle_scale_deg: float = 2.0
    distance_scale: float = 0.02
    fill_holes: bool = True
    footprint: str = "bilinear"
    min_support: float = 0.25
    cache_size: int = 256
    kernel: str = "auto"
    threads: int = 2
    level_of_detail: float = 2.0


def validate_render_inputs(references: Sequence[Keyframe], T_world_cam: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Common checks of every renderer; returns the poses as float64 ``[B, 4, 4]``."""
    if len(references) == 0:
        raise EmptyMemoryError("no reference keyframe to render from", 0)
    T = np.asarray(T_world_cam, dtype=np.float64)
    if T.ndim != 3 or T.shape[1:] != (4, 4) or T.shape[0] == 0:
        raise InvalidPoseError(f"target poses must be [B, 4, 4] with B >= 1, got shape {T.shape}", T.shape)
    for pose in T:
        validate_pose_matrix(pose)
    validate_image_size(intrinsics.width, intrinsics.height)
    return T


def splat_intrinsics(references: Sequence[Keyframe], target: Intrinsics) -> Intrinsics:
    """The camera the points are splatted in: ``target``, or ``target`` shrunk so that its
    focal length is no longer than the finest reference's.

    A target that magnifies its references (a 640x480 view of 320x240 keyframes) would
    otherwise get a point every other pixel: most pixels would have no footprint support,
    be push-pull filled and count as uncovered (0.35 coverage measured there, 0.09 at
    1280x960). Rendering at the references' resolution and upsampling shows the same detail,
    keeps ``covered`` meaningful and costs what the smaller view costs.
    """
    finest = max(max(ref.intrinsics.fx, ref.intrinsics.fy) for ref in references)
    magnification = max(target.fx, target.fy) / finest
    if magnification <= MAX_MAGNIFICATION:
        return target
    width = max(1, int(round(target.width / magnification)))
    height = max(1, int(round(target.height / magnification)))
    return target.resized(width, height)


def reference_level(reference: Intrinsics, target: Intrinsics, oversampling: float) -> int:
    """How many times a reference can be halved for a target: the largest ``level`` (at most
    :data:`MAX_REFERENCE_LEVEL`) whose focal length ``f / 2**level`` is still at least
    ``oversampling`` times the target's and whose sides keep :data:`MIN_LEVEL_SIDE` pixels;
    0 when ``oversampling <= 0``. At equal depth that is at least ``oversampling**2``
    reference samples per target pixel (1 is the least the bilinear footprint needs for
    ``min_support``; at 1, though, 160x120 views of 320x240 keyframes scored 1.8 dB lower
    against the exact images and lost 3 % coverage, measured, hence the default 2)."""
    if not oversampling > 0:
        return 0
    ratio = max(reference.fx, reference.fy) / (oversampling * max(target.fx, target.fy))
    level = 0
    while (level < MAX_REFERENCE_LEVEL and ratio >= 2.0 ** (level + 1)
           and min(reference.width, reference.height) >> (level + 1) >= MIN_LEVEL_SIDE):
        level += 1
    return level


def halve_keyframe(keyframe: Keyframe, depth_tolerance: float) -> Keyframe:
    """The keyframe at half its resolution (:func:`~.splat_kernels.halve_rgbd`: each 2x2
    block's front surface averaged); same pose, stamp and id."""
    from worldfm_ros.core.renderers import splat_kernels

    h, w = keyframe.depth.shape
    depth = np.empty((h // 2, w // 2), np.float32)
    colour = np.empty((h // 2, w // 2, 3), np.uint8)
    splat_kernels.halve_rgbd(np.ascontiguousarray(keyframe.depth, np.float32),
                             np.ascontiguousarray(keyframe.colour, np.uint8), float(depth_tolerance), depth, colour)
    K = keyframe.intrinsics
    # Pixel (x, y) of the half image is the block (2x..2x+1, 2y..2y+1): centre 2x + 0.5.
    half = Intrinsics(fx=K.fx / 2, fy=K.fy / 2, cx=(K.cx - 0.5) / 2, cy=(K.cy - 0.5) / 2, width=w // 2, height=h // 2)
    return Keyframe(colour, depth, half, keyframe.T_world_cam, keyframe.stamp, id=keyframe.id)


def upsample_views(rgb: np.ndarray, depth: np.ndarray, covered: np.ndarray, width: int, height: int):
    """``[B, h, w, ...]`` views -> ``[B, height, width, ...]``: colour bilinear, depth and
    coverage nearest (interpolated depth across an edge would be a surface nobody saw)."""
    B = len(rgb)
    size = (width, height)
    rgb_up = np.empty((B, height, width, 3), np.uint8)
    depth_up = np.empty((B, height, width), np.float32)
    covered_up = np.empty((B, height, width), bool)
    for b in range(B):
        cv2.resize(rgb[b], size, dst=rgb_up[b], interpolation=cv2.INTER_LINEAR)
        cv2.resize(depth[b], size, dst=depth_up[b], interpolation=cv2.INTER_NEAREST)
        cv2.resize(covered[b].view(np.uint8), size, dst=covered_up[b].view(np.uint8), interpolation=cv2.INTER_NEAREST)
    return rgb_up, depth_up, covered_up


class _Scratch:
    """Reusable float32 working buffers of the numba path for one target size."""

    def __init__(self, H: int, W: int, groups: int):
        from worldfm_ros.core.renderers import splat_kernels

        self.key = (H, W, groups)
        # One array per kind (the batch kernel takes them whole), one row per group.
        self.zbufs = np.empty((groups, H * W), np.float32)
        self.accs = np.empty((groups, H * W, splat_kernels.ACC_CHANNELS), np.float32)
        self.limit = np.empty(H * W, np.float32)
        self.colour = np.empty((3, H, W), np.float32)
        self.confidence = np.empty((H, W), np.float32)
        self.filled = np.empty((3, H, W), np.float32)
        self.work = np.empty(splat_kernels.push_pull_workspace_size(H, W, PUSH_PULL_LEVELS), np.float32)


def _packing_runs(references_per_view, max_bytes: int) -> list[tuple[int, int]]:
    """``[(first, end), ...]``: consecutive runs of views whose distinct references take at
    most ``max_bytes`` packed (8 bytes a pixel), each at least one view."""
    runs = []
    first, seen, size = 0, set(), 0
    for view, refs in enumerate(references_per_view):
        new = {id(ref): ref.depth.size * 8 for ref in refs if id(ref) not in seen}
        if view > first and size + sum(new.values()) > max_bytes:
            runs.append((first, view))
            first, seen, size = view, set(), 0
            new = {id(ref): ref.depth.size * 8 for ref in refs}
        seen.update(new)
        size += sum(new.values())
    runs.append((first, len(references_per_view)))
    return runs


class _PackedReferences:
    """The distinct references of a batch packed one after the other into three flat arrays
    (depth ``float32``, colour ``uint8``, drawn-pixel mask ``uint8``), the layout
    :func:`~.splat_kernels.render_views_rgbd` reads; ``index[id(keyframe)]`` is a
    reference's position."""

    def __init__(self, renderer: "GeometricRenderer", references_per_view):
        unique: dict[int, Keyframe] = {}
        for refs in references_per_view:
            for ref in refs:
                unique.setdefault(id(ref), ref)
        refs = list(unique.values())
        self.index = {key: i for i, key in enumerate(unique)}
        self.heights = np.array([ref.depth.shape[0] for ref in refs], np.int64)
        self.widths = np.array([ref.depth.shape[1] for ref in refs], np.int64)
        sizes = self.heights * self.widths
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        total = int(sizes.sum())
        self.depths = np.empty(total, np.float32)
        self.colours = np.empty(3 * total, np.uint8)
        self.keeps = np.empty(total, np.uint8)
        for ref, start, size in zip(refs, self.offsets.tolist(), sizes.tolist()):
            self.depths[start : start + size] = ref.depth.reshape(-1)
            self.colours[3 * start : 3 * (start + size)] = ref.colour.reshape(-1)
            self.keeps[start : start + size] = renderer._drawn_pixels(ref)[0].reshape(-1)


def _batch_jobs(renderer: "GeometricRenderer", references_per_view, packed: _PackedReferences, T: np.ndarray,
                K: Intrinsics):
    """``(job_starts [B + 1], job_refs [J], job_C [J, 3, 3], job_b [J, 3], job_weights [J])``:
    each view's (reference, projection, weight) in its reference order, computed as
    :meth:`GeometricRenderer._render_one_numba` computes them (the same numbers)."""
    cfg = renderer.config
    counts = [len(refs) for refs in references_per_view]
    starts = np.zeros(len(counts) + 1, np.int64)
    starts[1:] = np.cumsum(counts)
    J = int(starts[-1])
    job_refs = np.empty(J, np.int64)
    job_C = np.empty((J, 3, 3))
    job_b = np.empty((J, 3))
    job_weights = np.empty(J)
    K_matrix = K.matrix
    j = 0
    for refs, pose in zip(references_per_view, T):
        T_cam_world = invert_pose(pose)
        weights = view_weights([ref.T_world_cam for ref in refs], pose, cfg.angle_scale_deg, cfg.distance_scale)
        for ref, weight in zip(refs, weights):
            K_inv = renderer._drawn_pixels(ref)[1]
            T_target_ref = T_cam_world @ ref.T_world_cam
            job_C[j] = K_matrix @ T_target_ref[:3, :3] @ K_inv
            job_b[j] = K_matrix @ T_target_ref[:3, 3]
            job_refs[j] = packed.index[id(ref)]
            job_weights[j] = float(weight)
            j += 1
    return starts, job_refs, job_C, job_b, job_weights


class GeometricRenderer:
    """Forward-splatting renderer with a soft z-buffer and push-pull hole filling.

    Args:
        device: ``"cpu"`` or ``"cuda"``.
        **options: fields of :class:`GeometricConfig`.
    """

    name = "geometric"

    def __init__(self, device: str = "cpu", **options):
        self.config = GeometricConfig(**options)
        self.device = torch.device(device)
        self._cache: OrderedDict[int, tuple[Keyframe, torch.Tensor, torch.Tensor]] = OrderedDict()
        self._masks: OrderedDict[int, tuple[Keyframe, np.ndarray, np.ndarray]] = OrderedDict()
        self._levels: OrderedDict[tuple[int, int], tuple[Keyframe, Keyframe]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._threads = min(_GROUPS, max(1, int(self.config.threads)))
        self._pool = None
        self._local = threading.local()

    # ------------------------------------------------------------------ point clouds
    def _cloud(self, keyframe: Keyframe) -> tuple[torch.Tensor, torch.Tensor]:
        """``(points [3, N], colours [3, N])`` of a reference, float32 on the device."""
        key = id(keyframe)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] is keyframe:
                self._cache.move_to_end(key)
                return hit[1], hit[2]
        points, colours = reference_points(keyframe, self.config.edge_ratio)
        entry = (
            keyframe,
            torch.from_numpy(np.ascontiguousarray(points.T)).to(self.device),  # [3, N] world
            torch.from_numpy(np.ascontiguousarray(colours.T)).to(self.device),  # [3, N] 0..255
        )
        with self._cache_lock:
            self._cache[key] = entry
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        return entry[1], entry[2]

    def _at_level(self, keyframe: Keyframe, level: int) -> Keyframe:
        """``keyframe`` halved ``level`` times (cached per keyframe and level)."""
        if level == 0:
            return keyframe
        key = (id(keyframe), level)
        with self._cache_lock:
            hit = self._levels.get(key)
            if hit is not None and hit[0] is keyframe:
                self._levels.move_to_end(key)
                return hit[1]
        halved = halve_keyframe(self._at_level(keyframe, level - 1), self.config.depth_tolerance)
        with self._cache_lock:
            self._levels[key] = (keyframe, halved)
            while len(self._levels) > self.config.cache_size:
                self._levels.popitem(last=False)
        return halved

    def drawn_references(self, references: Sequence[Keyframe], K: Intrinsics) -> list[Keyframe]:
        """What is splatted for the splat camera ``K``: each reference at its level of detail
        (:func:`reference_level`), or as it is when ``level_of_detail`` is 0."""
        return [self._at_level(ref, reference_level(ref.intrinsics, K, self.config.level_of_detail))
                for ref in references]

    # ------------------------------------------------------------------ rendering
    @torch.inference_mode()
    def render(
        self,
        references: Sequence[Keyframe],
        T_world_cam: np.ndarray,  # [B, 4, 4] target camera optical poses
        intrinsics: Intrinsics,  # shared by all targets; gives the output size
    ) -> RenderResult:
        T = validate_render_inputs(references, T_world_cam, intrinsics)
        K = splat_intrinsics(references, intrinsics)
        drawn = self.drawn_references(references, K)
        # The numba kernels read the keyframes' images directly; the torch path works on
        # cached point clouds.
        clouds = None if self._use_numba else [self._cloud(ref) for ref in drawn]
        B, H, W = len(T), K.height, K.width
        rgb = np.empty((B, H, W, 3), np.uint8)
        depth = np.empty((B, H, W), np.float32)
        covered = np.empty((B, H, W), bool)
        for b, pose in enumerate(T):
            if clouds is None:
                self._render_one_numba(drawn, pose, K, rgb[b], depth[b], covered[b])
            else:
                rgb[b], depth[b], covered[b] = self._render_one_torch(drawn, clouds, pose, K)
        if K != intrinsics:
            rgb, depth, covered = upsample_views(rgb, depth, covered, intrinsics.width, intrinsics.height)
        return RenderResult(
            rgb=rgb,
            depth=depth,
            covered=covered,
            coverage=covered.reshape(B, -1).mean(axis=1).astype(np.float32),
            reference_ids=[int(ref.id) for ref in references],
        )

    def render_batch(
        self,
        references_per_view: Sequence[Sequence[Keyframe]],  # B lists of references
        T_world_cam: np.ndarray,  # [B, 4, 4] target camera optical poses
        intrinsics: Intrinsics,  # shared by all targets; gives the output size
    ) -> RenderResult:
        """``B`` views in one call, view ``b`` from ``references_per_view[b]``: the same bytes
        as :meth:`render` once per view (:func:`~.base.render_views_one_by_one`): one retrieval
        pass and one call for the caller; the threads take chunks of views, each chunk one
        compiled call (:meth:`_render_views_numba`), each view at its level of detail."""
        T = _check_batch(references_per_view, T_world_cam)
        for pose in T:
            validate_pose_matrix(pose)
        validate_image_size(intrinsics.width, intrinsics.height)
        if not self._use_numba:
            return render_views_one_by_one(self, references_per_view, T, intrinsics)
        B = len(T)
        splat_K = [splat_intrinsics(refs, intrinsics) for refs in references_per_view]
        rgb = np.empty((B, intrinsics.height, intrinsics.width, 3), np.uint8)
        depth = np.empty((B, intrinsics.height, intrinsics.width), np.float32)
        covered = np.empty((B, intrinsics.height, intrinsics.width), bool)
        # Views whose references call for the same splat camera are splatted together.
        for K in dict.fromkeys(splat_K):
            views = [b for b in range(B) if splat_K[b] == K]
            out = self._render_views_numba([self.drawn_references(references_per_view[b], K) for b in views],
                                           T[views], K)
            if K != intrinsics:
                out = upsample_views(*out, intrinsics.width, intrinsics.height)
            rgb[views], depth[views], covered[views] = out
        per_view = [[int(ref.id) for ref in refs] for refs in references_per_view]
        return RenderResult(
            rgb=rgb,
            depth=depth,
            covered=covered,
            coverage=covered.reshape(B, -1).mean(axis=1).astype(np.float32),
            reference_ids=list(dict.fromkeys(i for ids in per_view for i in ids)),
            reference_ids_per_view=per_view,
        )

    def _render_views_numba(self, references_per_view, T: np.ndarray, K: Intrinsics):
        """``(rgb [B, H, W, 3], depth [B, H, W], covered [B, H, W])`` at the splat camera ``K``.

        Each view goes through the passes of :meth:`_render_one_numba` in the same order (its
        two reference groups one after the other, summed in group order: the same bytes as a
        single render), but whole chunks of views run in one compiled call
        (:func:`~.splat_kernels.render_views_rgbd`) that holds no GIL: the per-view path
        returns to Python a dozen times a view, and each return waits for the GIL, up to the
        interpreter's switch interval (5 ms) when another thread of the process runs Python
        (an executor, an ingest thread). Measured in one process (32 views, median of 3,
        machine load average 7-13, so compare within a row only): with a Python thread
        spinning beside it, 25.1 / 11.8 ms per 320x240 / 160x120 view in chunks against
        31.3 / 15.2 ms with the per-view kernels (42.5 / 21.0 ms as single renders); with no
        other thread the two tie (15.8 / 11.9 against 14.5 / 11.7 ms). The kernel reads the
        references packed into flat arrays (:class:`_PackedReferences`, about 0.1 ms a view),
        for runs of views whose references fit :data:`_MAX_PACKED_BYTES`.

        The ``threads`` take chunks (about an eighth of the batch each) one at a time, each
        with its own working buffers, so a thread the OS runs less on a busy machine simply
        renders fewer chunks; the views' bytes do not depend on which thread rendered them."""
        from worldfm_ros.core.renderers import splat_kernels

        cfg = self.config
        B, H, W = len(T), K.height, K.width
        rgb = np.empty((B, H, W, 3), np.uint8)
        depth = np.empty((B, H, W), np.float32)
        covered = np.empty((B, H, W), bool)
        limit_scale = np.float32(1.0 + cfg.depth_tolerance)
        # The references are packed for a run of views at a time, so a large batch from a
        # large world never copies more than about _MAX_PACKED_BYTES of them at once.
        for first, end in _packing_runs(references_per_view, _MAX_PACKED_BYTES):
            run = references_per_view[first:end]
            packed = _PackedReferences(self, run)
            jobs = _batch_jobs(self, run, packed, T[first:end], K)
            n = end - first
            chunk = max(1, -(-n // _BATCH_CHUNKS))
            chunks = [np.arange(start, min(n, start + chunk), dtype=np.int64) for start in range(0, n, chunk)]
            next_chunk = itertools.count()  # shared by the threads (next() is atomic under the GIL)
            outputs = rgb[first:end], depth[first:end], covered[first:end]

            def run_slot(_slot: int) -> None:
                scratch = self._scratch(H, W, _GROUPS)
                for index in iter(lambda: next(next_chunk), None):
                    if index >= len(chunks):
                        return
                    splat_kernels.render_views_rgbd(
                        chunks[index], packed.depths, packed.colours, packed.keeps, packed.offsets, packed.heights,
                        packed.widths, *jobs, W, H, NEAR_PLANE, limit_scale, cfg.footprint != "point",
                        float(cfg.min_support), bool(cfg.fill_holes), PUSH_PULL_LEVELS, scratch.zbufs, scratch.accs,
                        scratch.limit, scratch.colour, scratch.confidence, scratch.filled, scratch.work, *outputs)

            self._map(run_slot, range(max(1, min(len(chunks), self._threads))))
        return rgb, depth, covered

    def _edge_mask(self, keyframe: Keyframe) -> np.ndarray:
        """``uint8 [H, W]``: the reference pixels the numba kernels draw (cached per keyframe)."""
        return self._drawn_pixels(keyframe)[0]

    def _drawn_pixels(self, keyframe: Keyframe) -> tuple[np.ndarray, np.ndarray]:
        """``(keep uint8 [H, W], K^-1 [3, 3])`` of a reference: the pixels the numba kernels
        draw and its inverse intrinsics (cached per keyframe)."""
        from worldfm_ros.core.renderers import splat_kernels

        key = id(keyframe)
        with self._cache_lock:
            hit = self._masks.get(key)
            if hit is not None and hit[0] is keyframe:
                self._masks.move_to_end(key)
                return hit[1], hit[2]
        keep = np.empty(keyframe.depth.shape, np.uint8)
        splat_kernels.edge_free_mask(keyframe.depth, self.config.edge_ratio, keep)
        K_inv = np.linalg.inv(keyframe.intrinsics.matrix)
        with self._cache_lock:
            self._masks[key] = (keyframe, keep, K_inv)
            while len(self._masks) > self.config.cache_size:
                self._masks.popitem(last=False)
        return keep, K_inv

    def _scratch(self, H: int, W: int, groups: int) -> "_Scratch":
        """Working buffers of the calling thread for ``H x W`` targets (reused across renders:
        fresh multi-megabyte arrays cost page faults, 2.7 of 12.6 ms per 320x240 view measured)."""
        scratch = getattr(self._local, "scratch", None)
        if scratch is None or scratch.key != (H, W, groups):
            scratch = _Scratch(H, W, groups)
            # Kept per calling thread (renders may run concurrently), unless it is large.
            self._local.scratch = scratch if H * W <= _MAX_KEPT_SCRATCH_PIXELS else None
        return scratch

    def _render_one_numba(self, references, T: np.ndarray, K: Intrinsics, rgb_out: np.ndarray,
                          depth_out: np.ndarray, covered_out: np.ndarray, parallel: bool = True) -> None:
        """Render one target into ``rgb_out [H, W, 3]``, ``depth_out [H, W]``, ``covered_out [H, W]``;
        ``parallel=False`` runs the reference groups one after the other in the calling thread
        (the same bytes)."""
        from worldfm_ros.core.renderers import splat_kernels

        cfg = self.config
        W, H = K.width, K.height
        T_cam_world = invert_pose(T)
        weights = view_weights([ref.T_world_cam for ref in references], T, cfg.angle_scale_deg, cfg.distance_scale)
        jobs = []
        K_matrix = K.matrix
        for ref, weight in zip(references, weights):
            keep, K_inv = self._drawn_pixels(ref)
            T_target_ref = T_cam_world @ ref.T_world_cam
            C = K_matrix @ T_target_ref[:3, :3] @ K_inv
            b = K_matrix @ T_target_ref[:3, 3]
            jobs.append((ref, keep, C, b, float(weight)))
        # The references are split into fixed groups, run on up to two threads (the kernels
        # release the GIL); each group has its own buffers, combined in group order: the
        # bytes out depend on neither the thread count nor the scheduling.
        groups = [jobs[g::_GROUPS] for g in range(min(_GROUPS, len(jobs)))]
        scratch = self._scratch(H, W, len(groups))

        def zbuffer(g):
            zbuf = scratch.zbufs[g]
            zbuf.fill(np.inf)
            for ref, keep, C, b, _ in groups[g]:
                splat_kernels.zbuffer_pass_rgbd(ref.depth, keep, C, b, W, H, NEAR_PLANE, zbuf)

        run = self._map if parallel else (lambda fn, items: [fn(item) for item in items])
        run(zbuffer, range(len(groups)))
        zbuf = scratch.zbufs[0]
        for other in scratch.zbufs[1:]:
            np.minimum(zbuf, other, out=zbuf)
        limit = np.multiply(zbuf, np.float32(1.0 + cfg.depth_tolerance), out=scratch.limit)

        def blend(g):
            acc = scratch.accs[g]
            acc.fill(0.0)
            for ref, keep, C, b, weight in groups[g]:
                splat_kernels.blend_pass_rgbd(ref.depth, ref.colour, keep, C, b, W, H, NEAR_PLANE, limit,
                                              weight, cfg.footprint != "point", acc)

        run(blend, range(len(groups)))
        acc = scratch.accs[0]
        for other in scratch.accs[1:]:
            acc += other
        colour, confidence = scratch.colour, scratch.confidence
        splat_kernels.normalise(acc, zbuf, W, cfg.min_support, colour.reshape(3, -1), depth_out.reshape(-1),
                                covered_out.reshape(-1), confidence.reshape(-1))
        if cfg.fill_holes and covered_out.any() and not covered_out.all():
            splat_kernels.push_pull(colour, confidence, PUSH_PULL_LEVELS, scratch.filled, scratch.work)
            colour = scratch.filled
        splat_kernels.to_rgb8(colour, rgb_out)

    def _map(self, fn, groups):
        groups = list(groups)
        if len(groups) == 1 or self._threads == 1:
            return [fn(g) for g in groups]
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="worldfm-splat")
        return list(self._pool.map(fn, groups))

    def _render_one_torch(self, references, clouds, T: np.ndarray, K: Intrinsics):
        cfg = self.config
        W, H = K.width, K.height
        HW = H * W
        dev = self.device
        # One matrix takes world points to (u*z, v*z, z) in the target image.
        R_cw = T[:3, :3].T
        t_cw = -R_cw @ T[:3, 3]
        KR = torch.from_numpy((K.matrix @ R_cw).astype(np.float32)).to(dev)
        Kt = torch.from_numpy((K.matrix @ t_cw).astype(np.float32)).to(dev)[:, None]
        inf = torch.tensor(float("inf"), device=dev)
        dummy = torch.tensor(HW, device=dev)

        # Pass 1: project every reference and build the z-buffer (order-independent amin).
        projected = []
        zbuf = torch.full((HW + 1,), float("inf"), device=dev)
        for points, _ in clouds:
            uvz = torch.addmm(Kt, KR, points)  # [3, N]
            z = uvz[2]
            u = uvz[0] / z
            v = uvz[1] / z
            valid = (z > NEAR_PLANE) & (u >= -0.5) & (u < W - 0.5) & (v >= -0.5) & (v < H - 0.5)
            # Off-view points go to a dummy pixel HW: no boolean indexing on the hot path.
            pix = torch.where(valid, (v + 0.5).long() * W + (u + 0.5).long(), dummy)
            z = torch.where(valid, z, inf)
            zbuf.scatter_reduce_(0, pix, z, reduce="amin")
            projected.append((pix, z, u, v, valid))

        # Pass 2: blend the points within the depth tolerance of the nearest surface.
        limit = zbuf * (1.0 + cfg.depth_tolerance)
        acc = torch.zeros((HW + 1, 5), dtype=self._acc_dtype, device=dev)
        weights = view_weights([ref.T_world_cam for ref in references], T, cfg.angle_scale_deg, cfg.distance_scale)
        for weight, (_, colours), (pix, z, u, v, valid) in zip(weights.tolist(), clouds, projected):
            if cfg.footprint == "point":
                taps = [(pix, None)]
            else:
                # Bilinear footprint: each point spreads over the 4 pixels around it.
                u0 = torch.floor(u)
                v0 = torch.floor(v)
                fu, fv = u - u0, v - v0
                taps = []
                for du, dv, wt in ((0, 0, (1 - fu) * (1 - fv)), (1, 0, fu * (1 - fv)),
                                   (0, 1, (1 - fu) * fv), (1, 1, fu * fv)):
                    uu, vv = u0 + du, v0 + dv
                    ok = valid & (uu >= 0) & (uu <= W - 1) & (vv >= 0) & (vv <= H - 1)
                    taps.append((torch.where(ok, vv.long() * W + uu.long(), dummy), wt))
            for tap_pix, tap_w in taps:
                support = (z <= limit[tap_pix]).float()  # [N]
                if tap_w is not None:
                    support = support * tap_w
                w = support * weight
                values = torch.cat([colours * w, w[None], support[None]])
                acc.index_add_(0, tap_pix, self._to_acc(values.T))  # [5, N] -> [HW + 1, 5]
        acc = acc[:HW].double() if self._fixed_point else acc[:HW]
        if self._fixed_point:
            acc[:, 4] /= _FIXED_POINT
        return self._finish(acc, zbuf[:HW], K)

    def _finish(self, acc: torch.Tensor, zbuf: torch.Tensor, K: Intrinsics):
        """Blend sums ``[HW, 5]`` (colour*w, w, footprint) and z-buffer ``[HW]`` -> rgb, depth, covered."""
        cfg = self.config
        W, H = K.width, K.height
        total = acc[:, 3]
        # A pixel is covered when stored points land on it with enough footprint weight; a
        # sliver of a neighbour's bilinear footprint is not an observation of it.
        support = acc[:, 4]
        covered = (support >= cfg.min_support) & (total > 0)
        denom = total.clamp(min=1e-30)
        colour = acc[:, :3] / denom[:, None]
        confidence = torch.where(covered, support.clamp(max=1.0), 0.0).float()
        depth_img = front_depth(zbuf.reshape(H, W).cpu().numpy(), covered.reshape(H, W).cpu().numpy())
        return self._fill_and_quantise(colour.T.float().reshape(3, H, W), covered, confidence, depth_img, K)

    def _fill_and_quantise(self, colour_img, covered, confidence, depth_img, K: Intrinsics):
        """Push-pull fill of uncovered pixels, then ``uint8`` RGB."""
        H, W = K.height, K.width
        if self.config.fill_holes and bool(covered.any()) and not bool(covered.all()):
            colour_img = push_pull(colour_img, confidence.reshape(H, W), levels=PUSH_PULL_LEVELS)
        rgb = colour_img.permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)
        return rgb.cpu().numpy(), depth_img, covered.reshape(H, W).cpu().numpy()

    @property
    def _use_numba(self) -> bool:
        if self.device.type != "cpu" or self.config.kernel == "torch":
            return False
        if self.config.kernel == "numba":
            return True
        try:
            import numba  # noqa: F401
        except ImportError:
            return False
        return True

    @property
    def _fixed_point(self) -> bool:
        # CPU index_add_ adds in index order: deterministic in float32. CUDA adds atomically in
        # any order, so there the sums are taken in exact 64-bit fixed point instead.
        return self.device.type != "cpu"

    @property
    def _acc_dtype(self) -> torch.dtype:
        return torch.long if self._fixed_point else torch.float32

    def _to_acc(self, values: torch.Tensor) -> torch.Tensor:
        if self._fixed_point:
            return torch.round(values * _FIXED_POINT).long()
        return values
