"""The world model behind the node and ``worldfm-eval``: memory + renderer + persistence.

ROS-free and thread-safe. The node's callbacks and the evaluation CLI call the same methods,
so what is scored offline is exactly what the robot runs:

* :meth:`WorldService.ingest` - a posed RGB-D frame (any resolution) is downscaled to the
  keyframe size and offered to the memory's insertion policy; accepted keyframes are committed
  to the world file (``world_path``) at once, evicted ones removed from it.
* :meth:`WorldService.render` - retrieves the references for a camera under the lock, then
  renders *outside* the lock, so ingestion never waits for a render and vice versa.
* :meth:`WorldService.save` / :meth:`WorldService.reset` - write a complete world file /
  forget everything.

Conventions: ``T_world_cam`` float64 ``[4, 4]`` (or ``[B, 4, 4]``) camera optical poses;
colour ``uint8 [H, W, 3]`` RGB; depth ``float32 [H, W]`` metres, 0 = unknown.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence

import numpy as np

from worldfm_ros.core.camera import Intrinsics, validate_image_size
from worldfm_ros.core.colour_registration import register_to_colour
from worldfm_ros.core.errors import (
    EmptyMemoryError,
    InvalidPoseError,
    ModelLoadError,
    WorldFileError,
)
from worldfm_ros.core.image_ops import downscale_rgbd
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.memory import KeyframeMemory, MemoryConfig, depth_samples
from worldfm_ros.core.occupancy_map import OccupancyMap
from worldfm_ros.core.pose import invert_pose, validate_pose_matrix
from worldfm_ros.core.renderers.base import Renderer, RenderResult, references_per_view, render_batch

_log = logging.getLogger(__name__)

#: Largest side of a render the service accepts [px] (the contract serves up to 4096).
MAX_RENDER_SIDE = 4096
#: Most views one :meth:`WorldService.render_batch` call renders (``~/render_views``: 1..256).
MAX_BATCH_VIEWS = 256

#: Depth agreement for a point to count as already observed by a reference (fraction of depth).
_NOVELTY_DEPTH_TOLERANCE = 0.05
#: Sample grid ``(columns, rows)`` used to estimate how much of a new keyframe is novel.
_NOVELTY_GRID = (32, 24)


@dataclass(frozen=True)
class WorldServiceConfig:
    """Everything the world service needs; the node builds it from its parameters.

    Attributes:
        backend: renderer name (``geometric``, ``nearest``, ``learned``).
        device: ``cpu`` or ``cuda``.
        backend_fallback: if the backend or device cannot be set up (missing model, no CUDA),
            fall back to ``geometric`` on ``cpu`` with a warning instead of failing.
        model_path: checkpoint of the learned backend (empty = the shipped default).
        learned_runtime, learned_onnx_path, learned_engine_path, learned_precision,
            learned_cache_dir: how the learned backend runs its network (``torch`` |
            ``onnxruntime`` | ``tensorrt``; see :mod:`worldfm_ros.learned.runtime`); a runtime
            that cannot be set up falls back to ``torch`` with a warning under ``backend_fallback``.
        keyframe_width, keyframe_height: frames are stored downscaled to fit in this box,
            aspect ratio kept, never upscaled [px].
        memory: insertion / retrieval / eviction policy parameters.
        world_path: world file to load at start and commit each keyframe to; empty = memory only.
        max_render_side: largest render width or height served [px].
        colour_focal_ratio: the colour camera's focal length over the intrinsics' (1 =
            registered RGB-D, as the contract assumes). Otherwise every frame's depth is
            resampled onto the colour camera's grid and the keyframe gets the colour camera's
            intrinsics (:mod:`worldfm_ros.core.colour_registration`; Kinect v1 raw streams:
            about 0.9).
        map_resolution, map_min_height, map_max_height, map_floor_z, map_free_max_height: the
            occupancy map's cell side and height band [m] (:class:`~.occupancy_map.OccupancyMap`).
        depth_min_m, depth_max_m: valid depth range [m]; depth outside it is unknown (0) before
            a frame is judged or stored (CONTRACT.md v2).
    """

    backend: str = "geometric"
    device: str = "cpu"
    backend_fallback: bool = True
    model_path: str = ""
    learned_runtime: str = "torch"
    learned_onnx_path: str = ""
    learned_engine_path: str = ""
    learned_precision: str = "fp32"
    learned_cache_dir: str = ""
    keyframe_width: int = 320
    keyframe_height: int = 240
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    world_path: str = ""
    max_render_side: int = MAX_RENDER_SIDE
    colour_focal_ratio: float = 1.0
    map_resolution: float = 0.05
    map_min_height: float = 0.05
    map_max_height: float = 1.5
    map_floor_z: float = 0.0
    map_free_max_height: float = 0.5
    depth_min_m: float = 0.1
    depth_max_m: float = 10.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.depth_min_m) and math.isfinite(self.depth_max_m)
                and 0.0 <= self.depth_min_m < self.depth_max_m):
            raise ValueError(f"depth range must satisfy 0 <= depth_min_m < depth_max_m (finite), got "
                             f"[{self.depth_min_m!r}, {self.depth_max_m!r}]")
        validate_image_size(self.keyframe_width, self.keyframe_height)
        validate_image_size(self.max_render_side, self.max_render_side)
        register_to_colour(np.zeros((1, 1), np.float32), Intrinsics(1.0, 1.0, 0.0, 0.0, 1, 1),
                           self.colour_focal_ratio)  # raises ValueError on a bad ratio
        self.occupancy_map()  # raises InvalidMapOptionError (a ValueError) on bad map options

    def occupancy_map(self) -> OccupancyMap:
        """A new, empty occupancy map with these options."""
        return OccupancyMap(resolution=self.map_resolution, min_height=self.map_min_height,
                            max_height=self.map_max_height, floor_z=self.map_floor_z,
                            free_max_height=self.map_free_max_height)


@dataclass
class RenderOutput:
    """A render plus its bookkeeping; ``result`` holds the images (``B`` = 1 for the node)."""

    result: RenderResult
    render_ms: float  # wall time of retrieval + rendering [ms]


def build_renderer(config: WorldServiceConfig) -> tuple[Renderer, str, list[str]]:
    """``(renderer, backend name actually used, warnings)`` for ``config``.

    Raises ``ModelLoadError`` / ``ValueError`` when the requested backend cannot be built and
    ``backend_fallback`` is off.
    """
    from worldfm_ros.core.renderers import make_renderer

    warnings: list[str] = []
    device = config.device
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            if not config.backend_fallback:
                raise ModelLoadError("device 'cuda' requested but CUDA is not available", device)
            warnings.append("device 'cuda' requested but CUDA is not available: using cpu")
            device = "cpu"
    options = {"model_path": config.model_path} if config.backend == "learned" and config.model_path else {}
    if config.backend == "learned":
        options.update(runtime=config.learned_runtime, onnx_path=config.learned_onnx_path,
                       engine_path=config.learned_engine_path, precision=config.learned_precision,
                       cache_dir=config.learned_cache_dir, fallback=config.backend_fallback)
    try:
        renderer = make_renderer(config.backend, device=device, **options)
        warnings.extend(getattr(renderer, "runtime_warnings", []))
        return renderer, config.backend, warnings
    except (ModelLoadError, ImportError, OSError, RuntimeError) as error:
        if not config.backend_fallback or config.backend == "geometric":
            if isinstance(error, ModelLoadError):
                raise
            raise ModelLoadError(f"cannot set up backend {config.backend!r}: {error}", config.backend) from error
        warnings.append(f"backend {config.backend!r} unavailable ({error}): falling back to 'geometric'")
        return make_renderer("geometric", device=device), "geometric", warnings


class WorldService:
    """Thread-safe world model: keyframe memory, renderer and optional world file.

    Args:
        config: see :class:`WorldServiceConfig`.
        renderer: use this renderer instead of building one from ``config`` (tests, eval).
        on_keyframe: called (outside the lock) with each accepted keyframe.
        on_persist_error: called with a message for each failed world-file write (default:
            Python logging at error level; the node passes its own logger).
    """

    def __init__(
        self,
        config: WorldServiceConfig = WorldServiceConfig(),
        *,
        renderer: Optional[Renderer] = None,
        on_keyframe: Optional[Callable[[Keyframe], None]] = None,
        on_persist_error: Optional[Callable[[str], None]] = None,
    ):
        self.config = config
        self.on_persist_error = on_persist_error or _log.error
        self._commit_error: Optional[str] = None  # why the keyframe being inserted was not committed
        self.warnings: list[str] = []
        if renderer is None:
            renderer, self.backend, self.warnings = build_renderer(config)
        else:
            self.backend = getattr(renderer, "name", config.backend)
        self.renderer = renderer
        self.on_keyframe = on_keyframe
        self._lock = threading.Lock()
        self._world_file = None
        self._loading = False
        # The 2-D map of the remembered world, kept in step with the memory: each inserted
        # keyframe is integrated (also when a world file loads), an evicted one taken back out.
        self.occupancy_map = config.occupancy_map()
        self.memory = KeyframeMemory(config.memory, on_insert=self._persist_insert, on_evict=self._persist_evict)
        self.persist_errors = 0
        self.evicted_while_loading = 0
        if config.world_path:
            self._open_world(config.world_path)

    @property
    def device(self) -> str:
        """The device the renderer actually runs on (``cpu``, ``cuda``): after a fallback it
        differs from ``config.device``."""
        device = getattr(self.renderer, "device", None)
        if device is None:
            return self.config.device
        return str(getattr(device, "type", device))

    # ------------------------------------------------------------------ persistence
    def _open_world(self, path: str) -> None:
        from worldfm_ros.core.world_file import WorldFile

        self._world_file = WorldFile.open(path, create_if_missing=True)
        self._loading = True
        try:
            for keyframe in self._world_file.load():
                self.memory.add(keyframe)
        finally:
            self._loading = False
        _log.info("loaded %d keyframes from %s", len(self.memory), path)
        if self.evicted_while_loading:
            _log.warning("%s holds %d keyframes more than memory.max_keyframes=%d: the least useful "
                         "stay on disk only (the file is not changed)", path, self.evicted_while_loading,
                         self.config.memory.max_keyframes)

    def _persist_insert(self, keyframe: Keyframe) -> None:
        self.occupancy_map.integrate(keyframe)
        if self._world_file is not None and not self._loading:
            try:
                self._world_file.append(keyframe)
            except (OSError, WorldFileError) as error:
                self.persist_errors += 1
                self._commit_error = f"could not commit keyframe {keyframe.id} to {self.config.world_path}: {error}"
                self.on_persist_error(self._commit_error)

    def _persist_evict(self, keyframe_id: int) -> None:
        self.occupancy_map.remove(keyframe_id)
        if self._loading:
            # A world file larger than memory.max_keyframes: memory keeps the least redundant
            # keyframes, the file the user saved stays whole.
            self.evicted_while_loading += 1
            return
        if self._world_file is not None:
            try:
                self._world_file.remove(keyframe_id)
            except (OSError, WorldFileError) as error:
                self.persist_errors += 1
                self.on_persist_error(f"could not remove keyframe {keyframe_id} from {self.config.world_path}: {error}")

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        with self._lock:
            return len(self.memory)

    @property
    def keyframe_count(self) -> int:
        return len(self)

    @property
    def memory_bytes(self) -> int:
        with self._lock:
            return self.memory.memory_bytes

    def keyframes(self) -> list[Keyframe]:
        """A snapshot of every keyframe, id order."""
        with self._lock:
            return self.memory.keyframes()

    def first_keyframe(self) -> Optional[Keyframe]:
        """The keyframe with the smallest id, or None when empty."""
        with self._lock:
            frames = self.memory.keyframes()
        return frames[0] if frames else None

    def retrieve(self, T_world_cam: np.ndarray, intrinsics: Intrinsics, k: Optional[int] = None) -> list[Keyframe]:
        """References for one camera (the memory's retrieval, under the lock).

        Raises ``EmptyMemoryError``, ``InvalidPoseError``.
        """
        with self._lock:
            return self.memory.retrieve(T_world_cam, intrinsics, k)

    # ------------------------------------------------------------------ updates
    def ingest(self, frame: Keyframe) -> Optional[int]:
        """Offer a posed RGB-D frame to the memory; returns the new keyframe id or None."""
        keyframe = self.ingest_keyframe(frame)
        return None if keyframe is None else keyframe.id

    def ingest_keyframe(self, frame: Keyframe) -> Optional[Keyframe]:
        """As :meth:`ingest`, returning the stored (downscaled) keyframe. Its
        ``extras["coverage_gain"]`` is the fraction of its view no earlier keyframe saw.

        With a world file, the keyframe is returned only once it is committed to it: a failed
        write raises :class:`KeyframeNotCommittedError` (the keyframe stays in memory and
        ``persist_errors`` counts it), so whoever announces keyframes never announces one
        that a restart would not find.
        """
        # Judge the frame at the resolution it would be stored at: the same frame offered at
        # 640x480 (the node) or 320x240 (worldfm-eval) gets the same decision.
        small = self._downscaled(frame)
        with self._lock:
            if self.memory.is_redundant(small):
                return None  # cheap exit before the novelty estimate
            # One lock: nothing can change the memory between the policy's verdict and the
            # insertion, so the frame is inserted without being judged a second time.
            references = self.memory.retrieve(small.T_world_cam, small.intrinsics) if len(self.memory) else []
            small.extras["coverage_gain"] = view_novelty(small, references)
            self._commit_error = None
            self.memory.add(small)
            commit_error, self._commit_error = self._commit_error, None
        if commit_error is not None:
            raise KeyframeNotCommittedError(commit_error, small)
        if self.on_keyframe is not None:
            self.on_keyframe(small)
        return small

    def _downscaled(self, frame: Keyframe) -> Keyframe:
        h, w = frame.depth.shape
        s = min(self.config.keyframe_width / w, self.config.keyframe_height / h, 1.0)
        width, height = max(1, int(round(w * s))), max(1, int(round(h * s)))
        # Depth outside [depth.min_m, depth.max_m] is unknown, before any averaging.
        valid = (frame.depth >= self.config.depth_min_m) & (frame.depth <= self.config.depth_max_m)
        depth = np.where(valid, frame.depth, np.float32(0.0)).astype(np.float32, copy=False)
        colour, depth, intrinsics = downscale_rgbd(frame.colour, depth, frame.intrinsics, width, height)
        if colour is frame.colour:
            colour = colour.copy()  # the caller may reuse its buffers (depth is a new array)
        depth, intrinsics = register_to_colour(depth, intrinsics, self.config.colour_focal_ratio)
        return Keyframe(colour, depth, intrinsics, frame.T_world_cam.copy(), frame.stamp)

    def reset(self) -> None:
        """Forget every keyframe and empty the world file, if any."""
        with self._lock:
            self.memory.clear()
            self.occupancy_map.clear()
            if self._world_file is not None:
                self._world_file.clear()

    def load_keyframes(self, keyframes) -> int:
        """Insert ``keyframes`` unconditionally, as loading a world file does (ids kept, the
        cap enforced, the map updated), without committing them to the world file; returns
        the keyframe count. For a world read with :func:`~.world_file.read_world`."""
        with self._lock:
            self._loading = True
            try:
                for keyframe in keyframes:
                    self.memory.add(keyframe)
            finally:
                self._loading = False
            return len(self.memory)

    def save(self, path: str) -> int:
        """Write a complete world file at exactly ``path``; returns the keyframe count.

        Raises ``WorldFileError`` for an empty path or a failed write.
        """
        if not path:
            raise WorldFileError("save path is empty", path)
        with self._lock:
            frames = self.memory.keyframes()
            if self._world_file is not None and _same_file(path, self.config.world_path):
                # Every keyframe is committed already; fold the write-ahead log into the main
                # file so that file alone is complete (e.g. to be copied elsewhere).
                self._world_file.checkpoint()
                return len(frames)
        from worldfm_ros.core.world_file import write_world

        write_world(path, frames)
        return len(frames)

    def close(self) -> None:
        with self._lock:
            if self._world_file is not None and hasattr(self._world_file, "close"):
                self._world_file.close()
            self._world_file = None

    # ------------------------------------------------------------------ start-up
    def warm_up(self, render_sizes: Sequence[tuple[int, int]] = ()) -> float:
        """Run ingestion and rendering once on a small synthetic scene, in a scratch world
        (same configuration and renderer, no world file), so that compiled kernels, lazy
        imports and the renderer's first-call set-up are paid before live data arrive.

        Why: the first keyframe a node ingests used to load every compiled kernel on the
        ingest thread (numba cache, SciPy/BLAS imports). Measured in the live-stream test's
        node: 3-8.8 s for that first pair (0.6 s in a quiet process), during which a 30 Hz
        camera queued more pairs than ``ingest.queue_size`` and they were skipped. This
        world's memory, map and file are not touched. ``render_sizes`` adds ``(width,
        height)`` views to the keyframe-size one (e.g. the node's default render size).
        Returns the seconds it took.
        """
        t0 = time.perf_counter()
        scratch = WorldService(replace(self.config, world_path=""), renderer=self.renderer)
        width, height = self.config.keyframe_width, self.config.keyframe_height
        frames = _warm_up_frames(2 * width, 2 * height)  # twice the keyframe size: downscaled
        for frame in frames:
            scratch.ingest_keyframe(frame)
        middle = frames[0].T_world_cam.copy()
        middle[:3, 3] = 0.5 * (frames[0].T_world_cam[:3, 3] + frames[1].T_world_cam[:3, 3])
        keyframe_camera = frames[0].intrinsics.resized(width, height)
        sizes = [(width, height), (max(1, width // 4), max(1, height // 4)), *render_sizes]
        for size in dict.fromkeys(sizes):  # in order, once each
            camera = keyframe_camera.resized(*size)
            scratch.render(middle, camera)
            scratch.render_batch(np.stack([middle, frames[1].T_world_cam]), camera)
        return time.perf_counter() - t0

    # ------------------------------------------------------------------ rendering
    def render(self, T_world_cam: np.ndarray, intrinsics: Intrinsics, want_depth: bool = True) -> RenderOutput:
        """Render the world seen by cameras at ``T_world_cam`` (``[4, 4]`` or ``[B, 4, 4]``).

        ``want_depth`` is a hint: the current renderers produce depth at no extra cost, so
        ``result.depth`` is always filled.
        Raises ``InvalidPoseError``, ``InvalidSizeError``, ``EmptyMemoryError``.
        """
        del want_depth
        t0 = time.perf_counter()
        T = np.asarray(T_world_cam, dtype=np.float64)
        if T.ndim == 2:
            T = T[None]
        if T.ndim != 3 or T.shape[1:] != (4, 4) or len(T) == 0:
            raise InvalidPoseError(f"poses must be [4, 4] or [B, 4, 4], got shape {T.shape}", T.shape)
        for pose in T:
            validate_pose_matrix(pose)
        validate_image_size(intrinsics.width, intrinsics.height, self.config.max_render_side)
        with self._lock:
            if not len(self.memory):
                raise EmptyMemoryError("the world holds no keyframe yet", 0)
            references = self._references(T, intrinsics)
        # Keyframes are never modified after insertion: rendering outside the lock is safe
        # even if one of them is evicted meanwhile.
        result = self.renderer.render(references, T, intrinsics)
        return RenderOutput(result=result, render_ms=(time.perf_counter() - t0) * 1e3)

    def render_batch(self, T_world_cam: np.ndarray, intrinsics: Intrinsics) -> RenderOutput:
        """Render ``B`` views (``T_world_cam [B, 4, 4]``, 1 <= B <= :data:`MAX_BATCH_VIEWS`) in
        one batch: each view from the references :meth:`render` would retrieve for it alone
        (so view ``b`` has the same bytes as ``render(T_world_cam[b])``), all views in one
        ``render_batch`` call of the renderer (:func:`~.renderers.base.render_batch`).
        ``result.reference_ids_per_view`` lists each view's references.

        Raises ``InvalidPoseError`` (naming the 0-based index of the first bad pose),
        ``InvalidSizeError``, ``EmptyMemoryError``.
        """
        t0 = time.perf_counter()
        T = np.asarray(T_world_cam, dtype=np.float64)
        if T.ndim != 3 or T.shape[1:] != (4, 4) or not 1 <= len(T) <= MAX_BATCH_VIEWS:
            raise InvalidPoseError(
                f"poses must be [B, 4, 4] with B in 1..{MAX_BATCH_VIEWS}, got shape {T.shape}", T.shape)
        for b, pose in enumerate(T):
            try:
                validate_pose_matrix(pose)
            except InvalidPoseError as error:
                raise InvalidPoseError(f"pose {b}: {error}", b) from error
        validate_image_size(intrinsics.width, intrinsics.height, self.config.max_render_side)
        k = self.references_per_view()
        with self._lock:
            if not len(self.memory):
                raise EmptyMemoryError("the world holds no keyframe yet", 0)
            references = self.memory.retrieve_many(T, intrinsics, k)
        result = render_batch(self.renderer, references, T, intrinsics)
        return RenderOutput(result=result, render_ms=(time.perf_counter() - t0) * 1e3)

    def references_per_view(self, renderer: Optional[Renderer] = None) -> int:
        """References retrieved per view for ``renderer`` (default: this service's)."""
        return references_per_view(renderer or self.renderer, self.memory.config.retrieval_k)

    def _references(self, T: np.ndarray, intrinsics: Intrinsics) -> list[Keyframe]:
        chosen: dict[int, Keyframe] = {}
        k = self.references_per_view()
        for pose in T:
            for keyframe in self.memory.retrieve(pose, intrinsics, k):
                chosen.setdefault(keyframe.id, keyframe)
        return list(chosen.values())


def _warm_up_frames(width: int, height: int) -> list[Keyframe]:
    """Two posed RGB-D frames of a textured wall 2 m ahead of a camera 0.5 m above the floor
    (the second 0.3 m to the side, turned 10 degrees): enough for the insertion policy, the
    map and the renderers to run every stage once (:meth:`WorldService.warm_up`)."""
    f = 0.8 * width
    intrinsics = Intrinsics(f, f, width / 2.0, height / 2.0, width, height)
    v, u = np.mgrid[0:height, 0:width]
    colour = np.stack([(u * 255 // max(width - 1, 1)), (v * 255 // max(height - 1, 1)),
                       ((u // 8 + v // 8) % 2) * 255], axis=-1).astype(np.uint8)
    depth = np.full((height, width), 2.0, np.float32) + 0.2 * np.float32(u > width // 2)
    looking_along_x = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    frames = []
    for shift, yaw_deg in ((0.0, 0.0), (0.3, 10.0)):
        c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
        T = np.eye(4)
        T[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ looking_along_x
        T[:3, 3] = (0.0, shift, 0.5)
        frames.append(Keyframe(colour.copy(), depth.copy(), intrinsics, T, float(len(frames))))
    return frames


class KeyframeNotCommittedError(WorldFileError):
    """A keyframe was accepted into memory but could not be committed to the world file;
    ``.value`` is the keyframe (in memory, not on disk)."""


def view_novelty(frame: Keyframe, references: Sequence[Keyframe]) -> float:
    """Fraction of ``frame``'s valid depth samples that no reference observed, in [0, 1].

    Samples a ``32 x 24`` grid of the frame's depth, moves the points into each reference
    camera and counts a point as observed when it projects inside that image onto a depth
    within 5 % of its own. A frame without valid depth is fully novel (1.0).
    """
    pts_world, _ = depth_samples(frame, _NOVELTY_GRID)
    if len(pts_world) == 0:
        return 1.0
    seen = np.zeros(len(pts_world), dtype=bool)
    for ref in references:
        T_ref_world = invert_pose(ref.T_world_cam)
        pc = pts_world @ T_ref_world[:3, :3].T + T_ref_world[:3, 3]
        zc = pc[:, 2]
        front = zc > 1e-6
        Kr = ref.intrinsics
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.round(Kr.fx * pc[:, 0] / zc + Kr.cx)
            v = np.round(Kr.fy * pc[:, 1] / zc + Kr.cy)
        inside = front & (u >= 0) & (u < Kr.width) & (v >= 0) & (v < Kr.height)
        idx = np.flatnonzero(inside)
        ref_z = ref.depth[v[idx].astype(np.int64), u[idx].astype(np.int64)]
        agree = (ref_z > 0) & (np.abs(ref_z - zc[idx]) <= _NOVELTY_DEPTH_TOLERANCE * zc[idx])
        seen[idx[agree]] = True
    return float(1.0 - seen.mean())


def _same_file(a: str, b: str) -> bool:
    if not a or not b:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)
