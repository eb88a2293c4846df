"""Posed RGB-D frames from a recorded rosbag2 (SQLite ``.db3`` or MCAP), without ROS.

Bags are read with the pure-Python ``rosbags`` library (no rclpy, no ``rosbag2_py``); its
deserialised messages carry the ROS field names, so the node's duck-typed conversions in
:mod:`worldfm_ros.ros.image_conversion` read them unchanged. The module lives in ``ros/``
(not the core) only because it uses those message conversions; it imports nothing of ROS.

The frames are assembled as the node assembles them (../shared/CONTRACT.md), with the same
core parts: :class:`~worldfm_ros.core.frame_sync.FrameSync` pairs colour and depth within
``max_gap``, :class:`~worldfm_ros.core.odometry_buffer.OdometryBuffer` gives the base pose at
the colour stamp (linear + slerp, extrapolation up to ``max_extrapolation``), images with
non-zero ``d`` are undistorted, and ``T_world_cam = T_world_base @ T_base_cam``.

One difference from a live node, which must decide when an image arrives: a bag holds the
future, so a paired frame waits (at most ``lookahead`` seconds of bag time) until odometry has
passed its stamp and a ``CameraInfo`` has been read, and is then *interpolated* where the node
would have had to extrapolate. Stamps are the header stamps, as recorded.

Bad input never stops the reading: undecodable messages, unknown encodings, short buffers,
non-finite poses and invalid calibrations are skipped and counted by reason
(:attr:`BagStats.bad_messages`); frames that cannot be completed are counted by reason
(:attr:`BagStats.dropped`). Each reason is reported once through ``on_warning``.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

from worldfm_ros.core.errors import WorldFMError
from worldfm_ros.core.frame_sync import FrameSync, SyncDrop, SyncedPair
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.odometry_buffer import OdometryBuffer, PoseUnavailableError
from worldfm_ros.core.pose import pose_from_position_quaternion
from worldfm_ros.core.undistort import Undistorter
from worldfm_ros.ros.image_conversion import (
    COLOUR_ENCODINGS,
    DEPTH_ENCODINGS,
    camera_info_to_intrinsics,
    image_to_depth,
    image_to_rgb,
)

#: Message type of each stream (rosbag2 spelling).
IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
ODOMETRY_TYPE = "nav_msgs/msg/Odometry"
#: Storage files ``rosbags`` reads directly.
STORAGE_SUFFIXES = (".mcap", ".db3")
#: Default bag time a paired frame may wait for odometry past its stamp / a CameraInfo [s].
DEFAULT_LOOKAHEAD = 1.0


class BagError(WorldFMError):
    """The bag cannot be opened or read; ``.value`` is its path."""


class BagTopicError(BagError, LookupError):
    """Topics missing from the bag or of the wrong type; ``.value`` lists the missing names.

    ``.available`` maps each topic of the bag to its message type.
    """

    def __init__(self, message: str, missing: list[str], available: dict[str, str]):
        super().__init__(message, missing)
        self.available = available


def resolve_topic(name: str, namespace: str = "") -> str:
    """Fully resolved topic name: absolute names stay, relative ones go under ``namespace``.

    ``resolve_topic("odom") == "/odom"``; ``resolve_topic("odom", "robot1") == "/robot1/odom"``.
    """
    if not name or name == "/":
        raise ValueError(f"topic name must not be empty, got {name!r}")
    if name.startswith("~"):
        raise ValueError(f"private topic names (~/...) have no meaning in a bag: {name!r}")
    if name.startswith("/"):
        return name
    ns = namespace.strip("/")
    return f"/{ns}/{name}" if ns else f"/{name}"


@dataclass(frozen=True)
class BagTopics:
    """The four input topics (fully resolved names). Defaults: the contract's names in the
    root namespace."""

    image: str = "/camera/image_raw"
    depth: str = "/camera/depth/image_raw"
    info: str = "/camera/camera_info"
    odom: str = "/odom"

    @classmethod
    def resolved(
        cls,
        namespace: str = "",
        *,
        image: str = "camera/image_raw",
        depth: str = "camera/depth/image_raw",
        info: str = "camera/camera_info",
        odom: str = "odom",
    ) -> "BagTopics":
        """Names resolved like the node's relative subscriptions under ``namespace``."""
        return cls(
            image=resolve_topic(image, namespace),
            depth=resolve_topic(depth, namespace),
            info=resolve_topic(info, namespace),
            odom=resolve_topic(odom, namespace),
        )

    def expected_types(self) -> dict[str, str]:
        """``{topic: message type}``."""
        return {self.image: IMAGE_TYPE, self.depth: IMAGE_TYPE, self.info: CAMERA_INFO_TYPE, self.odom: ODOMETRY_TYPE}


