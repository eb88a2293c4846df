"""The contract's off-trajectory protocol: views rendered where the recording did not go.

Every frame of a *memory* recording is fed to the memory (the node's insertion policy), then
every ``stride``-th frame of a *target* recording is rendered at its pose and intrinsics and
scored over all pixels against its colour. Targets are binned by

* the distance from the target camera centre to the nearest memory camera centre [m]:
  ``0.0-0.1``, ``0.1-0.2``, ``0.2-0.4``, ``0.4-0.8`` (:data:`DISTANCE_BINS`), and
* the rotation angle between the target camera and that nearest memory camera [deg]:
  ``0-10deg``, ``10-30deg``, ``30-60deg`` (:data:`ANGLE_BINS`),

plus ``all`` (every target, also those beyond the last bin). "Memory camera" means every
frame of the memory recording, whether or not the insertion policy kept it as a keyframe:
the bins describe where the robot drove, not what the memory chose to store.

For one recording, :func:`split_half` uses its first half as the memory and its second half
as the targets (``worldfm-eval --split half``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from worldfm_ros.core.evaluation import BackendScore, frame_to_keyframe, psnr, ssim
from worldfm_ros.core.renderers.base import Renderer, references_per_view

#: Distance bins [m], lower bound inclusive, upper exclusive.
DISTANCE_BINS: tuple[tuple[float, float], ...] = ((0.0, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, 0.8))
#: Angle bins [deg], lower bound inclusive, upper exclusive.
ANGLE_BINS: tuple[tuple[float, float], ...] = ((0.0, 10.0), (10.0, 30.0), (30.0, 60.0))
#: Default: every 5th target frame is rendered.
DEFAULT_STRIDE = 5


def distance_label(lo: float, hi: float) -> str:
    """JSON key of a distance bin, e.g. ``"0.0-0.1"``."""
    return f"{lo:.1f}-{hi:.1f}"


def angle_label(lo: float, hi: float) -> str:
    """JSON key of an angle bin, e.g. ``"10-30deg"``."""
    return f"{lo:g}-{hi:g}deg"


#: Every bin key in report order (``all`` first).
BIN_LABELS: tuple[str, ...] = ("all",) + tuple(distance_label(*b) for b in DISTANCE_BINS) + tuple(
    angle_label(*b) for b in ANGLE_BINS)


def split_half(frames: Sequence) -> tuple[list, list]:
    """``(memory, targets)``: the first ``ceil(n / 2)`` frames and the rest."""
    frames = list(frames)
    if len(frames) < 2:
        raise ValueError(f"--split half needs at least 2 frames, got {len(frames)}")
    half = (len(frames) + 1) // 2
    return frames[:half], frames[half:]


def strided(targets: Sequence, stride: int) -> list:
    """Every ``stride``-th target, starting with the first."""
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    return list(targets)[::int(stride)]


def nearest_memory_camera(T_world_cam: np.ndarray, memory_poses: np.ndarray) -> tuple[float, float, int]:
    """``(distance [m], angle [deg], index)`` of the memory camera whose centre is nearest to
    the target's: the centre distance and the rotation angle between the two cameras.

    Args:
        T_world_cam: ``[4, 4]`` target camera pose.
        memory_poses: ``[N, 4, 4]`` memory camera poses, ``N >= 1``.
    """
    poses = np.asarray(memory_poses, np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or len(poses) == 0:
        raise ValueError(f"memory_poses must be [N, 4, 4] with N >= 1, got shape {poses.shape}")
    T = np.asarray(T_world_cam, np.float64)
    d = np.linalg.norm(poses[:, :3, 3] - T[:3, 3], axis=1)
    i = int(np.argmin(d))
    return float(d[i]), rotation_angle_deg(poses[i], T), i


def rotation_angle_deg(T_a: np.ndarray, T_b: np.ndarray) -> float:
    """Angle [deg] of the rotation between two poses (geodesic distance on SO(3))."""
    R = np.asarray(T_a, np.float64)[:3, :3].T @ np.asarray(T_b, np.float64)[:3, :3]
    c = (np.trace(R) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


def bins_of(distance: float, angle_deg: float) -> list[str]:
    """The bin keys a target with this distance [m] and angle [deg] counts in (``all`` always)."""
    keys = ["all"]
    keys += [distance_label(lo, hi) for lo, hi in DISTANCE_BINS if lo <= distance < hi]
    keys += [angle_label(lo, hi) for lo, hi in ANGLE_BINS if lo <= angle_deg < hi]
    return keys


@dataclass
class TargetRecord:
    """One scored target: where it is relative to the memory and each backend's scores."""

    distance: float  # [m] to the nearest memory camera centre
    angle_deg: float  # rotation to that camera [deg]
    psnr: dict = field(default_factory=dict)  # backend -> dB
    ssim: dict = field(default_factory=dict)
    covered_psnr: dict = field(default_factory=dict)
    coverage: dict = field(default_factory=dict)
    ms: dict = field(default_factory=dict)

    @property
    def bins(self) -> list[str]:
        return bins_of(self.distance, self.angle_deg)


