"""``worldfm_node``: the ROS 2 adapter around :class:`~worldfm_ros.core.world_service.WorldService`.

A lifecycle node (``configure`` loads the world and the renderer, ``activate`` starts the
streams; ``autostart`` runs both at start-up). Callbacks only convert messages, call the
ROS-free core and convert back; every failure is answered (``success: false``) or logged
(throttled) and counted, and never escapes a callback.

Threads: a :class:`MultiThreadedExecutor` runs the callbacks, each subscription, service
and timer in a mutually exclusive callback group of its own
(:mod:`worldfm_ros.ros.callback_groups` says why: shared groups made the executor spin and
starve everything else), and one ingest worker thread (:mod:`worldfm_ros.ros.ingest`) does
all the work on camera frames, so ingestion never waits for a render and renders never
wait for ingestion:

* colour and depth callbacks only hand the message to the ingest pipeline's bounded queue
  (pairing, decoding, odometry waits and keyframe insertion run on its worker thread; when
  it falls behind it skips the oldest pairs and counts them in
  ``~/status.pairs_skipped_busy``);
* odometry, camera info and ``sim/cmd_vel`` are cheap and never queued behind an image;
* ``~/render_view`` and ``~/render_views`` render on executor threads;
* the simulated robot's timer (:mod:`worldfm_ros.ros.sim`; a tick that finds a render still
  running is skipped, so no stale frame is ever queued);
* save / reset / set_pose services and the 1 Hz status.

The world service holds one lock for the memory; a render copies its K references out
under it and renders outside it.

Interfaces: see ``CONTRACT.md`` (topic names, QoS, services, parameters).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter, deque
from typing import Optional

import numpy as np
import rclpy
from nav_msgs.msg import Odometry
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from worldfm_ros.core.camera import Intrinsics, validate_image_size
from worldfm_ros.core.errors import EmptyMemoryError, InvalidIntrinsicsError, WorldFMError
from worldfm_ros.core.frame_sync import FrameSync, SyncDrop, SyncedPair
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.odometry_buffer import OdometryBuffer, PoseUnavailableError
from worldfm_ros.core.pose import invert_pose
from worldfm_ros.core.startup_objects import freeze_startup_objects, unfreeze_startup_objects
from worldfm_ros.core.undistort import Undistorter
from worldfm_ros.core.world_service import MAX_RENDER_SIDE, KeyframeNotCommittedError, WorldService
from worldfm_ros.msg import KeyframeInfo, WorldStatus
from worldfm_ros.ros.config import (
    NODE_NAME,
    ConfigError,
    NodeConfig,
    declare_parameters,
    unknown_parameter_warnings,
    usage,
)
from worldfm_ros.ros.dds import apply_dds_profile
from worldfm_ros.ros.callback_groups import own_group
from worldfm_ros.ros.executor import make_executor
from worldfm_ros.ros.ingest import IngestPipeline
from worldfm_ros.ros.map_publisher import MapPublisher
from worldfm_ros.ros.render_views import serve_render_views
from worldfm_ros.ros.sim import Simulator
from worldfm_ros.ros.image_conversion import (
    camera_info_to_intrinsics,
    depth_to_image,
    image_to_depth,
    image_to_rgb,
    rgb_to_image,
    undistort_rgbd,
)
from worldfm_ros.ros.messages import (
    matrix_to_pose,
    odometry_to_pose,
    pose_to_matrix,
    seconds_to_time,
    time_to_seconds,
)
from worldfm_ros.srv import RenderView, RenderViews, SaveWorld

#: Least wall time a pair newer than the newest odometry waits for it [s]. The odometry of
#: an image's stamp is often published a few ms after the image, but on a loaded 2-core
#: machine its callback has run more than 100 ms after the image's (CI, session 3), so the
#: wait is not tied to ``sync.max_extrapolation`` alone (that bounds stamps, not wall time).
_MIN_ODOM_WAIT_S = 0.5

#: Minimum seconds between two warnings from the same place.
WARN_PERIOD = 5.0
#: Window over which ingest and sim rates are measured [s].
RATE_WINDOW = 3.0

_RELIABLE = dict(
    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST
)
QOS_IMAGES = QoSProfile(depth=5, **_RELIABLE)
QOS_DEFAULT = QoSProfile(depth=10, **_RELIABLE)
QOS_KEYFRAMES = QoSProfile(depth=100, **_RELIABLE)
QOS_SENSOR = qos_profile_sensor_data
_BEST_EFFORT = dict(
    reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST
)
#: Sensor-data QoS (best effort, volatile: matches any publisher) with a deeper history than
#: ``qos_profile_sensor_data``'s 5: the history is what holds messages while the executor is
#: not scheduled (on a loaded 2-core machine its threads were measured 270 ms late, i.e. 8
#: odometry samples at 30 Hz, which a queue of 5 loses uncounted). 1 s of a 30 Hz camera;
#: odometry and camera_info are small.
QOS_SENSOR_IMAGES = QoSProfile(depth=30, **_BEST_EFFORT)
QOS_SENSOR_STATE = QoSProfile(depth=100, **_BEST_EFFORT)


class StartupError(RuntimeError):
    """Autostart could not configure or activate the node (the log says why)."""


class RateMeter:
    """Event rate over a sliding window [Hz]; thread-safe."""

    def __init__(self, window: float = RATE_WINDOW):
        self.window = window
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: float) -> None:
        with self._lock:
            self._times.append(now)
            while self._times and self._times[0] < now - self.window:
                self._times.popleft()

    def rate(self, now: float) -> float:
        with self._lock:
            times = [t for t in self._times if t >= now - self.window]
        if len(times) < 2 or now - times[-1] > self.window:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-9)


class WorldFMNode(LifecycleNode):
    """The world-model node. Parameters are declared (and checked) at construction and read
    again at every ``configure``."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._is_configured = False  # parameters are read-only from configure to cleanup
        try:
            declare_parameters(self, read_only=lambda: self._is_configured)
            self.config = NodeConfig.from_node(self)
        except ConfigError as error:
            self.get_logger().fatal(f"invalid configuration: {error}")
            raise
        for warning in unknown_parameter_warnings(getattr(self, "_parameter_overrides", {})):
            self.get_logger().warning(warning)
        self.world: Optional[WorldService] = None
        self._configured: list = []  # publishers + services made in configure
        self._active: list = []  # subscriptions + timers made in activate
        self._camera: Optional[tuple[CameraInfo, Intrinsics]] = None  # latest valid real CameraInfo
        self._undistort = Undistorter()
        self._drops: Counter = Counter()  # colour frames dropped, by reason
        self._sync_drops_reported = 0
        self._bad_messages: Counter = Counter()  # odometry / camera_info / cmd_vel refused
        self._ingest_meter = RateMeter()
        self._sim_meter = RateMeter()
        self._last_render_ms = 0.0
        self._warned: dict[str, float] = {}  # warning key -> monotonic time last logged
        self._warn_lock = threading.Lock()
        self._sim: Optional[Simulator] = None
        self._map_publisher: Optional[MapPublisher] = None
        self._odom: Optional[OdometryBuffer] = None
        self._sync: Optional[FrameSync] = None
        self._ingest: Optional[IngestPipeline] = None
        self._pairs_offered = 0  # pairs handed to the insertion policy

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        try:
            config = NodeConfig.from_node(self)
            world = WorldService(config.world_service_config(), on_persist_error=self._on_persist_error)
        except (WorldFMError, OSError, ValueError, RuntimeError, ImportError, MemoryError) as error:
            self._configure_error = f"{type(error).__name__}: {error}" if isinstance(error, MemoryError) else str(error)
            log.error(f"configure failed: {self._configure_error}")
            return TransitionCallbackReturn.FAILURE
        try:
            # Compiled kernels and lazy imports load here, not on the ingest thread while a
            # camera streams (the first pair used to stall it for seconds).
            warm_s = world.warm_up([(config.render_width, config.render_height)])
        except (WorldFMError, ValueError, RuntimeError, MemoryError) as error:
            world.close()
            self._configure_error = f"warm-up failed: {type(error).__name__}: {error}"
            log.error(f"configure failed: {self._configure_error}")
            return TransitionCallbackReturn.FAILURE
        self._is_configured = True
        self.config, self.world = config, world
        for warning in world.warnings:
            log.warning(warning)
        self._T_base_cam = config.T_base_cam
        self._T_cam_base = invert_pose(self._T_base_cam)
        self._odom = OdometryBuffer(max_extrapolation=config.sync_max_extrapolation,
                                    max_position=config.odom_max_position_m)
        self._sync = FrameSync(max_gap=config.sync_max_gap)
        self._sync_drops_reported = 0
        self._ingest = IngestPipeline(
            self._sync, self._ingest_pair, self._ready,
            odom_wait_s=max(config.sync_max_extrapolation, _MIN_ODOM_WAIT_S),
            max_pending=config.ingest_queue_size, max_inbox=4 * config.ingest_queue_size + 8,
            on_error=self._on_ingest_error, on_sync=self._report_sync_drops,
        )
        self._status_pub = self.create_publisher(WorldStatus, "~/status", QOS_DEFAULT)
        self._keyframe_pub = self.create_publisher(KeyframeInfo, "~/keyframes", QOS_KEYFRAMES)
        self._configured = [self._status_pub, self._keyframe_pub]
        self._configured += [
            self.create_service(RenderView, "~/render_view", self._on_render_view,
                                callback_group=own_group()),
            self.create_service(RenderViews, "~/render_views", self._on_render_views,
                                callback_group=own_group()),
            self.create_service(SaveWorld, "~/save_world", self._on_save_world, callback_group=own_group()),
            self.create_service(Trigger, "~/reset_world", self._on_reset_world, callback_group=own_group()),
        ]
        self._map_publisher = MapPublisher(self, getattr(world, "occupancy_map", None), config.world_frame,
                                           config.map_rate_hz, callback_group=own_group())
        if config.sim_enabled:
            try:
                self._sim = Simulator(self, config, world, camera_intrinsics=self._camera_intrinsics,
                                      latest_odometry=self._latest_odometry_pose, warn=self._warn,
                                      on_render=self._on_sim_render)
            except (WorldFMError, ValueError) as error:
                log.error(f"configure failed: simulator: {error}")
                self._release_all()
                return TransitionCallbackReturn.FAILURE
        log.info(
            f"configured: backend {world.backend} on {world.device}, {len(world)} keyframes, warmed up in {warm_s:.1f} s"
            + (f" from {config.world_path}" if config.world_path else "")
            + (", simulated camera on" if config.sim_enabled else "")
        )
        freeze_startup_objects("configured")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = [
            self.create_subscription(Image, "camera/image_raw", self._on_colour, QOS_SENSOR_IMAGES,
                                     callback_group=own_group()),
            self.create_subscription(Image, "camera/depth/image_raw", self._on_depth, QOS_SENSOR_IMAGES,
                                     callback_group=own_group()),
            self.create_subscription(CameraInfo, "camera/camera_info", self._on_camera_info, QOS_SENSOR_STATE,
                                     callback_group=own_group()),
            self.create_subscription(Odometry, "odom", self._on_odometry, QOS_SENSOR_STATE, callback_group=own_group()),
            self.create_timer(1.0, self._publish_status, callback_group=own_group()),
        ]
        if self._ingest is not None:
            self._ingest.start()
        if self._map_publisher is not None:
            self._map_publisher.activate()
        if self._sim is not None:
            self._sim.activate()
        self.get_logger().info("active")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy(self._active)
        for part in (self._sim, self._map_publisher):
            if part is not None:
                part.deactivate()
        if self._ingest is not None:
            self._ingest.stop()
        self._active = []
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_all()
        self._is_configured = False
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_all()
        return TransitionCallbackReturn.SUCCESS

    def _release_all(self) -> None:
        self._destroy(self._active)
        ingest, self._ingest = self._ingest, None
        if ingest is not None:
            ingest.stop()
        self._destroy(self._configured)
        self._active, self._configured = [], []
        world, self.world = self.world, None
        if world is not None:
            world.close()
        for part in (self._sim, self._map_publisher):
            if part is not None:
                part.release()
        self._sim, self._map_publisher = None, None
        unfreeze_startup_objects()

    def _destroy(self, entities) -> None:
        for entity in entities:
            kind = type(entity).__name__
            if kind == "Timer":
                self.destroy_timer(entity)
            elif kind == "Subscription":
                self.destroy_subscription(entity)
            elif kind == "Publisher":
                self.destroy_publisher(entity)
            elif kind == "Service":
                self.destroy_service(entity)

    def autostart(self) -> None:
        """Configure and activate; raises :class:`StartupError` if either fails."""
        self._configure_error = "see the log above"
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise StartupError(f"could not be configured: {self._configure_error}")
        if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            raise StartupError("worldfm_node could not be activated (see the error above)")

    # ------------------------------------------------------------------ helpers
    def _now(self) -> float:
        """Node clock [s] (simulated time when ``use_sim_time`` is set)."""
        return self.get_clock().now().nanoseconds * 1e-9

    def _warn(self, key: str, message: str) -> None:
        """Warn at most once per :data:`WARN_PERIOD` per ``key`` (one problem must not hide
        another, as a single throttled call site would)."""
        now = time.monotonic()
        with self._warn_lock:
            if now - self._warned.get(key, -float("inf")) < WARN_PERIOD:
                return
            self._warned[key] = now
        self.get_logger().warning(message)

    def _drop(self, reason: str, detail: str) -> None:
        self._drops[reason] += 1
        self._warn(reason, f"dropped colour frame: {detail} (dropped so far: {dict(self._drops)})")

    def _camera_intrinsics(self, width: int, height: int) -> Intrinsics:
        """The default camera: the latest real CameraInfo (else the first keyframe's camera)
        rescaled to ``width`` x ``height``."""
        if self._camera is not None:
            return self._camera[1].resized(width, height)
        world = self.world
        first = world.first_keyframe() if world is not None else None
        if first is None:
            raise EmptyMemoryError("the world holds no keyframe yet", 0)
        return first.intrinsics.resized(width, height)

    # ------------------------------------------------------------------ ingestion
    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            intrinsics = camera_info_to_intrinsics(msg)
        except WorldFMError as error:
            self._bad_messages["camera_info"] += 1
            self._warn("camera_info", f"ignored camera_info: {error}")
            return
        self._camera = (msg, intrinsics)
        if self._ingest is not None:
            self._ingest.notify()

    def _on_odometry(self, msg: Odometry) -> None:
        odom = self._odom
        if odom is None:
            return
        try:
            stamp, T_world_base = odometry_to_pose(msg)
            odom.add(stamp, T_world_base)
        except (WorldFMError, ValueError) as error:
            self._bad_messages["odom"] += 1
            self._warn("odom", f"ignored odometry: {error}")
            return
        if self._ingest is not None:
            self._ingest.notify()

    def _on_colour(self, msg: Image) -> None:
        ingest = self._ingest
        if ingest is not None:
            ingest.put_colour(time_to_seconds(msg.header.stamp), msg)

    def _on_depth(self, msg: Image) -> None:
        ingest = self._ingest
        if ingest is not None:
            ingest.put_depth(time_to_seconds(msg.header.stamp), msg)

    def _report_sync_drops(self, sync: FrameSync) -> None:
        total = sum(sync.drops.values())
        if total > self._sync_drops_reported:
            self._sync_drops_reported = total
            counts = {reason.name.lower(): n for reason, n in sync.drops.items()}
            self._warn("sync", f"images without a partner within sync.max_gap = {sync.max_gap} s were dropped: {counts}")

    def _colour_sync_drops(self) -> int:
        sync = self._sync
        if sync is None:
            return 0
        return sum(n for reason, n in sync.drops.items()
                   if reason in (SyncDrop.COLOUR_UNPAIRED, SyncDrop.COLOUR_OVERFLOW, SyncDrop.INVALID_STAMP))

    def _ready(self, pair: SyncedPair) -> bool:
        """Whether a pair's odometry (a sample at or after its stamp) and a camera_info are in.

        Odometry and images travel on separate topics, so the odometry sample of an image's
        own stamp often lands a few milliseconds after the image. Extrapolating then would
        store the frame at a guessed pose although the exact one is about to arrive: the
        ingest pipeline lets a pair that is not ready wait up to
        ``max(sync.max_extrapolation, 0.5 s)`` of wall time, and only then is the pose
        extrapolated by at most ``sync.max_extrapolation`` (or the pair dropped) as the
        contract says.
        """
        latest = self._odom.latest() if self._odom is not None else None
        return self._camera is not None and latest is not None and latest[0] >= pair.stamp

    def _on_persist_error(self, message: str) -> None:
        """A world-file write failed (disk full, I/O error): the node's log at error level."""
        self.get_logger().error(message, throttle_duration_sec=WARN_PERIOD)

    def _on_ingest_error(self, error: BaseException) -> None:
        self._drops["internal_error"] += 1
        self.get_logger().error(f"ingesting a frame failed unexpectedly: {error!r}",
                                throttle_duration_sec=WARN_PERIOD)

    def _ingest_pair(self, pair: SyncedPair) -> None:
        world, odom = self.world, self._odom
        if world is None or odom is None:
            return
        try:
            T_world_base = odom.pose_at(pair.stamp)
        except PoseUnavailableError as error:
            self._drop("no_pose", str(error))
            return
        camera = self._camera
        if camera is None:
            self._drop("no_camera_info", "no valid camera/camera_info received yet")
            return
        try:
            colour = image_to_rgb(pair.colour)
            depth = image_to_depth(pair.depth)
            colour, depth, intrinsics = undistort_rgbd(colour, depth, camera[0], self._undistort)
            frame = Keyframe(colour, depth, intrinsics, T_world_base @ self._T_base_cam, pair.stamp)
            self._pairs_offered += 1
            keyframe = world.ingest_keyframe(frame)
        except KeyframeNotCommittedError:
            # In memory but not on disk: never announced (the error is logged and counted
            # in ~/status.world_file_errors by _on_persist_error).
            self._ingest_meter.tick(time.monotonic())
            return
        except WorldFMError as error:
            self._drop(type(error).__name__, str(error))
            return
        self._ingest_meter.tick(time.monotonic())
        if keyframe is not None:
            self._publish_keyframe(keyframe)
            freeze_startup_objects("first keyframe")

    def _publish_keyframe(self, keyframe: Keyframe) -> None:
        msg = KeyframeInfo()
        msg.id = int(keyframe.id)
        try:
            msg.stamp = seconds_to_time(keyframe.stamp)
        except ValueError:
            pass  # a negative stamp stays 0
        msg.pose = matrix_to_pose(keyframe.T_world_cam)
        msg.coverage_gain = float(keyframe.extras.get("coverage_gain", 0.0))
        self._keyframe_pub.publish(msg)

    # ------------------------------------------------------------------ services
    def _request_intrinsics(self, info: CameraInfo) -> Intrinsics:
        if info.width == 0:
            return self._camera_intrinsics(self.config.render_width, self.config.render_height)
        validate_image_size(int(info.width), int(info.height), MAX_RENDER_SIDE)
        k = np.asarray(info.k, dtype=np.float64)
        if k.size != 9 or not np.all(np.isfinite(k)):
            raise InvalidIntrinsicsError(f"camera_info.k must hold 9 finite values, got {k.tolist()}", k)
        return camera_info_to_intrinsics(info)  # refuses skew or k[8] != 1, as ingestion does

    def _on_render_view(self, request: RenderView.Request, response: RenderView.Response) -> RenderView.Response:
        world = self.world
        try:
            if world is None:
                raise EmptyMemoryError("the node is not configured", 0)
            T_world_cam = pose_to_matrix(request.pose)
            intrinsics = self._request_intrinsics(request.camera_info)
            out = world.render(T_world_cam, intrinsics, want_depth=request.want_depth)
        except WorldFMError as error:
            response.success, response.message = False, str(error)
            return response
        except Exception as error:  # noqa: BLE001 - a service must answer; the log keeps the cause
            self.get_logger().error(f"render_view failed unexpectedly: {error!r}")
            response.success, response.message = False, f"internal error: {error!r}"
            return response
        self._last_render_ms = out.render_ms
        freeze_startup_objects("first render")
        header_stamp = self.get_clock().now().to_msg()
        frame_id = request.camera_info.header.frame_id
        response.image = rgb_to_image(out.result.rgb[0], stamp=header_stamp, frame_id=frame_id)
        if request.want_depth:
            response.depth = depth_to_image(out.result.depth[0], stamp=header_stamp, frame_id=frame_id)
        response.coverage = float(out.result.coverage[0])
        response.reference_ids = [int(i) for i in out.result.reference_ids]
        response.render_ms = float(out.render_ms)
        response.success = True
        return response

    def _on_save_world(self, request: SaveWorld.Request, response: SaveWorld.Response) -> SaveWorld.Response:
        world = self.world
        try:
            if world is None:
                raise EmptyMemoryError("the node is not configured", 0)
            response.keyframes = world.save(request.path)
            response.success, response.message = True, f"saved {response.keyframes} keyframes to {request.path}"
        except (WorldFMError, OSError) as error:
            response.success, response.message = False, str(error)
        return response

    def _on_reset_world(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        world = self.world
        try:
            if world is None:
                raise EmptyMemoryError("the node is not configured", 0)
            world.reset()
            if self._sim is not None:
                self._sim.restart()
            response.success, response.message = True, "world reset"
        except (WorldFMError, OSError) as error:
            response.success, response.message = False, str(error)
        return response

    def _on_render_views(self, request: RenderViews.Request,
                         response: RenderViews.Response) -> RenderViews.Response:
        try:
            response = serve_render_views(self.world, request, response, self._request_intrinsics,
                                          self.get_clock().now().to_msg())
        except Exception as error:  # noqa: BLE001 - a service must answer; the log keeps the cause
            self.get_logger().error(f"render_views failed unexpectedly: {error!r}")
            response.success, response.message = False, f"internal error: {error!r}"
        if response.success:
            self._last_render_ms = response.render_ms
        return response

    # ------------------------------------------------------------------ simulator (worldfm_ros.ros.sim)
    def _latest_odometry_pose(self) -> Optional[np.ndarray]:
        latest = self._odom.latest() if self._odom is not None else None
        return None if latest is None else latest[1]

    def _on_sim_render(self, render_ms: float) -> None:
        self._last_render_ms = render_ms
        self._sim_meter.tick(time.monotonic())
        freeze_startup_objects("first render")

    # ------------------------------------------------------------------ status
    def _publish_status(self) -> None:
        world = self.world
        if world is None:
            return
        now = time.monotonic()
        msg = WorldStatus()
        msg.stamp = self.get_clock().now().to_msg()
        msg.keyframes = len(world)
        msg.memory_bytes = world.memory_bytes
        msg.backend = world.backend
        msg.world_path = self.config.world_path
        msg.ingest_rate_hz = float(self._ingest_meter.rate(now))
        msg.sim_rate_hz = float(self._sim_meter.rate(now)) if self.config.sim_enabled else 0.0
        msg.sim_collisions = self._sim.collisions if self._sim is not None else 0
        msg.last_render_ms = float(self._last_render_ms)
        ingest = self._ingest
        msg.frames_received = ingest.counters.frames_received if ingest is not None else 0
        msg.frames_dropped = sum(self._drops.values()) + self._colour_sync_drops()
        msg.pairs_offered = self._pairs_offered
        msg.world_file_errors = int(world.persist_errors)
        msg.pairs_skipped_busy = ingest.counters.pairs_skipped_busy if ingest is not None else 0
        self._status_pub.publish(msg)


def main(args=None) -> int:
    """Console script ``worldfm_node``: ``--ros-args -p name:=value`` / ``--params-file`` are
    handled by rclpy. Applies the package's DDS profile (large images between processes).

    ``--help`` prints the usage and every parameter. A configuration or start-up error is
    logged as one FATAL line (no traceback) and the exit status is 1."""
    argv = sys.argv[1:] if args is None else list(args)
    own = argv[:argv.index("--ros-args")] if "--ros-args" in argv else argv
    if "-h" in own or "--help" in own:
        print(usage())
        return 0
    apply_dds_profile()
    rclpy.init(args=args)
    node = None
    status = 0
    executor = make_executor(num_threads=6)
    try:
        node = WorldFMNode()
        if node.config.autostart:
            node.autostart()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ConfigError:
        status = 1  # WorldFMNode logged the FATAL line naming the parameter
    except StartupError as error:
        node.get_logger().fatal(f"{NODE_NAME} {error}")
        status = 1
    finally:
        executor.shutdown()
        if node is not None:
            node._release_all()
            node.destroy_node()
        rclpy.try_shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