@dataclass
class BagStats:
    """What a pass over the bag saw.

    Attributes:
        messages: messages read, by topic.
        bad_messages: messages skipped as malformed, by reason.
        dropped: colour frames not turned into posed frames, by reason (sync, pose, calibration).
        pairs: colour + depth pairs formed within ``max_gap``.
        frames: posed frames produced.
        read_error: why the bag could not be read to its end, or None.
    """

    messages: Counter = field(default_factory=Counter)
    bad_messages: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    pairs: int = 0
    frames: int = 0
    read_error: Optional[str] = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": dict(self.messages),
            "bad_messages": dict(self.bad_messages),
            "dropped": dict(self.dropped),
            "pairs": self.pairs,
            "frames": self.frames,
            "read_error": self.read_error,
        }


def _storage_path(path: Path) -> Path:
    """The path ``rosbags`` opens: a bag directory with ``metadata.yaml``, a storage file, or
    a directory holding exactly one storage file (a bag whose metadata was lost)."""
    if not path.exists():
        raise BagError(f"bag {path}: does not exist", str(path))
    if path.is_dir():
        if (path / "metadata.yaml").is_file():
            return path
        files = sorted(p for p in path.iterdir() if p.suffix in STORAGE_SUFFIXES)
        if len(files) == 1:
            return files[0]
        raise BagError(
            f"bag {path}: a directory without metadata.yaml and with {len(files)} storage files "
            f"({', '.join(STORAGE_SUFFIXES)}); pass one storage file",
            str(path),
        )
    if path.suffix == ".bag":
        raise BagError(f"bag {path}: ROS 1 bags are not supported; convert it with `rosbags-convert`", str(path))
    if path.suffix not in STORAGE_SUFFIXES:
        raise BagError(f"bag {path}: unknown storage format {path.suffix!r} (expected a bag directory, "
                       f"{' or '.join(STORAGE_SUFFIXES)})", str(path))
    return path


def _stamp(header: Any) -> float:
    """``std_msgs/Header`` stamp -> seconds."""
    return int(header.stamp.sec) + int(header.stamp.nanosec) * 1e-9


