"""The contract's leave-out protocol: how view quality is scored.

Frames sorted by index; the frame at position ``i`` with ``i % 10 == 5`` is a target, all
others are fed to the memory in order through the real insertion policy. Each target is
rendered at its ground-truth pose and intrinsics (320x240 for the contract's data: images
area-downscaled by 2, intrinsics rescaled by 0.5) and compared with its ground-truth colour
over all pixels.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Mapping, Optional, Sequence

import numpy as np
from skimage.metrics import structural_similarity

from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.renderers.base import Renderer, references_per_view

#: Position ``i`` in the sorted frame list is a target when ``i % TARGET_PERIOD == TARGET_PHASE``.
TARGET_PERIOD = 10
TARGET_PHASE = 5


def is_target(position: int) -> bool:
    return position % TARGET_PERIOD == TARGET_PHASE


def split_leave_out(frames: Sequence) -> tuple[list, list]:
    """``(memory_frames, targets)`` of an index-sorted frame sequence."""
    memory = [f for i, f in enumerate(frames) if not is_target(i)]
    targets = [f for i, f in enumerate(frames) if is_target(i)]
    return memory, targets


def psnr(prediction: np.ndarray, truth: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """PSNR [dB] of uint8 images in [0, 1] scale, over ``mask`` pixels (``[H, W]``) if given."""
    diff = prediction.astype(np.float64) / 255.0 - truth.astype(np.float64) / 255.0
    if mask is not None:
        if not mask.any():
            return float("nan")
        diff = diff[mask]
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def ssim(prediction: np.ndarray, truth: np.ndarray) -> float:
    """SSIM of two uint8 RGB images (scikit-image, 7x7 window, per channel)."""
    return float(structural_similarity(truth, prediction, channel_axis=2, data_range=255))


@dataclass
class BackendScore:
    """Mean scores of one backend over the targets (``ms_per_view`` is the median)."""

    psnr: float
    ssim: float
    covered_psnr: float
    coverage: float
    ms_per_view: float
    keyframes: int
    views: int = 0
    per_view_psnr: list = field(default_factory=list, repr=False)

    def as_json(self) -> dict:
        d = asdict(self)
        d.pop("per_view_psnr")
        return d


@dataclass
class EvaluationRun:
    """Scores per backend, plus the renders kept for a contact sheet."""

    scores: dict[str, BackendScore]
    sheet_rows: list[list[np.ndarray]]  # per kept target: [truth, backend 1, backend 2, ...]
    backends: list[str]


def frame_to_keyframe(frame) -> Keyframe:
    """A dataset frame (colour, depth, intrinsics, T_world_cam, stamp) as a Keyframe."""
    return Keyframe(frame.colour, frame.depth, frame.intrinsics, frame.T_world_cam, frame.stamp)


def evaluate(
    frames: Sequence,
    backends: Mapping[str, Renderer],
    ingest: Callable[[Keyframe], object],
    retrieve: Callable[[np.ndarray, object, int], list[Keyframe]],
    keyframe_count: Callable[[], int],
    retrieval_k: int = 4,
    sheet_targets: int = 0,
    progress: Optional[Callable[[Iterable], Iterable]] = None,
) -> EvaluationRun:
    """Run the leave-out protocol.

    Args:
        frames: index-sorted frames at the evaluation resolution.
        backends: renderer per backend name, rendered side by side on the same memory.
        ingest: feeds one memory frame through the insertion policy.
        retrieve: ``(T_world_cam, intrinsics, k) -> references`` (the node's retrieval);
            ``k`` per backend is :func:`references_per_view` of its renderer and
            ``retrieval_k``.
        retrieval_k: the memory's references per view.
        keyframe_count: number of keyframes the memory holds.
        sheet_targets: how many targets (evenly spread) to keep renders of.
        progress: e.g. ``tqdm``; wraps the loops.
    """
    wrap = progress or (lambda it, **_: it)
    memory_frames, targets = split_leave_out(frames)
    for f in wrap(memory_frames, desc="memory", unit="frame"):
        ingest(frame_to_keyframe(f))
    keep = set(np.linspace(0, len(targets) - 1, sheet_targets).round().astype(int).tolist()) if sheet_targets else set()
    per = {name: {"psnr": [], "ssim": [], "cpsnr": [], "cov": [], "ms": []} for name in backends}
    sheet_rows: list[list[np.ndarray]] = []
    for t_index, target in enumerate(wrap(targets, desc="targets", unit="view")):
        row = [target.colour]
        for name, renderer in backends.items():
            t0 = time.perf_counter()
            refs = retrieve(target.T_world_cam, target.intrinsics, references_per_view(renderer, retrieval_k))
            result = renderer.render(refs, target.T_world_cam[None], target.intrinsics)
            ms = (time.perf_counter() - t0) * 1e3
            rgb = result.rgb[0]
            acc = per[name]
            acc["psnr"].append(psnr(rgb, target.colour))
            acc["ssim"].append(ssim(rgb, target.colour))
            acc["cpsnr"].append(psnr(rgb, target.colour, result.covered[0]))
            acc["cov"].append(float(result.coverage[0]))
            acc["ms"].append(ms)
            row.append(rgb)
        if t_index in keep:
            sheet_rows.append(row)
    n_kf = keyframe_count()
    scores = {}
    for name, acc in per.items():
        cps = [v for v in acc["cpsnr"] if math.isfinite(v)]
        scores[name] = BackendScore(
            psnr=float(np.mean(acc["psnr"])),
            ssim=float(np.mean(acc["ssim"])),
            covered_psnr=float(np.mean(cps)) if cps else float("nan"),
            coverage=float(np.mean(acc["cov"])),
            ms_per_view=float(np.median(acc["ms"])),
            keyframes=n_kf,
            views=len(acc["psnr"]),
            per_view_psnr=acc["psnr"],
        )
    return EvaluationRun(scores=scores, sheet_rows=sheet_rows, backends=list(backends))


def markdown_table(scores: Mapping[str, BackendScore]) -> str:
    """The figures as a markdown table, one row per backend."""
    lines = [
        "| backend | PSNR [dB] | SSIM | covered PSNR [dB] | coverage | ms/view (median) | keyframes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in scores.items():
        lines.append(
            f"| {name} | {s.psnr:.2f} | {s.ssim:.3f} | {s.covered_psnr:.2f} | {s.coverage:.3f} "
            f"| {s.ms_per_view:.1f} | {s.keyframes} |"
        )
    return "\n".join(lines)
