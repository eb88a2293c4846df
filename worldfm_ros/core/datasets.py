"""Readers of posed RGB-D sequences: 7-Scenes folders, TUM RGB-D folders and world files.

Every reader is a sequence of :class:`Frame` (``len``, indexing, iteration) sorted by
``Frame.index``; images are read lazily, one frame per access. Each takes ``scale`` (image
downscale factor in (0, 1]; 0.5 turns 640x480 into the evaluation protocol's 320x240 via
:func:`worldfm_ros.core.image_ops.downscale_rgbd`, intrinsics rescaled by the pixel-centre
rule) and records frames it had to leave out in ``skipped`` (reason -> count).

* **7-Scenes** (``frame-XXXXXX.color.jpg|png``, ``.depth.png`` uint16 mm with 0 and 65535
  invalid, ``.pose.txt`` 4x4 ``T_world_cam``; optional ``camera-intrinsics.txt`` 3x3 K,
  else fx = fy = 585, cx = 320, cy = 240). ``index`` is the frame number of the file name
  and ``stamp = index / 30`` s (the sequences are 30 Hz). Poses are stored with ~1e-4
  rotation error; they are projected onto the nearest rotation (SVD).
* **TUM RGB-D** (``rgb.txt``, ``depth.txt``, ``groundtruth.txt``; ``#`` comments; depth
  PNG uint16 / 5000 = metres). Depth is associated to each colour image by nearest stamp
  within ``max_difference`` (0.02 s, greedy one-to-one as in TUM's ``associate.py``); the
  pose is interpolated at the colour stamp from the ground truth (linear + slerp).
  ``index`` is the line number of the colour image in ``rgb.txt`` (0-based), ``stamp`` its
  timestamp. Intrinsics default to TUM's "ROS default" (fx = fy = 525, cx = 319.5,
  cy = 239.5); ``intrinsics="fr1"|"fr2"|"fr3"`` or a K selects others.
* **World files** (:mod:`worldfm_ros.core.world_file`): the stored keyframes, ``index`` =
  keyframe id.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import cv2
import numpy as np

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import InvalidIntrinsicsError, InvalidPoseError, InvalidSizeError, WorldFMError
from worldfm_ros.core.image_ops import downscale_rgbd
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.pose import interpolate_pose, pose_from_vector

#: Dataset formats understood by :func:`open_dataset`.
FORMATS = ("7scenes", "tum", "world")

#: 7-Scenes default calibration (used when ``camera-intrinsics.txt`` is absent), 640x480.
SEVEN_SCENES_K = np.array([[585.0, 0.0, 320.0], [0.0, 585.0, 240.0], [0.0, 0.0, 1.0]])
#: 7-Scenes frame rate [Hz]: ``stamp = frame number / SEVEN_SCENES_FPS``.
SEVEN_SCENES_FPS = 30.0

#: TUM RGB-D calibrations (fx, fy, cx, cy) of the 640x480 colour camera, from the dataset page.
TUM_INTRINSICS = {
    "ros_default": (525.0, 525.0, 319.5, 239.5),
    "fr1": (517.3, 516.5, 318.6, 255.3),
    "fr2": (520.9, 521.0, 325.1, 249.7),
    "fr3": (535.4, 539.2, 320.1, 247.6),
}
#: TUM depth PNG units: value / 5000 = metres.
TUM_DEPTH_SCALE = 5000.0
#: Largest colour/depth stamp difference for TUM association [s].
TUM_MAX_DIFFERENCE = 0.02

#: Largest rotation-matrix orthonormality error a stored pose may have before it is refused.
_MAX_ROTATION_ERROR = 1e-2

IntrinsicsLike = Union[Intrinsics, np.ndarray, Sequence, str, None]


class DatasetError(WorldFMError, OSError):
    """A dataset that cannot be read: missing folder or file, no frames, unreadable image.
    ``value`` is the offending path."""


@dataclass(eq=False)
class Frame:
    """One posed RGB-D frame of a dataset.

    Attributes:
        colour: ``uint8 [H, W, 3]`` RGB.
        depth: ``float32 [H, W]`` metres, 0 = invalid.
        intrinsics: pinhole intrinsics of both images.
        T_world_cam: ``float64 [4, 4]`` camera optical pose in the world frame.
        stamp: acquisition time [s].
        index: frame number in the dataset (see the module docstring per format).
    """

    colour: np.ndarray
    depth: np.ndarray
    intrinsics: Intrinsics
    T_world_cam: np.ndarray
    stamp: float
    index: int

    def to_keyframe(self) -> Keyframe:
        """This frame as a (validated) :class:`Keyframe` with no id yet."""
        return Keyframe(self.colour, self.depth, self.intrinsics, self.T_world_cam, self.stamp)


# ---------------------------------------------------------------------------- helpers
def _check_scale(scale: float) -> float:
    try:
        s = float(scale)
    except (TypeError, ValueError) as exc:
        raise InvalidSizeError(f"scale must be a number in (0, 1], got {scale!r}", scale) from exc
    if not math.isfinite(s) or s <= 0.0 or s > 1.0:
        raise InvalidSizeError(f"scale must be in (0, 1], got {scale!r}", scale)
    return s


def _check_dir(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"dataset folder {p} does not exist", str(p))
    if not p.is_dir():
        raise DatasetError(f"dataset path {p} is not a folder", str(p))
    return p


def _read_colour(path: Path) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB; :class:`DatasetError` naming the file if it cannot be read."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot read colour image {path} (missing or not an image)", str(path))
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _read_depth_u16(path: Path) -> np.ndarray:
    """Raw ``uint16 [H, W]`` depth PNG; :class:`DatasetError` naming the file otherwise."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DatasetError(f"cannot read depth image {path} (missing or not an image)", str(path))
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise DatasetError(
            f"depth image {path} must be single-channel 16-bit, got {raw.dtype} with shape {raw.shape}", str(path)
        )
    return raw


