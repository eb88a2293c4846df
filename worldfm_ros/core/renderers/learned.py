"""``backend: learned`` - the frame model of :mod:`worldfm_ros.learned` behind the Renderer interface.

Per target: up to ``K`` references (the model's slots) are warped into the target camera
(:func:`worldfm_ros.learned.warp.warp_references`), and the network blends them, paints what
no reference saw and corrects seams (:class:`worldfm_ros.learned.model.FrameModel`).
``depth`` is the references' depth splatted into the target where a reference sees the
pixel, 0 elsewhere; ``covered`` marks those pixels (not the painted ones).

Deterministic: the same poses, intrinsics and references give the same bytes (every step is
order-independent or sequential; the network runs in inference mode).

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
DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[2] / "models" / "learned_v2.pt"


class LearnedRenderer:
    """Renderer running the learned frame model.

    Args:
        device: ``cpu`` or ``cuda``.
        model_path: checkpoint file; ``None`` = :data:`DEFAULT_MODEL_PATH`.

    Raises :class:`~worldfm_ros.core.errors.ModelLoadError` (naming the file) when the
    checkpoint is missing, damaged, foreign or of another version.
    """

    name = "learned"

    def __init__(self, device: str = "cpu", model_path: Optional[str] = None):
        from worldfm_ros.core.allocator import keep_freed_memory
        from worldfm_ros.learned.model import load_checkpoint

        keep_freed_memory()  # a view's arrays reuse freed memory, not fresh pages (see module)

        self.device = torch.device(device)
        self.model_path = Path(model_path) if model_path else DEFAULT_MODEL_PATH
        self.model, payload = load_checkpoint(self.model_path, self.device)
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
        from worldfm_ros.learned.warp import select_references, warp_references

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
        B, H, W = len(poses), intrinsics.height, intrinsics.width
        rgb = np.empty((B, H, W, 3), np.uint8)
        depth = np.zeros((B, H, W), np.float32)
        covered = np.zeros((B, H, W), bool)
        used: dict[int, None] = {}
        with torch.inference_mode():
            for b, pose in enumerate(poses):
                pose = validate_pose_matrix(pose)
                chosen = select_references(refs, pose, self.k)
                for r in chosen:
                    used.setdefault(r.id, None)
                bundle = warp_references(chosen, pose, intrinsics, self.k, self.device)
                out = self.model(bundle)[0]  # [3, H, W]
                rgb[b] = (out * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
                cov = bundle.covered[0].cpu().numpy()
                covered[b] = cov
                depth[b] = np.where(cov, bundle.depth[0, 0].cpu().numpy(), 0.0)
        coverage = covered.reshape(B, -1).mean(axis=1).astype(np.float32)
        return RenderResult(rgb=rgb, depth=depth, covered=covered, coverage=coverage, reference_ids=list(used))
