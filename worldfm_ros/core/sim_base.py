"""The simulator's virtual robot base: integrates body-frame velocity commands (ROS-free).

Frames follow REP 103: the base frame has x forward, y left, z up; the world z axis points up.
A command is a body-frame twist ``(linear [m/s] [3], angular [rad/s] [3])`` held constant until
the next one; a command older than ``cmd_timeout`` counts as zero (a robot whose teleop died
stops). Two motion models (the contract's ``sim.motion``):

* ``planar`` (default): a ground robot. Only ``linear.x``, ``linear.y`` (along the base's
  heading, level) and ``angular.z`` (yaw about the world z axis) act; z, roll and pitch stay
  those of the start pose (or of the last :meth:`SimBase.set_pose`). With an occupancy map the
  base collides (below).
* ``free``: v1's flying camera, the full twist integrated in 3D; no collisions.

Integration uses the exact exponential of the constant twist (SE(2) in the plane, SE(3) in
free motion), so a constant forward + yaw command drives an exact circle whatever the step.

Collisions (planar, with ``occupancy``): the base is a disc of ``footprint_radius``. Motion is
integrated in sub-steps of at most half a map cell (so no step tunnels through a wall); a
sub-step that would bring the centre of an occupied cell within the radius of the base
centre is not taken: the base stays where the last free sub-step left it for the rest of the
interval, :attr:`SimBase.blocked` is true and :meth:`SimBase.twist` reads zero. Rotating in
place never collides (the footprint is a disc). A base that is already inside an obstacle
(the map grew around it) may make only steps that take it farther from the nearest one.

Start poses inside an obstacle (constructor, :meth:`SimBase.set_pose`, :meth:`SimBase.reset`)
are moved to the nearest free position (same height and orientation) within
:data:`RELOCATE_RADIUS`, with a warning that the call returns and logs; if there is none,
:class:`StartPoseBlockedError` is raised.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Optional

import numpy as np

from worldfm_ros.core.errors import WorldFMError
from worldfm_ros.core.pose import validate_pose_matrix

_log = logging.getLogger(__name__)

#: Motion models of :class:`SimBase` (the contract's ``sim.motion``).
MOTIONS = ("planar", "free")
#: Farthest a start pose inside an obstacle is moved to the nearest free position [m].
RELOCATE_RADIUS = 2.0



class InvalidSimOptionError(WorldFMError, ValueError):
    """A simulator option outside its range (unknown motion, negative footprint...)."""


class StartPoseBlockedError(WorldFMError, ValueError):
    """A start pose inside an obstacle with no free position within :data:`RELOCATE_RADIUS`."""


#: Longest single integration step [s]; a larger clock jump is treated as this long (a paused
#: or jumped simulated clock should not teleport the robot).
MAX_STEP = 1.0


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def se3_exp(linear: np.ndarray, angular: np.ndarray, dt: float) -> np.ndarray:
    """``[4, 4]`` motion of a body moving with a constant body-frame twist for ``dt`` seconds."""
    v = np.asarray(linear, dtype=np.float64) * dt
    w = np.asarray(angular, dtype=np.float64) * dt
    theta = float(np.linalg.norm(w))
    K = _skew(w)
    if theta < 1e-9:
        R = np.eye(3) + K
        V = np.eye(3) + 0.5 * K
    else:
        a = math.sin(theta) / theta
        b = (1.0 - math.cos(theta)) / theta**2
        c = (theta - math.sin(theta)) / theta**3
        R = np.eye(3) + a * K + b * (K @ K)
        V = np.eye(3) + b * K + c * (K @ K)
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = V @ v
    return T


def _orthonormalise(T: np.ndarray) -> np.ndarray:
    """Remove accumulated rounding from the rotation block (SVD projection onto SO(3))."""
    U, _, Vt = np.linalg.svd(T[:3, :3])
    R = U @ Vt
    if np.linalg.det(R) < 0:
        U[:, -1] *= -1
        R = U @ Vt
    T = T.copy()
    T[:3, :3] = R
    return T


def _yaw_and_tilt(R: np.ndarray) -> tuple[float, np.ndarray]:
    """``(yaw, R_tilt)`` with ``R = Rz(yaw) @ R_tilt`` (yaw of the ZYX Euler angles)."""
    yaw = math.atan2(R[1, 0], R[0, 0])
    return yaw, _rot_z(-yaw) @ R


def _rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def se2_exp(vx: float, vy: float, wz: float, dt: float) -> tuple[float, float, float]:
    """Body-frame motion ``(dx, dy, dyaw)`` of a planar body moving with a constant twist
    ``(vx, vy)`` [m/s], ``wz`` [rad/s] for ``dt`` [s]."""
    th = wz * dt
    if abs(th) < 1e-9:
        a, b = 1.0 - th * th / 6.0, th / 2.0
    else:
        a, b = math.sin(th) / th, (1.0 - math.cos(th)) / th
    return (a * vx - b * vy) * dt, (b * vx + a * vy) * dt, th


class SimBase:
    """Pose of the virtual base ``T_world_base`` driven by velocity commands; thread-safe.

    Args:
        T_world_base: start pose ``[4, 4]`` (also where :meth:`reset` returns).
        cmd_timeout: age after which a command counts as zero [s].
        start_time: clock reading of ``T_world_base`` [s].
        motion: ``"planar"`` or ``"free"`` (module docstring).
        occupancy: an :class:`~worldfm_ros.core.occupancy_map.OccupancyMap` to collide with
            (planar motion only); None = no collisions.
        footprint_radius: radius of the base's disc footprint [m], >= 0.

    Raises:
        InvalidSimOptionError: unknown ``motion``, negative or non-finite ``footprint_radius``
            or ``cmd_timeout``.
        InvalidPoseError: a bad ``T_world_base``.
        StartPoseBlockedError: the start pose is in an obstacle with no free place near it.
    """

    def __init__(self, T_world_base: np.ndarray, *, cmd_timeout: float = 0.5, start_time: float = 0.0,
                 motion: str = "planar", occupancy=None, footprint_radius: float = 0.2):
        if not isinstance(cmd_timeout, (int, float)) or not math.isfinite(cmd_timeout) or cmd_timeout < 0:
            raise InvalidSimOptionError(f"cmd_timeout must be finite and >= 0, got {cmd_timeout!r}", cmd_timeout)
        if motion not in MOTIONS:
            raise InvalidSimOptionError(f"unknown motion {motion!r}: expected one of {MOTIONS}", motion)
        if (not isinstance(footprint_radius, (int, float)) or not math.isfinite(footprint_radius)
                or footprint_radius < 0):
            raise InvalidSimOptionError(f"footprint_radius must be finite and >= 0 m, got {footprint_radius!r}",
                                        footprint_radius)
        self.cmd_timeout = float(cmd_timeout)
        self.motion = motion
        self.occupancy = occupancy
        self.footprint_radius = float(footprint_radius)
        self.collision_count = 0
        self.blocked = False
        self._lock = threading.Lock()
        self._time = float(start_time)
        self._linear = np.zeros(3)
        self._angular = np.zeros(3)
        self._cmd_time = -math.inf
        self._start = validate_pose_matrix(T_world_base).copy()
        self._T = self._start
        self._z = 0.0
        self._tilt = np.eye(3)
        with self._lock:
            self.start_warning = self._place(self._start)

    # ------------------------------------------------------------------ commands
    def command(self, linear, angular, now: float) -> None:
        """Set the body-frame twist (``linear`` [m/s] ``[3]``, ``angular`` [rad/s] ``[3]``)
        received at ``now`` [s]. Non-finite values raise ``ValueError``."""
        lin = np.asarray(linear, dtype=np.float64).reshape(3)
        ang = np.asarray(angular, dtype=np.float64).reshape(3)
        if not (np.all(np.isfinite(lin)) and np.all(np.isfinite(ang))):
            raise ValueError(f"velocity command is not finite: linear={lin.tolist()} angular={ang.tolist()}")
        if self.motion == "planar":
            lin = np.array([lin[0], lin[1], 0.0])
            ang = np.array([0.0, 0.0, ang[2]])
        with self._lock:
            self._advance(float(now))  # the old command holds until now
            self._linear, self._angular, self._cmd_time = lin, ang, float(now)

    def set_pose(self, T_world_base: np.ndarray, now: float, *, as_start: bool = False) -> Optional[str]:
        """Teleport; the current command is kept. ``as_start``: also make it the pose
        :meth:`reset` returns to. Returns the relocation warning (module docstring) or None.

        Raises ``InvalidPoseError``, :class:`StartPoseBlockedError`.
        """
        T = validate_pose_matrix(T_world_base).copy()
        with self._lock:
            warning = self._place(T)
            if as_start:
                self._start = self._T.copy()
            self._time = float(now)
            return warning

    def reset(self, now: float) -> Optional[str]:
        """Back to the start pose with the command cleared (velocity zero). Returns the
        relocation warning if the map has grown over the start pose since, else None."""
        with self._lock:
            self._linear = np.zeros(3)
            self._angular = np.zeros(3)
            self._cmd_time = -math.inf
            warning = self._place(self._start.copy())
            self._time = float(now)
            return warning

    # ------------------------------------------------------------------ state
    def step(self, now: float) -> np.ndarray:
        """Integrate up to ``now`` [s] and return ``T_world_base [4, 4]``."""
        with self._lock:
            self._advance(float(now))
            return self._T.copy()

    def twist(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Body-frame ``(linear, angular)`` in effect at ``now`` (zero after the timeout and
        while :attr:`blocked`)."""
        with self._lock:
            if now - self._cmd_time <= self.cmd_timeout and not self.blocked:
                return self._linear.copy(), self._angular.copy()
            return np.zeros(3), np.zeros(3)

    @property
    def pose(self) -> np.ndarray:
        with self._lock:
            return self._T.copy()

    @property
    def start_pose(self) -> np.ndarray:
        """Where :meth:`reset` returns ``[4, 4]``."""
        with self._lock:
            return self._start.copy()

    # ------------------------------------------------------------------ internals
    def _collides(self, x: float, y: float) -> bool:
        return self.occupancy is not None and self.occupancy.footprint_collides(x, y, self.footprint_radius)

    def _place(self, T: np.ndarray) -> Optional[str]:
        """Put the base at ``T`` (moved out of an obstacle if needed); returns the warning."""
        warning = None
        if self.motion == "planar" and self._collides(T[0, 3], T[1, 3]):
            x, y = self._nearest_free(T[0, 3], T[1, 3])
            warning = (f"start pose ({T[0, 3]:.3f}, {T[1, 3]:.3f}) is inside an obstacle (footprint radius "
                       f"{self.footprint_radius} m): moved to the nearest free position ({x:.3f}, {y:.3f})")
            _log.warning(warning)
            T = T.copy()
            T[0, 3], T[1, 3] = x, y
        self._T = T
        self._z = float(T[2, 3])
        _, self._tilt = _yaw_and_tilt(T[:3, :3])
        self.blocked = False
        return warning

    def _nearest_free(self, x: float, y: float) -> tuple[float, float]:
        from scipy.spatial import cKDTree

        r = self.footprint_radius
        step = self.occupancy.resolution / 2
        centres = self.occupancy.occupied_centres(x, y, RELOCATE_RADIUS + r + step)
        offsets = np.arange(-RELOCATE_RADIUS, RELOCATE_RADIUS + step / 2, step)
        gx, gy = np.meshgrid(offsets, offsets)
        candidates = np.stack([gx.ravel(), gy.ravel()], axis=1)
        distance = np.hypot(candidates[:, 0], candidates[:, 1])
        order = np.argsort(distance, kind="stable")
        candidates = candidates[order][distance[order] <= RELOCATE_RADIUS] + (x, y)
        clearance, _ = cKDTree(centres).query(candidates, distance_upper_bound=r + step)
        free = np.flatnonzero(clearance > r)
        if free.size == 0:
            raise StartPoseBlockedError(
                f"start pose ({x:.3f}, {y:.3f}) is inside an obstacle and no free position for a footprint of "
                f"radius {r} m lies within {RELOCATE_RADIUS} m", (x, y))
        return float(candidates[free[0], 0]), float(candidates[free[0], 1])

    def _advance(self, now: float) -> None:
        if not math.isfinite(now):
            return
        start = self._time
        if now <= start:
            if now < start - MAX_STEP:
                self._time = now  # the clock jumped back: restart integration from here
            return
        end = min(now, start + MAX_STEP)
        active_until = min(end, self._cmd_time + self.cmd_timeout)
        moving = active_until > start and (self._linear.any() or self._angular.any())
        if not moving:
            self.blocked = False
        elif self.motion == "free":
            self._T = _orthonormalise(self._T @ se3_exp(self._linear, self._angular, active_until - start))
        else:
            self._advance_planar(active_until - start)
        self._time = now

    def _advance_planar(self, dt: float) -> None:
        vx, vy, wz = float(self._linear[0]), float(self._linear[1]), float(self._angular[2])
        x0, y0 = float(self._T[0, 3]), float(self._T[1, 3])
        yaw0, _ = _yaw_and_tilt(self._T[:3, :3])
        c0, s0 = math.cos(yaw0), math.sin(yaw0)
        translating = vx != 0.0 or vy != 0.0
        check = translating and self.occupancy is not None
        n = 1
        if check:
            n = max(1, math.ceil(math.hypot(vx, vy) * dt / (self.occupancy.resolution / 2)))
        inside = self._nearest_obstacle(x0, y0) if check else math.inf
        x, y, yaw = x0, y0, yaw0
        blocked = False
        for k in range(1, n + 1):
            dx, dy, dth = se2_exp(vx, vy, wz, dt * k / n)
            xk, yk = x0 + c0 * dx - s0 * dy, y0 + s0 * dx + c0 * dy
            if check:
                d = self._nearest_obstacle(xk, yk)
                if d <= self.footprint_radius and not (inside <= self.footprint_radius and d > inside):
                    blocked = True
                    break
                inside = d
            x, y, yaw = xk, yk, yaw0 + dth
        if blocked and not self.blocked:
            self.collision_count += 1
        self.blocked = blocked
        T = np.eye(4)
        T[:3, :3] = _rot_z(yaw) @ self._tilt
        T[:3, 3] = (x, y, self._z)
        self._T = T

    def _nearest_obstacle(self, x: float, y: float) -> float:
        """Distance [m] from ``(x, y)`` to the nearest occupied cell centre within the
        footprint radius (``inf`` without a map or when none is that close)."""
        if self.occupancy is None:
            return math.inf
        return self.occupancy.nearest_obstacle(x, y, self.footprint_radius)