def _nearest_rigid(T: np.ndarray) -> np.ndarray:
    """``T`` with its rotation block projected onto the nearest rotation (SVD)."""
    U, _, Vt = np.linalg.svd(T[:3, :3])
    R = U @ Vt
    if np.linalg.det(R) < 0:
        U[:, -1] *= -1
        R = U @ Vt
    out = np.eye(4)
    out[:3, :3] = R
    out[:3, 3] = T[:3, 3]
    return out


def _resolve_intrinsics(intrinsics: IntrinsicsLike, default: IntrinsicsLike, width: int, height: int) -> Intrinsics:
    """Intrinsics for an image of ``width`` x ``height`` from an override, else ``default``
    (either: an :class:`Intrinsics`, a 3x3 K or its 9 entries, or a ``TUM_INTRINSICS`` name)."""
    if intrinsics is None:
        intrinsics = default
    if isinstance(intrinsics, Intrinsics):
        if intrinsics.size != (width, height):
            raise InvalidIntrinsicsError(
                f"intrinsics are for {intrinsics.width}x{intrinsics.height}, images are {width}x{height}",
                intrinsics,
            )
        return intrinsics
    if isinstance(intrinsics, str):
        if intrinsics not in TUM_INTRINSICS:
            raise InvalidIntrinsicsError(
                f"unknown intrinsics name {intrinsics!r}; use one of {sorted(TUM_INTRINSICS)} or a 3x3 K", intrinsics
            )
        fx, fy, cx, cy = TUM_INTRINSICS[intrinsics]
        return Intrinsics(fx, fy, cx, cy, width, height)
    return Intrinsics.from_matrix(intrinsics, width, height)


class _Dataset:
    """Shared sequence behaviour: lazy frames, optional downscaling."""

    format = ""

    def __init__(self, path, scale: float):
        self.path = Path(path)
        self.scale = _check_scale(scale)
        self.skipped: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, i: int) -> Frame:
        n = len(self)
        if isinstance(i, slice):
            raise TypeError("datasets do not support slicing; use itertools.islice or list()")
        if not -n <= i < n:
            raise IndexError(f"frame {i} out of range for {n} frames")
        return self._finish(self._read(self._entries[i % n]))

    @property
    def indices(self) -> list[int]:
        """``Frame.index`` of every frame, in order."""
        return [entry[0] for entry in self._entries]

    def _finish(self, frame: Frame) -> Frame:
        if self.scale == 1.0:
            return frame
        K = frame.intrinsics
        width, height = int(round(K.width * self.scale)), int(round(K.height * self.scale))
        colour, depth, K2 = downscale_rgbd(frame.colour, frame.depth, K, max(width, 1), max(height, 1))
        return Frame(colour, depth, K2, frame.T_world_cam, frame.stamp, frame.index)

    def _read(self, entry) -> Frame:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, frames={len(self)}, scale={self.scale})"

    # Datasets hold no open handles; these exist so callers can treat every reader alike.
    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# ---------------------------------------------------------------------------- 7-Scenes