@dataclass
class OffTrajectoryRun:
    """The protocol's result: per target records and, per bin, a few renders for a sheet."""

    records: list[TargetRecord]
    backends: list[str]
    keyframes: int
    sheet_rows: dict = field(default_factory=dict)  # bin -> [[truth, backend 1, ...], ...]

    def scores(self) -> dict[str, dict[str, Optional[BackendScore]]]:
        """``{backend: {bin: BackendScore or None (no target in the bin)}}``."""
        out: dict[str, dict[str, Optional[BackendScore]]] = {}
        for name in self.backends:
            per_bin: dict[str, Optional[BackendScore]] = {}
            for key in BIN_LABELS:
                recs = [r for r in self.records if key in r.bins]
                per_bin[key] = _score(recs, name, self.keyframes) if recs else None
            out[name] = per_bin
        return out

    def as_json(self) -> dict:
        """``{backend: {bin: {psnr, ssim, covered_psnr, coverage, ms_per_view, keyframes, views}}}``;
        an empty bin has ``views: 0`` and ``null`` figures."""
        out = {}
        for name, per_bin in self.scores().items():
            out[name] = {}
            for key, score in per_bin.items():
                if score is None:
                    out[name][key] = {"psnr": None, "ssim": None, "covered_psnr": None, "coverage": None,
                                      "ms_per_view": None, "keyframes": self.keyframes, "views": 0}
                else:
                    out[name][key] = score.as_json()
        return out


def _score(records: Sequence[TargetRecord], name: str, keyframes: int) -> BackendScore:
    cps = [r.covered_psnr[name] for r in records if math.isfinite(r.covered_psnr[name])]
    values = [r.psnr[name] for r in records]
    return BackendScore(
        psnr=float(np.mean(values)),
        ssim=float(np.mean([r.ssim[name] for r in records])),
        covered_psnr=float(np.mean(cps)) if cps else float("nan"),
        coverage=float(np.mean([r.coverage[name] for r in records])),
        ms_per_view=float(np.median([r.ms[name] for r in records])),
        keyframes=keyframes,
        views=len(records),
        per_view_psnr=values,
    )


def evaluate_offtrajectory(
    memory_frames: Sequence,
    targets: Sequence,
    backends: Mapping[str, Renderer],
    ingest: Callable,
    retrieve: Callable,
    keyframe_count: Callable[[], int],
    retrieval_k: int = 4,
    sheet_per_bin: int = 0,
    progress: Optional[Callable[[Iterable], Iterable]] = None,
) -> OffTrajectoryRun:
    """Run the off-trajectory protocol.

    Args:
        memory_frames: the memory recording, fed in order through ``ingest``.
        targets: the frames to render (already strided), each with ``colour``,
            ``T_world_cam`` and ``intrinsics``.
        backends, ingest, retrieve, keyframe_count, retrieval_k, progress: as
            :func:`worldfm_ros.core.evaluation.evaluate`.
        sheet_per_bin: renders kept per distance bin for a contact sheet (evenly spread).
    """
    wrap = progress or (lambda it, **_: it)
    memory_frames = list(memory_frames)
    if not memory_frames:
        raise ValueError("the off-trajectory protocol needs at least one memory frame")
    if not targets:
        raise ValueError("the off-trajectory protocol needs at least one target")
    for f in wrap(memory_frames, desc="memory", unit="frame"):
        ingest(frame_to_keyframe(f))
    memory_poses = np.stack([np.asarray(f.T_world_cam, np.float64) for f in memory_frames])
    placed = [(t, *nearest_memory_camera(t.T_world_cam, memory_poses)[:2]) for t in targets]
    # Which targets go on the sheet: per distance bin, evenly spread over its targets.
    keep: dict[int, str] = {}
    if sheet_per_bin:
        for lo, hi in DISTANCE_BINS:
            members = [i for i, (_, d, _) in enumerate(placed) if lo <= d < hi]
            if members:
                for j in np.linspace(0, len(members) - 1, min(sheet_per_bin, len(members))).round().astype(int):
                    keep[members[j]] = distance_label(lo, hi)
    records: list[TargetRecord] = []
    sheet_rows: dict[str, list] = {}
    for i, (target, distance, angle) in enumerate(wrap(placed, desc="targets", unit="view")):
        rec = TargetRecord(distance, angle)
        row = [target.colour]
        for name, renderer in backends.items():
            t0 = time.perf_counter()
            refs = retrieve(target.T_world_cam, target.intrinsics, references_per_view(renderer, retrieval_k))
            result = renderer.render(refs, np.asarray(target.T_world_cam)[None], target.intrinsics)
            rec.ms[name] = (time.perf_counter() - t0) * 1e3
            rgb = result.rgb[0]
            rec.psnr[name] = psnr(rgb, target.colour)
            rec.ssim[name] = ssim(rgb, target.colour)
            rec.covered_psnr[name] = psnr(rgb, target.colour, result.covered[0])
            rec.coverage[name] = float(result.coverage[0])
            row.append(rgb)
        records.append(rec)
        if i in keep:
            sheet_rows.setdefault(keep[i], []).append(row)
    return OffTrajectoryRun(records, list(backends), keyframe_count(), sheet_rows)


def markdown_bins(run: OffTrajectoryRun) -> str:
    """PSNR / SSIM per bin and backend as a markdown table (one row per bin)."""
    scores = run.scores()
    names = run.backends
    head = "| bin | views | " + " | ".join(f"{n} PSNR / SSIM" for n in names)
    if len(names) >= 2:
        head += f" | {names[0]} - {names[1]} [dB]"
    lines = [head + " |", "|" + "---|" * (2 + len(names) + (len(names) >= 2))]
    for key in BIN_LABELS:
        first = scores[names[0]][key]
        cells = [key, str(first.views if first else 0)]
        for n in names:
            s = scores[n][key]
            cells.append("-" if s is None else f"{s.psnr:.2f} / {s.ssim:.3f}")
        if len(names) >= 2:
            a, b = scores[names[0]][key], scores[names[1]][key]
            cells.append("-" if a is None else f"{a.psnr - b.psnr:+.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
