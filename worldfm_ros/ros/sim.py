"""The simulated robot of ``worldfm_node``: a virtual base driven by ``sim/cmd_vel`` that sees
the remembered world through the renderer, with what a navigation stack expects of a
simulator (CONTRACT.md "Simulated camera" and "Navigation-ready simulator", v2).

Motion and collisions are the ROS-free :class:`~worldfm_ros.core.sim_base.SimBase` (the same
code the Gymnasium environment runs); the map is the world's
:class:`~worldfm_ros.core.occupancy_map.OccupancyMap`. This module only steps it, renders and
converts to messages:

* ``sim/odom`` + ``/tf`` (``sim.odom_frame`` -> ``sim.base_frame``) with every step; the
  twist is zero while a step is refused;
* ``/tf_static`` (transient local): ``base -> camera`` (= ``camera_to_base``) and
  ``base -> base_scan`` (identity);
* ``sim/camera/{image_raw, depth/image_raw, camera_info, points}``;
* ``sim/scan``: a 360 degree scan ray-cast in the occupancy map from the base's (x, y, yaw)
  (in ``free`` motion the scan plane is taken level: roll and pitch are ignored);
* ``sim/collision``: on change and at 1 Hz; ``sim/reset``, ``sim/set_pose``;
* ``/clock`` with ``sim.publish_clock``: the simulator then owns time. Each step advances it
  by ``1 / sim.rate_hz``; steps run on their own thread, paced to ``sim.real_time_factor``
  (0 = back to back, as fast as rendering allows). Without the clock, a timer at
  ``sim.rate_hz`` steps on the node clock as in v1.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, Optional

import numpy as np
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, LaserScan, PointCloud2
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import EmptyMemoryError, WorldFMError
from worldfm_ros.core.sim_base import SimBase
from worldfm_ros.core.world_service import WorldService
from worldfm_ros.ros.callback_groups import own_group
from worldfm_ros.ros.config import NodeConfig
from worldfm_ros.ros.image_conversion import depth_to_image, rgb_to_image
from worldfm_ros.ros.messages import (
    intrinsics_to_camera_info,
    make_laser_scan,
    make_odometry,
    make_point_cloud,
    matrix_to_transform,
    pose_to_matrix,
    scan_angles,
    seconds_to_time,
    twist_to_arrays,
)
from worldfm_ros.srv import SetPose

_RELIABLE = dict(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
QOS_IMAGES = QoSProfile(depth=5, durability=DurabilityPolicy.VOLATILE, **_RELIABLE)
QOS_DEFAULT = QoSProfile(depth=10, durability=DurabilityPolicy.VOLATILE, **_RELIABLE)
#: ``/tf_static`` as tf2's static broadcaster publishes it: one latched message for late joiners.
QOS_TF_STATIC = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, **_RELIABLE)

#: Period of the ``sim/collision`` heartbeat [s] (it is also published on every change).
COLLISION_PERIOD = 1.0
#: Wall time a clock-driven simulator waits between checks while the memory is empty [s].
_IDLE_WAIT = 0.05


def yaw_of(T_world_base: np.ndarray) -> float:
    """Heading [rad] of a base pose: the angle of its x axis projected on the world xy plane."""
    return math.atan2(T_world_base[1, 0], T_world_base[0, 0])


class DepthCloud:
    """Rendered depth -> points in the camera optical frame (x right, y down, z forward).

    Caches the per-pixel ray slopes of the last intrinsics (the simulated camera keeps one).
    """

    def __init__(self):
        self._key: Optional[Intrinsics] = None
        self._rays: Optional[tuple[np.ndarray, np.ndarray]] = None

    def points(self, depth: np.ndarray, rgb: np.ndarray, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
        """``(points float32 [N, 3] [m], colours uint8 [N, 3])`` of the pixels with depth > 0
        (unknown pixels are left out), row-major pixel order."""
        if self._key != intrinsics:
            u = (np.arange(intrinsics.width, dtype=np.float32) - np.float32(intrinsics.cx)) / np.float32(intrinsics.fx)
            v = (np.arange(intrinsics.height, dtype=np.float32) - np.float32(intrinsics.cy)) / np.float32(intrinsics.fy)
            self._rays = (np.broadcast_to(u[None, :], depth.shape), np.broadcast_to(v[:, None], depth.shape))
            self._key = intrinsics
        xr, yr = self._rays
        valid = depth > 0
        z = depth[valid]
        points = np.empty((z.size, 3), np.float32)
        points[:, 0] = xr[valid] * z
        points[:, 1] = yr[valid] * z
        points[:, 2] = z
        return points, rgb[valid]


class Simulator:
    """The simulated robot of a node: publishers and services made at configure
    (:meth:`__init__`), streams started by :meth:`activate`, stopped by :meth:`deactivate`,
    everything freed by :meth:`release`.

    Args:
        node: the (lifecycle) node that owns the entities.
        config: the node's validated parameters.
        world: the world model to render and to read the occupancy map of.
        groups: the node's callback groups (``state``, ``sim``, ``control`` are used).
        camera_intrinsics: ``(width, height) -> Intrinsics`` of the node's default camera.
        latest_odometry: ``() -> T_world_base [4, 4] or None``: the latest real odometry pose.
        warn: ``(key, message)``: the node's throttled warning.
        on_render: called with each render's duration [ms].
    """

    def __init__(self, node, config: NodeConfig, world: WorldService, *,
                 camera_intrinsics: Callable[[int, int], Intrinsics],
                 latest_odometry: Callable[[], Optional[np.ndarray]],
                 warn: Callable[[str, str], None], on_render: Callable[[float], None] = lambda ms: None):
        self.node = node
        self.config = config
        self.world = world
        self._camera_intrinsics = camera_intrinsics
        self._latest_odometry = latest_odometry
        self._warn = warn
        self._on_render = on_render
        self._T_base_cam = config.T_base_cam
        self._T_cam_base = np.linalg.inv(self._T_base_cam)
        self._dt = 1.0 / config.sim_rate_hz
        self._angles = scan_angles(config.sim_scan_samples)
        self._cloud = DepthCloud()
        # The base is made at its start pose: at the first step, or by a sim/set_pose before it.
        self.base: Optional[SimBase] = None
        self._collisions_before = 0  # refused steps of bases replaced by restart()
        self._busy = threading.Lock()  # one step at a time
        self._sim_time: Optional[float] = None  # simulated time [s] with the clock, else None
        self._collided: Optional[bool] = None  # last published sim/collision
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.frames = 0  # steps published

        pub = node.create_publisher
        self._odom_pub = pub(Odometry, "sim/odom", QOS_DEFAULT)
        self._image_pub = pub(Image, "sim/camera/image_raw", QOS_IMAGES)
        self._info_pub = pub(CameraInfo, "sim/camera/camera_info", QOS_DEFAULT)
        self._depth_pub = pub(Image, "sim/camera/depth/image_raw", QOS_IMAGES)
        self._collision_pub = pub(Bool, "sim/collision", QOS_DEFAULT)
        self._publishers = [self._odom_pub, self._image_pub, self._info_pub, self._depth_pub, self._collision_pub]
        self._points_pub = self._scan_pub = self._tf_pub = self._tf_static_pub = self._clock_pub = None
        if config.sim_points_enabled:
            self._points_pub = pub(PointCloud2, "sim/camera/points", QOS_IMAGES)
            self._publishers.append(self._points_pub)
        if config.sim_scan_enabled:
            self._scan_pub = pub(LaserScan, "sim/scan", QOS_DEFAULT)
            self._publishers.append(self._scan_pub)
        if config.sim_publish_tf:
            self._tf_pub = pub(TFMessage, "/tf", QOS_DEFAULT)
            self._tf_static_pub = pub(TFMessage, "/tf_static", QOS_TF_STATIC)
            self._publishers += [self._tf_pub, self._tf_static_pub]
        if config.sim_publish_clock:
            self._clock_pub = pub(Clock, "/clock", QOS_DEFAULT)
            self._publishers.append(self._clock_pub)
        self._services = [
            node.create_service(SetPose, "sim/set_pose", self._on_set_pose, callback_group=own_group()),
            node.create_service(Trigger, "sim/reset", self._on_reset, callback_group=own_group()),
        ]
        self._active: list = []

    # ------------------------------------------------------------------ lifecycle
    def activate(self) -> None:
        """Subscribe to ``sim/cmd_vel``, latch ``/tf_static`` and start stepping."""
        node = self.node
        self._publish_static_transforms()
        self._active = [
            node.create_subscription(Twist, "sim/cmd_vel", self._on_cmd_vel, qos_profile_sensor_data,
                                     callback_group=own_group()),
            node.create_timer(COLLISION_PERIOD, self._publish_collision_heartbeat,
                              callback_group=own_group()),
        ]
        if self.config.sim_publish_clock:
            self._sim_time = self._clock_now()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run_with_clock, name="worldfm-sim", daemon=True)
            self._thread.start()
        else:
            self._active.append(node.create_timer(self._dt, self._on_tick, callback_group=own_group()))

    def deactivate(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10.0)
        for entity in self._active:
            if type(entity).__name__ == "Timer":
                self.node.destroy_timer(entity)
            else:
                self.node.destroy_subscription(entity)
        self._active = []

    def release(self) -> None:
        self.deactivate()
        for publisher in self._publishers:
            self.node.destroy_publisher(publisher)
        for service in self._services:
            self.node.destroy_service(service)
        self._publishers, self._services = [], []

    def restart(self) -> None:
        """Start over from ``sim.start_pose`` / odometry / the first keyframe at the next step
        (after ``~/reset_world``)."""
        base, self.base = self.base, None
        if base is not None:
            self._collisions_before += base.collision_count

    @property
    def collisions(self) -> int:
        """Steps refused since the node started (``~/status.sim_collisions``)."""
        base = self.base
        return self._collisions_before + (base.collision_count if base is not None else 0)

    def _make_base(self, T_world_base: np.ndarray, now: float) -> Optional[str]:
        """Place the base at its start pose; returns the relocation warning, if any.
        Raises ``InvalidPoseError``, ``StartPoseBlockedError``."""
        config = self.config
        occupancy = getattr(self.world, "occupancy_map", None) if config.sim_collision else None
        self.base = SimBase(T_world_base, cmd_timeout=config.sim_cmd_timeout, start_time=now,
                            motion=config.sim_motion, occupancy=occupancy,
                            footprint_radius=config.sim_footprint_radius)
        return self.base.start_warning

    # ------------------------------------------------------------------ time
    def _clock_now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _now(self) -> float:
        """The simulator's time [s]: simulated time with the clock, else the node clock."""
        sim_time = self._sim_time
        return sim_time if sim_time is not None else self._clock_now()

    # ------------------------------------------------------------------ callbacks
    def _on_cmd_vel(self, msg: Twist) -> None:
        base = self.base
        if base is None:
            return  # no robot yet (empty memory): nothing to move
        try:
            linear, angular = twist_to_arrays(msg)
            base.command(linear, angular, self._now())
        except ValueError as error:
            self._warn("cmd_vel", f"ignored sim/cmd_vel: {error}")

    def _on_set_pose(self, request: SetPose.Request, response: SetPose.Response) -> SetPose.Response:
        """Teleport (a pose inside an obstacle is moved to the nearest free place, with a
        warning in the reply; before the first step it also becomes the start pose)."""
        try:
            T = pose_to_matrix(request.pose)
            base = self.base
            warning = self._make_base(T, self._now()) if base is None else base.set_pose(T, self._now())
            response.success, response.message = True, warning or "teleported"
            if warning:
                self._warn("set_pose", f"sim/set_pose: {warning}")
        except WorldFMError as error:
            response.success, response.message = False, str(error)
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Back to the start pose, velocity zero."""
        try:
            base = self.base
            if base is None:
                response.success, response.message = True, "not started yet: it starts at the start pose"
                return response
            warning = base.reset(self._now())
        except WorldFMError as error:
            response.success, response.message = False, str(error)
            return response
        response.success, response.message = True, warning or "back at the start pose"
        return response

    def _start_pose(self) -> np.ndarray:
        """``T_world_base`` to start from: sim.start_pose, else the latest real odometry, else
        the base pose of the first keyframe."""
        start = self.config.T_world_sim_start
        if start is not None:
            return start
        latest = self._latest_odometry()
        if latest is not None:
            return latest
        first = self.world.first_keyframe()
        if first is None:
            raise EmptyMemoryError("the world holds no keyframe yet", 0)
        return first.T_world_cam @ self._T_cam_base

    # ------------------------------------------------------------------ stepping
    def _on_tick(self) -> None:
        """Timer step on the node clock (no ``/clock``)."""
        now = self.node.get_clock().now()
        self._guarded_step(now.nanoseconds * 1e-9)

    def _run_with_clock(self) -> None:
        """Clock-driven steps: simulated time advances ``1 / rate_hz`` per step, paced to
        ``real_time_factor`` of wall time (0 = no pacing)."""
        rtf = self.config.sim_real_time_factor
        wall_start = time.monotonic()
        sim_start = self._sim_time
        while not self._stop.is_set():
            if len(self.world) == 0:
                # Nothing is rendered before the first keyframe; time still runs, at real time.
                self._advance_clock(self._sim_time + _IDLE_WAIT)
                self._stop.wait(_IDLE_WAIT)
                wall_start, sim_start = time.monotonic(), self._sim_time
                continue
            next_time = self._sim_time + self._dt
            self._advance_clock(next_time)
            self._guarded_step(next_time)
            if rtf > 0:
                wait = wall_start + (self._sim_time - sim_start) / rtf - time.monotonic()
                if wait > 0:
                    self._stop.wait(wait)

    def _advance_clock(self, t: float) -> None:
        self._sim_time = t
        if self._clock_pub is not None:
            self._publish(self._clock_pub, Clock(clock=seconds_to_time(t)))

    def _guarded_step(self, now: float) -> None:
        if not self._busy.acquire(blocking=False):
            return  # a render is still running: skip this tick rather than queue a stale one
        try:
            self.step(now)
        except WorldFMError as error:
            self._warn("sim", f"simulated camera: {error}")
        except Exception as error:  # noqa: BLE001 - keep stepping; the log keeps the cause
            if self.node.context.ok():  # (publishing fails harmlessly while the process shuts down)
                self._warn("sim_unexpected", f"simulated camera failed unexpectedly: {error!r}")
        finally:
            self._busy.release()

    def step(self, now: float) -> bool:
        """Advance the base to ``now`` [s], render and publish everything stamped ``now``;
        False (nothing published) while the memory holds no keyframe."""
        world, config = self.world, self.config
        if len(world) == 0:
            return False
        if self.base is None:
            warning = self._make_base(self._start_pose(), now)
            if warning:
                self._warn("start_pose", f"simulator start pose: {warning}")
        base = self.base
        if base is None:
            return False  # restarted (~/reset_world) meanwhile
        T_world_base = base.step(now)
        blocked = bool(base.blocked)
        linear, angular = (np.zeros(3), np.zeros(3)) if blocked else base.twist(now)
        intrinsics = self._camera_intrinsics(config.sim_width, config.sim_height)
        out = world.render(T_world_base @ self._T_base_cam, intrinsics)
        self._on_render(out.render_ms)
        rgb, depth = out.result.rgb[0], out.result.depth[0]

        stamp = seconds_to_time(max(now, 0.0))
        odom_frame, base_frame, camera_frame = config.sim_odom_frame_id, config.sim_base_frame, config.sim_camera_frame
        self._publish(self._odom_pub, make_odometry(T_world_base, linear, angular, stamp, odom_frame, base_frame))
        if self._tf_pub is not None:
            self._publish(self._tf_pub, TFMessage(
                transforms=[matrix_to_transform(T_world_base, stamp, odom_frame, base_frame)]))
        self._publish(self._image_pub, rgb_to_image(rgb, stamp=stamp, frame_id=camera_frame))
        self._publish(self._depth_pub, depth_to_image(depth, stamp=stamp, frame_id=camera_frame))
        self._publish(self._info_pub, intrinsics_to_camera_info(intrinsics, stamp, camera_frame))
        if self._points_pub is not None:
            points, colours = self._cloud.points(depth, rgb, intrinsics)
            self._publish(self._points_pub, make_point_cloud(points, colours, stamp, camera_frame))
        if self._scan_pub is not None:
            self._publish(self._scan_pub, make_laser_scan(
                self.scan_ranges(T_world_base), stamp, config.sim_scan_frame, config.sim_scan_range_max,
                scan_time=self._dt))
        if blocked != self._collided:
            self._publish_collision(blocked)
        self.frames += 1
        return True

    def scan_ranges(self, T_world_base: np.ndarray) -> np.ndarray:
        """``float32 [sim.scan.samples]`` ranges [m] of the scan at a base pose (``inf`` = no hit;
        all ``inf`` while the world has no map)."""
        occupancy = getattr(self.world, "occupancy_map", None)
        if occupancy is None:
            return np.full(len(self._angles), np.inf, np.float32)
        yaw = yaw_of(T_world_base)
        return occupancy.raycast(float(T_world_base[0, 3]), float(T_world_base[1, 3]), self._angles + yaw,
                                 self.config.sim_scan_range_max)

    # ------------------------------------------------------------------ publishing
    def _publish(self, publisher, msg) -> None:
        publisher.publish(msg)  # one place to count or trace publications

    def _publish_collision(self, blocked: bool) -> None:
        self._collided = blocked
        self._publish(self._collision_pub, Bool(data=blocked))

    def _publish_collision_heartbeat(self) -> None:
        base = self.base
        if base is not None:
            self._publish_collision(bool(base.blocked))

    def _publish_static_transforms(self) -> None:
        if self._tf_static_pub is None:
            return
        stamp = self.node.get_clock().now().to_msg()
        base = self.config.sim_base_frame
        self._tf_static_pub.publish(TFMessage(transforms=[
            matrix_to_transform(self._T_base_cam, stamp, base, self.config.sim_camera_frame),
            matrix_to_transform(np.eye(4), stamp, base, self.config.sim_scan_frame),
        ]))