_SEVEN_SCENES_RE = re.compile(r"^frame-(\d+)\.color\.(jpg|png)$")


class SevenScenesDataset(_Dataset):
    """A 7-Scenes sequence folder (see the module docstring).

    ``intrinsics`` overrides ``camera-intrinsics.txt`` (an :class:`Intrinsics`, a 3x3 K or
    its 9 entries). Frames whose pose is non-finite (7-Scenes marks lost tracking with
    ``-inf``) or far from rigid are skipped (``skipped["invalid_pose"]``).
    """

    format = "7scenes"

    def __init__(self, path, *, scale: float = 1.0, intrinsics: IntrinsicsLike = None):
        super().__init__(path, scale)
        folder = _check_dir(path)
        self._intrinsics_override = intrinsics
        K_file = folder / "camera-intrinsics.txt"
        if K_file.exists():
            try:
                self._K = np.loadtxt(K_file, dtype=np.float64).reshape(3, 3)
            except ValueError as exc:
                raise DatasetError(f"cannot read camera matrix {K_file}: {exc}", str(K_file)) from exc
        else:
            self._K = SEVEN_SCENES_K.copy()
        entries = []
        invalid = 0
        names = sorted(os.listdir(folder))
        for name in names:
            match = _SEVEN_SCENES_RE.match(name)
            if match is None:
                continue
            number = int(match.group(1))
            stem = name[: -len(".color." + match.group(2))]
            depth_path = folder / f"{stem}.depth.png"
            pose_path = folder / f"{stem}.pose.txt"
            if not depth_path.exists():
                raise DatasetError(f"7-Scenes frame {folder / name} has no depth image {depth_path}", str(depth_path))
            T = self._read_pose(pose_path)
            if T is None:
                invalid += 1
                continue
            entries.append((number, folder / name, depth_path, T))
        if not entries:
            raise DatasetError(
                f"no 7-Scenes frames (frame-XXXXXX.color.jpg + .depth.png + .pose.txt) in {folder}"
                + (f"; {invalid} had invalid poses" if invalid else ""), str(folder),
            )
        entries.sort(key=lambda e: e[0])
        self._entries = entries
        self.skipped = {"invalid_pose": invalid}

    @staticmethod
    def _read_pose(path: Path) -> Optional[np.ndarray]:
        """The 4x4 pose of a frame, nearest rigid; None if it is non-finite or far from rigid."""
        if not path.exists():
            raise DatasetError(f"7-Scenes pose file {path} is missing", str(path))
        try:
            T = np.loadtxt(path, dtype=np.float64)
        except ValueError as exc:
            raise DatasetError(f"cannot read pose file {path}: {exc}", str(path)) from exc
        if T.shape != (4, 4):
            raise DatasetError(f"pose file {path} must hold a 4x4 matrix, got shape {T.shape}", str(path))
        if not np.all(np.isfinite(T)):
            return None
        R = T[:3, :3]
        if np.abs(R @ R.T - np.eye(3)).max() > _MAX_ROTATION_ERROR or np.linalg.det(R) <= 0:
            return None
        if np.abs(T[3] - [0.0, 0.0, 0.0, 1.0]).max() > 1e-6:
            return None
        return _nearest_rigid(T)

    def _read(self, entry) -> Frame:
        number, colour_path, depth_path, T = entry
        colour = _read_colour(colour_path)
        raw = _read_depth_u16(depth_path)
        if raw.shape != colour.shape[:2]:
            raise DatasetError(
                f"depth image {depth_path} is {raw.shape[1]}x{raw.shape[0]}, colour image {colour_path} is "
                f"{colour.shape[1]}x{colour.shape[0]}", str(depth_path),
            )
        depth = raw.astype(np.float32) / np.float32(1000.0)
        depth[raw == 65535] = 0.0
        K = _resolve_intrinsics(self._intrinsics_override, self._K, colour.shape[1], colour.shape[0])
        return Frame(colour, depth, K, T.copy(), number / SEVEN_SCENES_FPS, number)


