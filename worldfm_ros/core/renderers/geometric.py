"""``backend: geometric`` - explicit anchors: reference depth forward-projected into the target.

Per target view (PyTorch, CPU or CUDA):

1. every valid, non-edge depth pixel of each reference is a coloured world point (cached per
   keyframe: keyframes never change after insertion);
2. the points are moved into the target camera and splatted to their nearest pixel;
3. a z-buffer keeps, per pixel, the points within ``depth_tolerance`` (relative) of the
   nearest one, so points of one surface seen by several references blend, weighted by how
   similar each reference's view is to the target's (axis angle and camera distance), while
   occluded surfaces are discarded;
4. pixels no point reached are filled by push-pull and marked not covered.

Determinism: the z-buffer is a ``scatter_reduce(amin)`` (order-independent) and the blend
sums are accumulated in 64-bit fixed point with integer scatter-adds, which are exact and
order-independent on every device; the same inputs give the same bytes, on CUDA too.
:class:`worldfm_ros.core.renderers.reference.ReferenceGeometricRenderer` is the plain numpy
version of the same algorithm, kept as the test oracle.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from worldfm_ros.core.camera import Intrinsics, validate_image_size
from worldfm_ros.core.errors import EmptyMemoryError, InvalidPoseError
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.pose import invert_pose, validate_pose_matrix
from worldfm_ros.core.renderers.base import RenderResult
from worldfm_ros.core.renderers.hole_filling import push_pull
from worldfm_ros.core.renderers.splatting import NEAR_PLANE, reference_points, view_weight

#: Fixed-point scale of the blend sums (2**20: weights resolve to 1e-6, sums stay < 2**63).
_FIXED_POINT = float(2**20)


@dataclass(frozen=True)
class GeometricConfig:
    """Parameters of the geometric renderer.

    Attributes:
        depth_tolerance: points within this fraction of the nearest depth at a pixel blend.
        edge_ratio: reference pixels whose 3x3 depth neighbourhood spans more than this
            fraction are dropped (depth discontinuities).
        angle_sigma_deg: view-weight fall-off with the angle between optical axes [deg].
        distance_scale: view-weight fall-off with camera distance [m].
        fill_holes: push-pull fill of pixels no point reached.
        footprint: ``"bilinear"`` (each point spreads over its 4 neighbouring pixels) or
            ``"point"`` (nearest pixel only; faster, more aliasing and cracks).
        min_support: a pixel counts as covered when the footprint weights of the points
            kept there add up to at least this (1 = one whole point).
        kernel: ``"numba"`` (fused CPU loops, :mod:`.splat_kernels`), ``"torch"`` (tensor ops,
            any device) or ``"auto"`` (numba on CPU when it is installed, else torch).
        threads: CPU threads of the numba kernels (references are split between them).
        cache_size: reference point clouds kept (LRU).
    """

    depth_tolerance: float = 0.03
    edge_ratio: float = 0.05
    angle_sigma_deg: float = 5.0
    distance_scale: float = 0.05
    fill_holes: bool = True
    footprint: str = "bilinear"
    min_support: float = 0.25
    cache_size: int = 256
    kernel: str = "auto"
    threads: int = 2



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
        self._cache_lock = threading.Lock()
        self._threads = max(1, int(self.config.threads))
        self._pool = None

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

    # ------------------------------------------------------------------ rendering
    @torch.inference_mode()
    def render(
        self,
        references: Sequence[Keyframe],
        T_world_cam: np.ndarray,  # [B, 4, 4] target camera optical poses
        intrinsics: Intrinsics,  # shared by all targets; gives the output size
    ) -> RenderResult:
        T = validate_render_inputs(references, T_world_cam, intrinsics)
        # The numba kernels read the keyframes' images directly; the torch path works on
        # cached point clouds.
        clouds = None if self._use_numba else [self._cloud(ref) for ref in references]
        rgb, depth, covered = [], [], []
        for pose in T:
            c, d, m = self._render_one(references, clouds, pose, intrinsics)
            rgb.append(c)
            depth.append(d)
            covered.append(m)
        covered_arr = np.stack(covered)
        return RenderResult(
            rgb=np.stack(rgb),
            depth=np.stack(depth),
            covered=covered_arr,
            coverage=covered_arr.reshape(len(T), -1).mean(axis=1).astype(np.float32),
            reference_ids=[int(ref.id) for ref in references],
        )

    def _render_one(self, references, clouds, T: np.ndarray, K: Intrinsics):
        if clouds is None:
            return self._render_one_numba(references, T, K)
        return self._render_one_torch(references, clouds, T, K)

    def _render_one_numba(self, references, T: np.ndarray, K: Intrinsics):
        from worldfm_ros.core.renderers import splat_kernels

        cfg = self.config
        W, H = K.width, K.height
        T_cam_world = invert_pose(T)
        jobs = []
        for ref in references:
            T_target_ref = T_cam_world @ ref.T_world_cam
            C = K.matrix @ T_target_ref[:3, :3] @ np.linalg.inv(ref.intrinsics.matrix)
            b = K.matrix @ T_target_ref[:3, 3]
            weight = view_weight(ref.T_world_cam, T, cfg.angle_sigma_deg, cfg.distance_scale)
            jobs.append((ref, C, b, weight))
        # The references are split into fixed groups, one per thread (the kernels release the
        # GIL); each group has its own buffers, combined in group order: deterministic.
        groups = [jobs[g :: self._threads] for g in range(min(self._threads, len(jobs)))]

        def zbuffer(group):
            zbuf = np.full(H * W, np.inf)
            masks = []
            for ref, C, b, _ in group:
                keep = np.empty(ref.depth.shape, np.uint8)
                splat_kernels.edge_free_mask(ref.depth, cfg.edge_ratio, keep)
                splat_kernels.zbuffer_pass_rgbd(ref.depth, keep, C, b, W, H, NEAR_PLANE, zbuf)
                masks.append(keep)
            return zbuf, masks

        first = self._map(zbuffer, groups)
        zbuf = first[0][0]
        for other, _ in first[1:]:
            np.minimum(zbuf, other, out=zbuf)

        def blend(index):
            acc = np.zeros((H * W, 6))
            for (ref, C, b, weight), keep in zip(groups[index], first[index][1]):
                splat_kernels.blend_pass_rgbd(ref.depth, ref.colour, keep, C, b, W, H, NEAR_PLANE, zbuf,
                                              cfg.depth_tolerance, weight, cfg.footprint != "point", acc)
            return acc

        accs = self._map(blend, list(range(len(groups))))
        acc = accs[0]
        for other in accs[1:]:
            acc += other
        colour = np.empty((3, H * W), np.float32)
        depth = np.empty(H * W, np.float32)
        covered = np.empty(H * W, bool)
        confidence = np.empty(H * W, np.float32)
        splat_kernels.normalise(acc, cfg.min_support, colour, depth, covered, confidence)
        return self._fill_and_quantise(torch.from_numpy(colour).reshape(3, H, W), torch.from_numpy(covered),
                                       torch.from_numpy(confidence), depth.reshape(H, W), K)

    def _map(self, fn, groups):
        if len(groups) == 1:
            return [fn(groups[0])]
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
        acc = torch.zeros((HW + 1, 6), dtype=self._acc_dtype, device=dev)
        for ref, (_, colours), (pix, z, u, v, valid) in zip(references, clouds, projected):
            weight = view_weight(ref.T_world_cam, T, cfg.angle_sigma_deg, cfg.distance_scale)
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
                values = torch.cat([colours * w, (torch.where(w > 0, z, 0.0) * w)[None], w[None], support[None]])
                acc.index_add_(0, tap_pix, self._to_acc(values.T))  # [6, N] -> [HW + 1, 6]
        acc = acc[:HW].double() if self._fixed_point else acc[:HW]
        if self._fixed_point:
            acc[:, 5] /= _FIXED_POINT
        return self._finish(acc, K)

    def _finish(self, acc: torch.Tensor, K: Intrinsics):
        """Blend sums ``[HW, 6]`` (colour*w, depth*w, w, footprint) -> rgb, depth, covered."""
        cfg = self.config
        W, H = K.width, K.height
        dev = acc.device
        total = acc[:, 4]
        # A pixel is covered when stored points land on it with enough footprint weight; a
        # sliver of a neighbour's bilinear footprint is not an observation of it.
        support = acc[:, 5]
        covered = (support >= cfg.min_support) & (total > 0)
        denom = total.clamp(min=1e-30)
        colour = acc[:, :3] / denom[:, None]
        depth = torch.where(covered, acc[:, 3] / denom, torch.zeros((), dtype=acc.dtype, device=dev))

        confidence = torch.where(covered, support.clamp(max=1.0), 0.0).float()
        depth_img = depth.reshape(H, W).float().cpu().numpy()
        return self._fill_and_quantise(colour.T.float().reshape(3, H, W), covered, confidence, depth_img, K)

    def _fill_and_quantise(self, colour_img, covered, confidence, depth_img, K: Intrinsics):
        """Push-pull fill of uncovered pixels, then ``uint8`` RGB."""
        H, W = K.height, K.width
        if self.config.fill_holes and bool(covered.any()) and not bool(covered.all()):
            colour_img = push_pull(colour_img, confidence.reshape(H, W))
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
