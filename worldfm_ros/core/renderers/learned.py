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

    Raises :class:`~worldfm_ros.core.errors.ModelLoadError` (naming the file) when the
    checkpoint is missing, damaged, foreign or of another version, and (without
    ``fallback``) when the runtime's file is.
    """

    name = "learned"

    def __init__(self, device: str = "cpu", model_path: Optional[str] = None, *, runtime: str = "torch",
                 onnx_path: Optional[str] = None, engine_path: Optional[str] = None, precision: str = "fp32",
                 cache_dir: Optional[str] = None, fallback: bool = True):
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
        step = NETWORK_CHUNK if torch.get_num_threads() > 1 else 1
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

    def _finish(self, views: list, intrinsics: Intrinsics) -> RenderResult:
        """Run the network on the views' bundles (one batch) and assemble the result."""
        from worldfm_ros.learned.warp import WarpBundle

        B, H, W = len(views), intrinsics.height, intrinsics.width
        with torch.inference_mode():
            bundle = views[0][1] if B == 1 else WarpBundle.stack([v[1] for v in views])
            out = self.runtime(bundle)  # [B, 3, H, W]
            rgb = (out * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            covered = bundle.covered.cpu().numpy()
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