# ---------------------------------------------------------------------------- TUM RGB-D
def read_tum_list(path: Path) -> list[tuple[float, list[str]]]:
    """Lines of a TUM list file as ``(timestamp [s], remaining fields)``; ``#`` lines and
    blank lines are skipped. Commas count as separators, as in TUM's own tools."""
    if not path.exists():
        raise DatasetError(f"TUM list file {path} does not exist", str(path))
    rows = []
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.replace(",", " ").replace("\t", " ").split()
            try:
                stamp = float(fields[0])
            except ValueError as exc:
                raise DatasetError(f"{path}:{number}: bad timestamp {fields[0]!r}", str(path)) from exc
            rows.append((stamp, fields[1:]))
    return rows


def associate(first: Sequence[float], second: Sequence[float], max_difference: float) -> list[tuple[int, int]]:
    """One-to-one association of two stamp lists by nearest stamp (TUM's ``associate.py``):
    candidate pairs within ``max_difference`` [s] are taken greedily, closest first.
    Returns ``(index in first, index in second)`` pairs sorted by the first index."""
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return []
    order = np.argsort(b, kind="stable")
    b_sorted = b[order]
    candidates = []
    for i, t in enumerate(a):
        lo = np.searchsorted(b_sorted, t - max_difference, side="left")
        hi = np.searchsorted(b_sorted, t + max_difference, side="right")
        for j in range(lo, hi):
            diff = abs(t - b_sorted[j])
            if diff <= max_difference:
                candidates.append((diff, i, int(order[j])))
    candidates.sort()
    used_a, used_b, pairs = set(), set(), []
    for _, i, j in candidates:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j))
    pairs.sort()
    return pairs


class TumDataset(_Dataset):
    """A TUM RGB-D sequence folder (see the module docstring).

    Skipped colour frames are counted in ``skipped``: ``"no_depth"`` (no depth image within
    ``max_difference``), ``"no_pose"`` (stamp outside the ground-truth span).
    """

    format = "tum"

    def __init__(
        self,
        path,
        *,
        scale: float = 1.0,
        intrinsics: IntrinsicsLike = None,
        max_difference: float = TUM_MAX_DIFFERENCE,
        depth_scale: float = TUM_DEPTH_SCALE,
    ):
        super().__init__(path, scale)
        folder = _check_dir(path)
        if not (depth_scale > 0 and math.isfinite(depth_scale)):
            raise DatasetError(f"depth_scale must be positive, got {depth_scale!r}", depth_scale)
        self._intrinsics = intrinsics
        self._depth_scale = float(depth_scale)
        rgb = read_tum_list(folder / "rgb.txt")
        depth = read_tum_list(folder / "depth.txt")
        gt = read_tum_list(folder / "groundtruth.txt")
        if not rgb:
            raise DatasetError(f"no colour frames listed in {folder / 'rgb.txt'}", str(folder / "rgb.txt"))
        for name, rows in (("rgb.txt", rgb), ("depth.txt", depth)):
            for _, fields in rows:
                if not fields:
                    raise DatasetError(f"{folder / name}: a line has a timestamp but no file name", str(folder / name))
        gt_stamps, gt_poses = self._ground_truth(folder / "groundtruth.txt", gt)
        pairs = associate([r[0] for r in rgb], [d[0] for d in depth], max_difference)
        entries = []
        no_pose = 0
        for i, j in pairs:
            stamp = rgb[i][0]
            T = self._pose_at(gt_stamps, gt_poses, stamp)
            if T is None:
                no_pose += 1
                continue
            entries.append((i, folder / rgb[i][1][0], folder / depth[j][1][0], T, stamp))
        self.skipped = {"no_depth": len(rgb) - len(pairs), "no_pose": no_pose}
        if not entries:
            raise DatasetError(
                f"no usable TUM frames in {folder}: {len(rgb)} colour images, {len(pairs)} with depth, "
                f"{no_pose} of those outside the ground-truth span", str(folder),
            )
        self._entries = entries

    @staticmethod
    def _ground_truth(path: Path, rows) -> tuple[np.ndarray, np.ndarray]:
        stamps, poses = [], []
        for stamp, fields in rows:
            try:
                values = [float(v) for v in fields[:7]]
                if len(values) != 7:
                    raise ValueError(f"expected 'tx ty tz qx qy qz qw', got {len(values)} values")
                T = pose_from_vector(values)
            except (ValueError, InvalidPoseError) as exc:
                raise DatasetError(f"{path}: bad pose at stamp {stamp}: {exc}", str(path)) from exc
            stamps.append(stamp)
            poses.append(T)
        if not stamps:
            raise DatasetError(f"no poses in {path}", str(path))
        order = np.argsort(stamps, kind="stable")
        return np.asarray(stamps)[order], np.asarray(poses)[order]

    @staticmethod
    def _pose_at(stamps: np.ndarray, poses: np.ndarray, t: float) -> Optional[np.ndarray]:
        """Ground-truth pose interpolated at ``t`` [s]; None outside the recorded span."""
        if t < stamps[0] or t > stamps[-1]:
            return None
        k = int(np.searchsorted(stamps, t, side="left"))
        if stamps[k] == t:
            return poses[k].copy()
        t0, t1 = stamps[k - 1], stamps[k]
        return interpolate_pose(poses[k - 1], poses[k], float((t - t0) / (t1 - t0)))

    def _read(self, entry) -> Frame:
        index, colour_path, depth_path, T, stamp = entry
        colour = _read_colour(colour_path)
        raw = _read_depth_u16(depth_path)
        if raw.shape != colour.shape[:2]:
            raise DatasetError(
                f"depth image {depth_path} is {raw.shape[1]}x{raw.shape[0]}, colour image {colour_path} is "
                f"{colour.shape[1]}x{colour.shape[0]}", str(depth_path),
            )
        depth = (raw.astype(np.float64) / self._depth_scale).astype(np.float32)
        K = _resolve_intrinsics(self._intrinsics, "ros_default", colour.shape[1], colour.shape[0])
        return Frame(colour, depth, K, T.copy(), stamp, index)


