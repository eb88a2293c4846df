"""A bounded, time-ordered buffer of odometry poses queried at image stamps.

ROS-free: the node feeds it ``(stamp [s], T_world_base [4, 4])`` from ``nav_msgs/Odometry`` and
asks for the base pose at each image stamp. Between two buffered samples the pose is
interpolated (linear position, slerp rotation); after the newest sample it is extrapolated with
the last two samples' velocity, by at most ``max_extrapolation`` seconds; before the oldest
sample no pose is given (the buffer cannot know where the robot was).
"""

from __future__ import annotations

import bisect
import enum
import math
import threading
from collections import Counter

import numpy as np

from worldfm_ros.core.errors import InvalidPoseError, WorldFMError
from worldfm_ros.core.pose import interpolate_pose, validate_pose_matrix


class PoseMiss(enum.Enum):
    """Why no pose could be given at a stamp."""

    NO_ODOMETRY = "no odometry received yet"
    BEFORE_BUFFER = "stamp is older than the oldest buffered odometry"
    BEYOND_EXTRAPOLATION = "stamp is newer than the newest odometry by more than sync.max_extrapolation"
    GAP_TOO_LARGE = "odometry samples around the stamp are too far apart"
    INVALID_STAMP = "stamp is not finite"


class PoseUnavailableError(WorldFMError, LookupError):
    """No pose at the asked stamp; ``.reason`` is a :class:`PoseMiss`, ``.value`` the stamp [s]."""

    def __init__(self, reason: PoseMiss, stamp: float, detail: str = ""):
        message = f"no pose at stamp {stamp:.6f} s: {reason.value}"
        super().__init__(message + (f" ({detail})" if detail else ""), stamp)
        self.reason = reason


class OdometryBuffer:
    """Thread-safe buffer of the most recent ``max_samples`` odometry poses, sorted by stamp.

    Args:
        max_extrapolation: how far past the newest sample a pose may be extrapolated [s].
        max_samples: bound on the number of stored samples (oldest are dropped).
        max_interpolation_gap: two neighbours further apart than this are not interpolated
            between [s] (a dropped odometry stream should not yield invented poses).
        jump_back_reset: a sample older than the newest by more than this means time jumped
            back (a bag restarted, simulated time reset): the buffer is emptied first [s].
        max_position: a sample whose position is farther than this from the origin is refused
            (``InvalidPoseError``): a finite but absurd pose, e.g. 1e300 m, would otherwise
            become a keyframe pose [m].
    """

    def __init__(
        self,
        *,
        max_extrapolation: float = 0.1,
        max_samples: int = 2000,
        max_interpolation_gap: float = 1.0,
        jump_back_reset: float = 2.0,
        max_position: float = 1e6,
    ):
        for name, value in (
            ("max_extrapolation", max_extrapolation),
            ("max_interpolation_gap", max_interpolation_gap),
            ("jump_back_reset", jump_back_reset),
            ("max_position", max_position),
        ):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        if int(max_samples) < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples!r}")
        self.max_extrapolation = float(max_extrapolation)
        self.max_samples = int(max_samples)
        self.max_interpolation_gap = float(max_interpolation_gap)
        self.jump_back_reset = float(jump_back_reset)
        self.max_position = float(max_position)
        self._stamps: list[float] = []
        self._poses: list[np.ndarray] = []
        self._lock = threading.Lock()
        #: How often each :class:`PoseMiss` happened (for status and warnings).
        self.misses: Counter = Counter()
        #: Samples dropped because a backwards time jump emptied the buffer.
        self.resets = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)

    def clear(self) -> None:
        with self._lock:
            self._stamps.clear()
            self._poses.clear()

    def add(self, stamp: float, T_world_base: np.ndarray) -> None:
        """Insert a sample; raises ``InvalidPoseError`` for a non-rigid or non-finite pose and
        ``ValueError`` for a non-finite stamp. Out-of-order samples are inserted in place; a
        sample with the stamp of a stored one replaces it."""
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise ValueError(f"odometry stamp is not finite: {stamp!r}")
        T = validate_pose_matrix(T_world_base).copy()
        # (the largest coordinate first: the norm of 1e300 overflows)
        distance = float(np.abs(T[:3, 3]).max())
        if distance <= self.max_position:
            distance = float(np.linalg.norm(T[:3, 3]))
        if distance > self.max_position:
            raise InvalidPoseError(
                f"odometry position {T[:3, 3].tolist()} is {distance:.6g} m from the origin, beyond "
                f"the bound of {self.max_position:g} m", T[:3, 3].tolist())
        with self._lock:
            if self._stamps and stamp < self._stamps[-1] - self.jump_back_reset:
                self._stamps.clear()
                self._poses.clear()
                self.resets += 1
            i = bisect.bisect_left(self._stamps, stamp)
            if i < len(self._stamps) and self._stamps[i] == stamp:
                self._poses[i] = T
            else:
                self._stamps.insert(i, stamp)
                self._poses.insert(i, T)
            excess = len(self._stamps) - self.max_samples
            if excess > 0:
                del self._stamps[:excess]
                del self._poses[:excess]

    def latest(self) -> tuple[float, np.ndarray] | None:
        """``(stamp, T_world_base)`` of the newest sample, or None when empty."""
        with self._lock:
            if not self._stamps:
                return None
            return self._stamps[-1], self._poses[-1].copy()

    def pose_at(self, stamp: float) -> np.ndarray:
        """``T_world_base [4, 4]`` at ``stamp`` [s]; raises :class:`PoseUnavailableError`."""
        try:
            return self._pose_at(float(stamp))
        except PoseUnavailableError as error:
            self.misses[error.reason] += 1
            raise

    def _pose_at(self, stamp: float) -> np.ndarray:
        if not math.isfinite(stamp):
            raise PoseUnavailableError(PoseMiss.INVALID_STAMP, stamp)
        with self._lock:
            stamps, poses = self._stamps, self._poses
            if not stamps:
                raise PoseUnavailableError(PoseMiss.NO_ODOMETRY, stamp)
            i = bisect.bisect_left(stamps, stamp)
            if i < len(stamps) and stamps[i] == stamp:
                return poses[i].copy()
            if i == 0:
                raise PoseUnavailableError(
                    PoseMiss.BEFORE_BUFFER, stamp, f"oldest odometry at {stamps[0]:.6f} s"
                )
            if i < len(stamps):
                t0, t1 = stamps[i - 1], stamps[i]
                if t1 - t0 > self.max_interpolation_gap:
                    raise PoseUnavailableError(
                        PoseMiss.GAP_TOO_LARGE, stamp, f"neighbours {t0:.6f} s and {t1:.6f} s"
                    )
                return interpolate_pose(poses[i - 1], poses[i], (stamp - t0) / (t1 - t0))
            ahead = stamp - stamps[-1]
            if ahead > self.max_extrapolation:
                raise PoseUnavailableError(
                    PoseMiss.BEYOND_EXTRAPOLATION, stamp,
                    f"newest odometry at {stamps[-1]:.6f} s, {ahead:.3f} s earlier",
                )
            if len(stamps) == 1 or stamps[-1] - stamps[-2] > self.max_interpolation_gap:
                return poses[-1].copy()  # no usable velocity: hold the newest pose
            t0, t1 = stamps[-2], stamps[-1]
            return interpolate_pose(poses[-2], poses[-1], (stamp - t0) / (t1 - t0))
