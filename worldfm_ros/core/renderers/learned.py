"""``backend: learned`` - the frame model of :mod:`worldfm_ros.learned` behind the Renderer interface.

Per target: up to ``K`` references (the model's slots) are warped into the target camera
(:func:`worldfm_ros.learned.warp.warp_references`), and the network blends them, paints what
no reference saw and corrects seams (:class:`worldfm_ros.learned.model.FrameModel`).
``depth`` is the references' depth splatted into the target where a reference sees the
pixel, 0 elsewhere; ``covered`` marks those pixels (not the painted ones).

Deterministic: the same poses, intrinsics and references give the same bytes (every step is
order-independent or sequential; the network runs in inference mode).

The network runs through a *runtime* (:mod:`worldfm_ros.learned.runtime`): PyTorch (default),
ONNX Runtime (CPU, CUDA or TensorRT provider) or a TensorRT engine; the warp always runs in
numba/OpenCV on the CPU and in torch on CUDA. :meth:`LearnedRenderer.render_batch` warps each
view and runs the network once on the whole batch.

Constructing one tunes the process's allocator (:mod:`worldfm_ros.core.allocator`): a view's
tens of MB of temporaries then reuse freed memory instead of page-faulting fresh pages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import EmptyMemoryError, InvalidIntrinsicsError, InvalidPoseError
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.pose import validate_pose_matrix
from worldfm_ros.core.renderers.base import RenderResult

#: The shipped checkpoint, loaded when no ``model_path`` is given.
#: Views warped and run through the network together by :meth:`LearnedRenderer.render_batch`.
NETWORK_CHUNK = 4

DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[2] / "models" / "learned_v3.pt"

#: Never-seen pixels (no reference sees them) are blended towards a blur of the rendered
#: view of this standard deviation [px] ... (see :func:`smooth_unseen`)
UNSEEN_BLUR_SIGMA = 12.0
#: ... with a weight ``1 - exp(-d / UNSEEN_DISTANCE_SCALE)`` at ``d`` px from the nearest seen pixel.
UNSEEN_DISTANCE_SCALE = 2.0


def smooth_unseen(rgb: np.ndarray, covered: np.ndarray, sigma: float = UNSEEN_BLUR_SIGMA,
                  scale: float = UNSEEN_DISTANCE_SCALE) -> np.ndarray:
    """``rgb [H, W, 3] float32`` with its never-seen pixels (``~covered [H, W]``) blended
    towards a blur of the view, more the farther they lie from a seen pixel; seen pixels are
    returned unchanged (their blend weight is exactly 0).

    Why (issue 12, session 8): off the recorded path 18-25 % of a view's pixels are seen by
    no reference, and they hold about 97 % of the learned render's squared error (dev seeds
    900002 / 900003 / 41 / 57). The network continues the surrounding surfaces into them
    (push-pull plus a learned correction), which keeps edges and texture running; where the
    truth is unknown a smoother guess has lower error. Measured on those dev seeds, over all
    views: +0.00 / +0.26 / +0.17 / +0.27 dB (but -1.5 dB on redkitchen_a leave-out, so it is
    off by default); falling back to the geometric renderer there
    instead lost 0.6-1.7 dB on three of the four (its fill is worse than the network's).

    The blur runs at quarter resolution (area-downsampled, Gaussian of ``sigma / 4``,
    bilinear back): about 0.5 ms at 320x240. Deterministic (no reductions across pixels)."""
    H, W = covered.shape
    unseen = (~covered).astype(np.uint8)
    if not unseen.any():
        return rgb
    import cv2

    dist = cv2.distanceTransform(unseen, cv2.DIST_L2, 3)  # [px] to the nearest seen pixel, 0 on seen ones
    f = 4
    small = cv2.resize(rgb, ((W + f - 1) // f, (H + f - 1) // f), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / f, borderType=cv2.BORDER_REPLICATE)
    blur = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    weight = (np.float32(1.0) - np.exp(dist * np.float32(-1.0 / scale)))[..., None]  # exactly 0 where seen
    return rgb + weight * (blur - rgb)


#: ``smooth_unseen`` modes of :class:`LearnedRenderer`: which never-seen pixels are smoothed.
UNSEEN_MODES = ("off", "disocclusion", "all")

#: A hole inside the view (its never-seen region does not touch the border) is a disocclusion when the depths seen around it span more than this ratio
#: (90th / 10th percentile): a foreground edge on one side, the background on the other.
DISOCCLUSION_DEPTH_RATIO = 1.25
#: ... and only in views whose references all have complete depth (at most this fraction of
#: pixels without depth): a rendered or exact depth source, where a gap beside an edge is a true
#: disocclusion. A depth sensor's references (7-Scenes: 7-24 % missing) leave shadows beside
#: edges, where the network's continuation from the references' colour is right.
COMPLETE_DEPTH_MAX_MISSING = 0.01


def complete_depth(references) -> bool:
    """Whether every reference has depth on all but :data:`COMPLETE_DEPTH_MAX_MISSING` of its pixels."""
    def missing(depth: np.ndarray) -> float:  # on every 4th pixel of every 4th row: 16x cheaper
        sample = depth[::4, ::4]
        return np.count_nonzero(sample <= 0) / sample.size

    return all(missing(r.depth) <= COMPLETE_DEPTH_MAX_MISSING for r in references)


def disoccluded_unseen(covered: np.ndarray, depth: np.ndarray,
                       ratio: float = DISOCCLUSION_DEPTH_RATIO) -> np.ndarray:
    """``bool [H, W]``: the never-seen pixels (``~covered``) in holes that do not touch the
    image border and whose surrounding seen depths (``depth [H, W]``, 0 = none) span more than
    ``ratio`` (90th / 10th percentile): gaps that open beside a foreground edge (the black
    streaks of issue 12), not never-seen bands along the border of a turned view, and not
    holes inside one surface."""
    import cv2

    unseen = (~covered).astype(np.uint8)
    if not unseen.any():
        return np.zeros(covered.shape, bool)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(unseen, connectivity=8)
    H, W = covered.shape
    x, y, w, h = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3]
    inside = (x > 0) & (y > 0) & (x + w < W) & (y + h < H)
    inside[0] = False  # label 0: the seen pixels
    if not inside.any():
        return np.zeros(covered.shape, bool)
    # Only the window around the holes inside the view is looked at (they are usually small).
    ids = np.flatnonzero(inside)
    y0, x0 = max(int(y[ids].min()) - 2, 0), max(int(x[ids].min()) - 2, 0)
    y1, x1 = min(int((y + h)[ids].max()) + 2, H), min(int((x + w)[ids].max()) + 2, W)
    win = labels[y0:y1, x0:x1]
    holes = np.where(inside[win], win, 0).astype(np.float32)  # labels < 2^24: exact
    # The seen pixels within 2 px of a hole, each credited to that hole (the largest label
    # around, where two holes lie that close), and the depth statistics per hole.
    around = cv2.dilate(holes, np.ones((5, 5), np.uint8))
    ring = covered[y0:y1, x0:x1] & (around > 0) & (depth[y0:y1, x0:x1] > 0)
    ring_ids, d = around[ring].astype(np.int64), depth[y0:y1, x0:x1][ring]
    gap = np.zeros(n, bool)
    if ring_ids.size:
        order = np.lexsort((d, ring_ids))
        ring_ids, d = ring_ids[order], d[order]
        first = np.flatnonzero(np.r_[True, ring_ids[1:] != ring_ids[:-1]])
        count = np.diff(np.r_[first, ring_ids.size])
        low, high = d[first + (count - 1) // 10], d[first + (9 * (count - 1)) // 10]  # 10th / 90th percentile
        gap[ring_ids[first]] = high > ratio * low
    out = np.zeros(covered.shape, bool)
    out[y0:y1, x0:x1] = gap[holes.astype(np.int64)]
    return out


def _unseen_mode(value) -> str:
    if value is True:
        return "all"
    if value is False or value is None:
        return "off"
    if value not in UNSEEN_MODES:
        raise ValueError(f"smooth_unseen must be one of {UNSEEN_MODES} (or a bool), got {value!r}")
    return str(value)


class LearnedRenderer:
    """Renderer running the learned frame model.

    Args:
        device: ``cpu`` or ``cuda``.
        model_path: checkpoint file; ``None`` = :data:`DEFAULT_MODEL_PATH`.
        runtime: ``torch`` | ``onnxruntime`` | ``tensorrt`` (see :mod:`worldfm_ros.learned.runtime`).
        onnx_path: ONNX export for ``onnxruntime``; ``None`` = export the checkpoint into
            ``cache_dir`` on first use.
        engine_path: TensorRT engine for ``tensorrt``.
        precision: ``fp32`` | ``fp16`` (TensorRT provider).
        cache_dir: exported files and engines; ``None`` = ``~/.cache/worldfm_ros``.
        fallback: a runtime that cannot be set up becomes ``torch`` with a warning
            (``runtime_warnings``) instead of raising.
        smooth_unseen: blend pixels no reference sees towards a blur of the view
            (:func:`smooth_unseen`): only the gaps beside foreground edges in views whose
            references have complete depth (``"disocclusion"``, the default:
            :func:`disoccluded_unseen`, :func:`complete_depth`), ``"all"`` (or ``True``) of
            them, or ``"off"`` (or ``False``: the network's output as it is). ``all`` costs
            1.5 dB on redkitchen_a leave-out (27.35 dB / 0.858 against 28.87 / 0.876), where
            the never-seen pixels are the colour border; ``disocclusion`` leaves a depth
            sensor's views as they are (docs/learned.md, "Session 10").

    Raises :class:`~worldfm_ros.core.errors.ModelLoadError` (naming the file) when the
    checkpoint is missing, damaged, foreign or of another version, and (without
    ``fallback``) when the runtime's file is.
    """

    name = "learned"

    def __init__(self, device: str = "cpu", model_path: Optional[str] = None, *, runtime: str = "torch",
                 onnx_path: Optional[str] = None, engine_path: Optional[str] = None, precision: str = "fp32",
                 cache_dir: Optional[str] = None, fallback: bool = True, smooth_unseen="disocclusion"):
        from worldfm_ros.core.allocator import keep_freed_memory
        from worldfm_ros.learned.model import load_checkpoint
        from worldfm_ros.learned.runtime import make_runtime

        keep_freed_memory()  # a view's arrays reuse freed memory, not fresh pages (see module)

        self.device = torch.device(device)
        self.model_path = Path(model_path) if model_path else DEFAULT_MODEL_PATH
        self.model, payload = load_checkpoint(self.model_path, self.device)
        self.runtime, self.runtime_warnings = make_runtime(
            runtime, self.model, self.model_path, device=device, onnx_path=onnx_path or None,
            engine_path=engine_path or None, precision=precision, cache_dir=cache_dir or None, fallback=fallback)
        self.k = self.model.k
        self.smooth_unseen = _unseen_mode(smooth_unseen)
        #: The model's reference slots: the node retrieves this many references per view.
        self.references_per_view = self.k
        self.checkpoint_info = dict(payload.get("extra", {}).get("validation", {}))

    def render(
        self,
        references: Sequence[Keyframe],
        T_world_cam: np.ndarray,  # [B, 4, 4] target camera optical poses
        intrinsics: Intrinsics,  # shared by all targets; gives the output size
    ) -> RenderResult:
        if not isinstance(intrinsics, Intrinsics):
            raise InvalidIntrinsicsError(f"intrinsics must be an Intrinsics, got {type(intrinsics).__name__}",
                                         intrinsics)
        poses = np.asarray(T_world_cam, dtype=np.float64)
        if poses.ndim == 2:
            poses = poses[None]
        if poses.ndim != 3 or poses.shape[1:] != (4, 4) or len(poses) == 0:
            raise InvalidPoseError(f"T_world_cam must be [B, 4, 4], got shape {poses.shape}", poses.shape)
        refs = list(references)
        if not refs:
            raise EmptyMemoryError("no reference keyframes to render from", 0)
        views = [self._view(refs, pose, intrinsics) for pose in poses]
        result = self._finish(views, intrinsics)
        result.reference_ids_per_view = None
        return result

    def render_batch(
        self,
        references_per_view: Sequence[Sequence[Keyframe]],  # B lists of references
        T_world_cam: np.ndarray,  # [B, 4, 4] target camera optical poses
        intrinsics: Intrinsics,  # shared by all targets; gives the output size
    ) -> RenderResult:
        """View ``b`` from ``references_per_view[b]``: the views warped and run through the
        network in chunks of :data:`NETWORK_CHUNK` views. The same images as one
        :meth:`render` per view (the network's batch items are independent; PyTorch's CPU
        kernels give the same bytes).

        Why chunks: warping all 64 views of a ``~/render_views`` call before one network run
        held ~20 MB of warp bundle per 320x240 view (1.3 GB) and ran the network on a batch
        far larger than the caches; measured 42.8 ms a view against 19.1 ms for single calls
        (``scripts/bench_simulator.py --backend learned --sizes 160x120``).

        With one torch thread oneDNN picks other convolution kernels for a batch than for a
        single view (measured: 4-5 of 230,400 values off by 1/255, 12 views at 160x120, v2 and
        v3 alike), so then every view runs through the network alone: batch and single calls
        give the same bytes at any thread count."""
        from worldfm_ros.core.renderers.base import _check_batch

        if not isinstance(intrinsics, Intrinsics):
            raise InvalidIntrinsicsError(f"intrinsics must be an Intrinsics, got {type(intrinsics).__name__}",
                                         intrinsics)
        poses = _check_batch(references_per_view, T_world_cam)
        parts = []
        # ONNX Runtime on the CPU runs a view at a time too: its batches of 4 were slower per
        # view than single views (36.7 against 32.8 ms at 320x240, 2 threads, 32 views x 3,
        # session 9), where PyTorch's were faster (33.8 against 42.9).
        onnx_cpu = getattr(self.runtime, "name", "") == "onnxruntime" and self.device.type == "cpu"
        step = NETWORK_CHUNK if torch.get_num_threads() > 1 and not onnx_cpu else 1
        for start in range(0, len(poses), step):
            chunk = range(start, min(start + step, len(poses)))
            views = [self._view(list(references_per_view[b]), poses[b], intrinsics) for b in chunk]
            parts.append(self._finish(views, intrinsics))
        if len(parts) == 1:
            return parts[0]
        used: dict[int, None] = {}
        for part in parts:
            for i in part.reference_ids:
                used.setdefault(i, None)
        return RenderResult(
            rgb=np.concatenate([p.rgb for p in parts]), depth=np.concatenate([p.depth for p in parts]),
            covered=np.concatenate([p.covered for p in parts]),
            coverage=np.concatenate([p.coverage for p in parts]), reference_ids=list(used),
            reference_ids_per_view=[ids for p in parts for ids in p.reference_ids_per_view])

    def _view(self, refs: list, pose: np.ndarray, intrinsics: Intrinsics) -> tuple:
        """``(chosen references, warp bundle)`` of one target view."""
        from worldfm_ros.learned.warp import select_references, warp_references

        pose = validate_pose_matrix(pose)
        chosen = select_references(refs, pose, self.k)
        with torch.inference_mode():
            return chosen, warp_references(chosen, pose, intrinsics, self.k, self.device)

    def _smooth_unseen(self, out: np.ndarray, covered: np.ndarray, depth: np.ndarray,
                       references: list) -> np.ndarray:
        """``out [B, 3, H, W]`` with never-seen pixels smoothed (:func:`smooth_unseen`), all of
        them or only the disocclusions (:func:`disoccluded_unseen`; ``depth [B, H, W]``; in
        views whose ``references`` have :func:`complete_depth`), view by view so that batch
        and single renders give the same bytes."""
        if self.smooth_unseen == "all":
            hwc = out.transpose(0, 2, 3, 1)
            return np.stack([smooth_unseen(np.ascontiguousarray(hwc[b]), covered[b])
                             for b in range(len(hwc))]).transpose(0, 3, 1, 2)
        for b in range(len(out)):  # disocclusion: in place, in a window around the gaps
            if covered[b].all() or not complete_depth(references[b]):
                continue
            gaps = disoccluded_unseen(covered[b], depth[b])
            rows, cols = np.flatnonzero(gaps.any(axis=1)), np.flatnonzero(gaps.any(axis=0))
            if not rows.size:
                continue
            m = 4 * int(np.ceil(UNSEEN_BLUR_SIGMA))  # the blur reaches 3 sigma
            y0, x0 = max(rows[0] - m, 0) // 4 * 4, max(cols[0] - m, 0) // 4 * 4
            y1, x1 = min(rows[-1] + 1 + m, out.shape[2]), min(cols[-1] + 1 + m, out.shape[3])
            win = out[b, :, y0:y1, x0:x1]  # [3, h, w] view into out
            smoothed = smooth_unseen(np.ascontiguousarray(win.transpose(1, 2, 0)), covered[b, y0:y1, x0:x1])
            inside = gaps[y0:y1, x0:x1]
            win[:, inside] = smoothed[inside].T
        return out

    def _finish(self, views: list, intrinsics: Intrinsics) -> RenderResult:
        """Run the network on the views' bundles (one batch) and assemble the result."""
        from worldfm_ros.learned.warp import WarpBundle

        B, H, W = len(views), intrinsics.height, intrinsics.width
        with torch.inference_mode():
            bundle = views[0][1] if B == 1 else WarpBundle.stack([v[1] for v in views])
            out = self.runtime(bundle)  # [B, 3, H, W]
            # In numpy (the same float32 arithmetic as torch's): no torch operation after the
            # network, so PyTorch's OpenMP threads are not woken (and left spinning) for it.
            covered = (bundle.valid.cpu().numpy() > 0).any(axis=1)[:, 0]
            out = out.cpu().numpy()  # [B, 3, H, W]
            if self.smooth_unseen != "off" and not covered.all():
                out = self._smooth_unseen(out, covered, bundle.depth[:, 0].cpu().numpy(), [v[0] for v in views])
            scaled = out * np.float32(255.0)
            scaled += np.float32(0.5)
            np.clip(scaled, 0, 255, out=scaled)
            rgb = np.ascontiguousarray(scaled.astype(np.uint8).transpose(0, 2, 3, 1))
            depth = np.where(covered, bundle.depth[:, 0].cpu().numpy(), np.float32(0.0)).astype(np.float32)
        used: dict[int, None] = {}
        per_view = []
        for chosen, _ in views:
            per_view.append([int(r.id) for r in chosen])
            for i in per_view[-1]:
                used.setdefault(i, None)
        coverage = covered.reshape(B, -1).mean(axis=1).astype(np.float32)
        return RenderResult(rgb=rgb, depth=depth, covered=covered, coverage=coverage, reference_ids=list(used),
                            reference_ids_per_view=per_view)