class BagFrameReader:
    """Reads posed RGB-D frames from one rosbag2 recording.

    Args:
        path: bag directory (with ``metadata.yaml``) or a ``.mcap`` / ``.db3`` file.
        topics: input topics (fully resolved).
        T_base_cam: ``float64 [4, 4]`` camera optical pose in the odometry child frame
            (``camera_to_base``).
        max_gap: largest colour / depth stamp difference of a pair [s].
        max_extrapolation: largest odometry extrapolation past its newest sample [s].
        lookahead: bag time a paired frame may wait for later odometry or a first
            ``CameraInfo`` before it is resolved with what there is [s].
        on_warning: called once per new problem reason with a one-line description.

    Use as a context manager (or :meth:`open` / :meth:`close`); :meth:`frames` runs one pass.
    Raises :class:`BagError` when the bag cannot be opened and :class:`BagTopicError` when a
    topic is missing or of another type (the message lists the bag's topics).
    """

    def __init__(
        self,
        path,
        topics: BagTopics = BagTopics(),
        *,
        T_base_cam: np.ndarray,
        max_gap: float = 0.02,
        max_extrapolation: float = 0.1,
        lookahead: float = DEFAULT_LOOKAHEAD,
        on_warning: Optional[Callable[[str], None]] = None,
    ):
        if not (math.isfinite(lookahead) and lookahead >= 0):
            raise ValueError(f"lookahead must be finite and >= 0, got {lookahead!r}")
        self.path = Path(path)
        self.topics = topics
        self.T_base_cam = np.asarray(T_base_cam, dtype=np.float64)
        if self.T_base_cam.shape != (4, 4):
            raise ValueError(f"T_base_cam must be [4, 4], got shape {self.T_base_cam.shape}")
        self.max_gap = float(max_gap)
        self.max_extrapolation = float(max_extrapolation)
        self.lookahead = float(lookahead)
        self.on_warning = on_warning
        self.stats = BagStats()
        self._warned: set[str] = set()
        self._reader = None
        self._connections: list = []

    # ------------------------------------------------------------------ opening
    def open(self) -> "BagFrameReader":
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        storage = _storage_path(self.path)
        try:
            # Bags without embedded definitions (Humble and older sqlite3 bags) use the
            # standard types; these four have not changed across ROS 2 releases.
            reader = AnyReader([storage], default_typestore=get_typestore(Stores.ROS2_KILTED))
            reader.open()
        except Exception as error:  # rosbags raises its own errors, OSError, sqlite3 and YAML errors
            raise BagError(f"bag {self.path}: cannot be opened: {error}", str(self.path)) from error
        self._reader = reader
        try:
            self._connections = self._select_connections()
        except BagTopicError:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            finally:
                self._reader = None

    def __enter__(self) -> "BagFrameReader":
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def available_topics(self) -> dict[str, str]:
        """``{topic: message type}`` of every topic in the bag."""
        self._check_open()
        return {topic: (info.msgtype or "?") for topic, info in sorted(self._reader.topics.items())}

    @property
    def message_count(self) -> int:
        """Messages on the four input topics (from the bag's index)."""
        self._check_open()
        return sum(c.msgcount for c in self._connections)

    def _check_open(self) -> None:
        if self._reader is None:
            raise BagError(f"bag {self.path}: is not open", str(self.path))

    def _select_connections(self) -> list:
        available = self.available_topics()
        missing = [t for t in self.topics.expected_types() if t not in available]
        wrong = [f"{t} is {available[t]}, expected {want}"
                 for t, want in self.topics.expected_types().items() if t in available and available[t] != want]
        if missing or wrong:
            listing = "\n".join(f"  {t} [{m}]" for t, m in available.items()) or "  (none)"
            problems = ([f"missing topic(s): {', '.join(missing)}"] if missing else []) + wrong
            raise BagTopicError(
                f"bag {self.path}: {'; '.join(problems)}.\nTopics in the bag:\n{listing}\n"
                "Choose others with --image-topic / --depth-topic / --info-topic / --odom-topic or --namespace.",
                missing + [w.split(" ", 1)[0] for w in wrong],
                available,
            )
        wanted = set(self.topics.expected_types())
        return [c for c in self._reader.connections if c.topic in wanted]

    # ------------------------------------------------------------------ problems
    def _bad(self, reason: str, detail: str) -> None:
        self.stats.bad_messages[reason] += 1
        self._warn_once(reason, f"skipped bad message ({reason}): {detail}")

    def _drop(self, reason: str, detail: str) -> None:
        self.stats.dropped[reason] += 1
        self._warn_once(reason, f"dropped frame ({reason}): {detail}")

    def _warn_once(self, reason: str, text: str) -> None:
        if reason not in self._warned:
            self._warned.add(reason)
            if self.on_warning is not None:
                self.on_warning(text + " (further cases are only counted)")

    # ------------------------------------------------------------------ the pass
    def frames(self, progress: Optional[Callable[[int], None]] = None) -> Iterator[Keyframe]:
        """Posed frames in stamp order: full-resolution :class:`Keyframe` objects (``id`` -1)
        with ``colour uint8 [H, W, 3]`` RGB, ``depth float32 [H, W]`` metres (0 = invalid),
        undistorted images and their intrinsics, ``T_world_cam`` and the colour stamp [s].

        ``progress(n)`` is called after every ``n`` messages read. A bag that cannot be read
        to its end (truncated file) ends the pass early with :attr:`BagStats.read_error` set.
        """
        self._check_open()
        topics, reader, stats = self.topics, self._reader, self.stats
        sync: FrameSync = FrameSync(max_gap=self.max_gap)
        odom = OdometryBuffer(max_extrapolation=self.max_extrapolation, max_samples=100_000)
        undistorter = Undistorter()
        pending: deque[tuple[SyncedPair, int]] = deque()  # (pair, bag time [ns] it was formed)
        camera: Optional[tuple[Any, Any]] = None  # (CameraInfo, Intrinsics), latest valid
        colour_in = 0  # colour images offered to the sync (finite stamp)
        lookahead_ns = int(self.lookahead * 1e9)

        def resolve(pair: SyncedPair) -> Optional[Keyframe]:
            try:
                T_world_base = odom.pose_at(pair.stamp)
            except PoseUnavailableError as error:
                self._drop(f"no pose: {error.reason.name.lower()}", str(error))
                return None
            if camera is None:
                self._drop("no camera_info", f"no valid {topics.info} before frame at {pair.stamp:.6f} s")
                return None
            info, intrinsics = camera
            colour = self._convert(pair.colour, image_to_rgb, COLOUR_ENCODINGS, "colour")
            depth = self._convert(pair.depth, image_to_depth, DEPTH_ENCODINGS, "depth")
            if colour is None or depth is None:
                self._drop("bad image", f"frame at {pair.stamp:.6f} s has a malformed colour or depth image")
                return None
            try:
                colour, depth = undistorter(colour, depth, intrinsics, np.asarray(info.d, dtype=np.float64),
                                            info.distortion_model)
                return Keyframe(colour, depth, intrinsics, T_world_base @ self.T_base_cam, pair.stamp)
            except WorldFMError as error:
                self._drop(f"unusable frame: {type(error).__name__}", str(error))
                return None

        def ready(now_ns: int, final: bool) -> Iterator[Keyframe]:
            while pending:
                pair, formed_ns = pending[0]
                latest = odom.latest()
                caught_up = latest is not None and latest[0] >= pair.stamp and camera is not None
                if not (final or caught_up or now_ns - formed_ns >= lookahead_ns):
                    return
                pending.popleft()
                frame = resolve(pair)
                if frame is not None:
                    stats.frames += 1
                    yield frame

        messages = reader.messages(connections=self._connections)
        count_since_progress = 0
        now_ns = 0
        while True:
            try:
                item = next(messages, None)
            except Exception as error:  # a truncated or damaged storage file
                stats.read_error = f"{type(error).__name__}: {error}"
                self._warn_once("read error", f"bag {self.path} could not be read to its end: {stats.read_error}")
                break
            if item is None:
                break
            connection, now_ns, raw = item
            topic = connection.topic
            stats.messages[topic] += 1
            count_since_progress += 1
            if progress is not None and count_since_progress >= 16:
                progress(count_since_progress)
                count_since_progress = 0
            try:
                msg = reader.deserialize(raw, connection.msgtype)
            except Exception as error:  # rosbags' SerdeError and whatever a damaged buffer provokes
                self._bad(f"{topic}: undecodable", f"{type(error).__name__}: {error}")
                continue
            if topic == topics.odom:
                try:
                    p, q = msg.pose.pose.position, msg.pose.pose.orientation
                    T = pose_from_position_quaternion([p.x, p.y, p.z], [q.x, q.y, q.z, q.w])
                    odom.add(_stamp(msg.header), T)
                except (WorldFMError, ValueError) as error:
                    self._bad(f"{topic}: invalid pose", str(error))
            elif topic == topics.info:
                try:
                    camera = (msg, camera_info_to_intrinsics(msg))
                except WorldFMError as error:
                    self._bad(f"{topic}: invalid calibration", str(error))
            else:
                stamp = _stamp(msg.header)
                if topic == topics.image:
                    colour_in += 1
                    pairs = sync.add_colour(stamp, msg)
                else:
                    pairs = sync.add_depth(stamp, msg)
                for pair in pairs:
                    stats.pairs += 1
                    pending.append((pair, now_ns))
            yield from ready(now_ns, final=False)
        if progress is not None and count_since_progress:
            progress(count_since_progress)
        yield from ready(now_ns, final=True)
        # Sync drops, plus colour images still waiting for depth when the bag ended.
        for reason, n in sync.drops.items():
            stats.dropped[f"sync: {reason.name.lower()}"] += n
        colour_drops = sum(n for r, n in sync.drops.items() if r in (SyncDrop.COLOUR_UNPAIRED, SyncDrop.COLOUR_OVERFLOW))
        waiting = colour_in - stats.pairs - colour_drops
        if waiting > 0:
            stats.dropped["sync: colour_unpaired_at_end"] += waiting
        for reason, n in list(stats.dropped.items()):
            if reason.startswith("sync:") and n:
                self._warn_once(reason, f"{n} image(s) dropped ({reason}) with sync.max_gap = {self.max_gap} s")

    def _convert(self, msg: Any, convert: Callable[[Any], np.ndarray], encodings: tuple, what: str):
        """``convert(msg)`` or None (counted) for a malformed image."""
        if msg.encoding not in encodings:
            self._bad(f"{what}: unsupported encoding {msg.encoding!r}",
                      f"{what} image encoding {msg.encoding!r} (supported: {', '.join(encodings)})")
            return None
        try:
            return convert(msg)
        except WorldFMError as error:
            self._bad(f"{what}: malformed image", str(error))
            return None
