"""The simulator's virtual robot base: integrates body-frame velocity commands in 3D (ROS-free).

Frames follow REP 103: the base frame has x forward, y left, z up. A command is a body-frame
twist ``(linear [m/s] [3], angular [rad/s] [3])`` held constant until the next one; a command
older than ``cmd_timeout`` counts as zero (a robot whose teleop died stops). Integration uses
the exact SE(3) exponential of the constant twist, so a constant forward + yaw command drives
an exact circle whatever the step length.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from worldfm_ros.core.pose import validate_pose_matrix

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


class SimBase:
    """Pose of the virtual base ``T_world_base`` driven by velocity commands; thread-safe.

    Args:
        T_world_base: initial pose ``[4, 4]``.
        cmd_timeout: age after which a command counts as zero [s].
        start_time: clock reading of ``T_world_base`` [s].
    """

    def __init__(self, T_world_base: np.ndarray, *, cmd_timeout: float = 0.5, start_time: float = 0.0):
        if not math.isfinite(cmd_timeout) or cmd_timeout < 0:
            raise ValueError(f"cmd_timeout must be finite and >= 0, got {cmd_timeout!r}")
        self.cmd_timeout = float(cmd_timeout)
        self._T = validate_pose_matrix(T_world_base).copy()
        self._time = float(start_time)
        self._linear = np.zeros(3)
        self._angular = np.zeros(3)
        self._cmd_time = -math.inf
        self._lock = threading.Lock()

    def command(self, linear, angular, now: float) -> None:
        """Set the body-frame twist (``linear`` [m/s] ``[3]``, ``angular`` [rad/s] ``[3]``)
        received at ``now`` [s]. Non-finite values raise ``ValueError``."""
        lin = np.asarray(linear, dtype=np.float64).reshape(3)
        ang = np.asarray(angular, dtype=np.float64).reshape(3)
        if not (np.all(np.isfinite(lin)) and np.all(np.isfinite(ang))):
            raise ValueError(f"velocity command is not finite: linear={lin.tolist()} angular={ang.tolist()}")
        with self._lock:
            self._advance(float(now))  # the old command holds until now
            self._linear, self._angular, self._cmd_time = lin, ang, float(now)

    def set_pose(self, T_world_base: np.ndarray, now: float) -> None:
        """Teleport; the current command is kept. Raises ``InvalidPoseError``."""
        T = validate_pose_matrix(T_world_base).copy()
        with self._lock:
            self._T = T
            self._time = float(now)

    def step(self, now: float) -> np.ndarray:
        """Integrate up to ``now`` [s] and return ``T_world_base [4, 4]``."""
        with self._lock:
            self._advance(float(now))
            return self._T.copy()

    def twist(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Body-frame ``(linear, angular)`` in effect at ``now`` (zero after the timeout)."""
        with self._lock:
            if now - self._cmd_time <= self.cmd_timeout:
                return self._linear.copy(), self._angular.copy()
            return np.zeros(3), np.zeros(3)

    @property
    def pose(self) -> np.ndarray:
        with self._lock:
            return self._T.copy()

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
        if active_until > start and (self._linear.any() or self._angular.any()):
            self._T = _orthonormalise(self._T @ se3_exp(self._linear, self._angular, active_until - start))
        self._time = now