# ---------------------------------------------------------------------------- world files
class WorldDataset(_Dataset):
    """The keyframes of a world file as frames (``index`` = keyframe id, id order).

    The file is opened read-only for each access, so no handle stays open.
    """

    format = "world"

    def __init__(self, path, *, scale: float = 1.0):
        super().__init__(path, scale)
        from worldfm_ros.core.world_file import WorldFile

        self._open = lambda: WorldFile.open(path, read_only=True)
        with self._open() as world:
            self._entries = [(kid,) for kid in world.ids()]
        if not self._entries:
            raise DatasetError(f"world file {path} holds no keyframes", str(path))
        self.skipped = {}

    def _read(self, entry) -> Frame:
        with self._open() as world:
            return self._to_frame(world.get(entry[0]))

    @staticmethod
    def _to_frame(kf: Keyframe) -> Frame:
        return Frame(kf.colour, kf.depth, kf.intrinsics, kf.T_world_cam, kf.stamp, kf.id)

    def __iter__(self) -> Iterator[Frame]:
        with self._open() as world:  # one open for the whole pass
            for kid in self.indices:
                yield self._finish(self._to_frame(world.get(kid)))


# ---------------------------------------------------------------------------- entry point
def open_dataset(path, format: str, *, scale: float = 1.0, intrinsics: IntrinsicsLike = None, **options):
    """Open a dataset: ``format`` is ``"7scenes"``, ``"tum"`` or ``"world"``.

    ``scale`` downscales images (0.5: 640x480 -> 320x240); ``intrinsics`` overrides the
    calibration of folder formats; further ``options`` go to the reader (TUM:
    ``max_difference``, ``depth_scale``). Raises :class:`DatasetError` (folder missing, no
    frames), ``WorldFileError`` (bad world file), ``InvalidSizeError`` (bad scale).
    """
    if format == "7scenes":
        return SevenScenesDataset(path, scale=scale, intrinsics=intrinsics, **options)
    if format == "tum":
        return TumDataset(path, scale=scale, intrinsics=intrinsics, **options)
    if format == "world":
        if intrinsics is not None or options:
            raise DatasetError("world files carry their own intrinsics; no options apply", str(path))
        return WorldDataset(path, scale=scale)
    raise DatasetError(f"unknown dataset format {format!r}; use one of {', '.join(FORMATS)}", format)
