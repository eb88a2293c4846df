"""Rigid poses as 4x4 ``T_world_cam`` matrices and their position + quaternion form.

Quaternions in this API are in ROS order ``(x, y, z, w)``; transforms3d (``w, x, y, z``)
does the conversions underneath.
"""

from __future__ import annotations

import math

import numpy as np
import transforms3d.quaternions as tq

from worldfm_ros.core.errors import InvalidPoseError

#: Quaternions with a smaller norm are refused rather than normalised.
MIN_QUATERNION_NORM = 1e-6


def normalized_quaternion_xyzw(q_xyzw) -> np.ndarray:
    """Validate and normalise a quaternion in ROS order; raises :class:`InvalidPoseError`."""
    q = np.asarray(q_xyzw, dtype=np.float64).reshape(-1)
    if q.shape != (4,):
        raise InvalidPoseError(f"quaternion must have 4 entries (x, y, z, w), got {q.tolist()}", q)
    if not np.all(np.isfinite(q)):
        raise InvalidPoseError(f"quaternion has non-finite entries: {q.tolist()}", q)
    norm = float(np.linalg.norm(q))
    if norm < MIN_QUATERNION_NORM:
        raise InvalidPoseError(f"quaternion norm {norm:.3g} is below {MIN_QUATERNION_NORM:g}: {q.tolist()}", q)
    return q / norm


def pose_from_position_quaternion(position, q_xyzw) -> np.ndarray:
    """``[4, 4]`` float64 transform from a position [m] and a ROS-order quaternion."""
    p = np.asarray(position, dtype=np.float64).reshape(-1)
    if p.shape != (3,):
        raise InvalidPoseError(f"position must have 3 entries, got {p.tolist()}", p)
    if not np.all(np.isfinite(p)):
        raise InvalidPoseError(f"position has non-finite entries: {p.tolist()}", p)
    x, y, z, w = normalized_quaternion_xyzw(q_xyzw)
    T = np.eye(4)
    T[:3, :3] = tq.quat2mat([w, x, y, z])
    T[:3, 3] = p
    return T


def pose_from_vector(xyz_qxyzw) -> np.ndarray:
    """``[x, y, z, qx, qy, qz, qw]`` (the contract's parameter form) to a 4x4 transform."""
    v = np.asarray(xyz_qxyzw, dtype=np.float64).reshape(-1)
    if v.shape != (7,):
        raise InvalidPoseError(f"pose vector must be [x, y, z, qx, qy, qz, qw], got {v.tolist()}", v)
    return pose_from_position_quaternion(v[:3], v[3:])


def position_quaternion_from_pose(T) -> tuple[np.ndarray, np.ndarray]:
    """Split a 4x4 transform into position [m] and a unit ROS-order quaternion (w >= 0)."""
    T = validate_pose_matrix(T)
    w, x, y, z = tq.mat2quat(T[:3, :3])
    q = np.array([x, y, z, w])
    if q[3] < 0:
        q = -q
    return T[:3, 3].copy(), q / np.linalg.norm(q)


def validate_pose_matrix(T, tolerance: float = 1e-4) -> np.ndarray:
    """Return ``T`` as float64 ``[4, 4]`` or raise :class:`InvalidPoseError`.

    The rotation block must be orthonormal with determinant +1 within ``tolerance``.
    """
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise InvalidPoseError(f"pose must be a 4x4 matrix, got shape {T.shape}", T)
    if not np.all(np.isfinite(T)):
        raise InvalidPoseError("pose has non-finite entries", T)
    R = T[:3, :3]
    if (
        np.abs(R @ R.T - np.eye(3)).max() > tolerance
        or abs(np.linalg.det(R) - 1.0) > tolerance
        or np.abs(T[3] - [0, 0, 0, 1]).max() > tolerance
    ):
        raise InvalidPoseError("pose is not a rigid transform (rotation not orthonormal)", T)
    return T


def invert_pose(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform."""
    Ti = np.eye(4)
    R = T[:3, :3]
    Ti[:3, :3] = R.T
    Ti[:3, 3] = -R.T @ T[:3, 3]
    return Ti


def rotation_angle_deg(R_a: np.ndarray, R_b: np.ndarray) -> float:
    """Angle of the relative rotation between two 3x3 rotations [deg]."""
    c = (np.trace(R_a.T @ R_b) - 1.0) / 2.0
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def interpolate_pose(T_a: np.ndarray, T_b: np.ndarray, alpha: float) -> np.ndarray:
    """Pose at fraction ``alpha`` from ``T_a`` to ``T_b``: linear position, slerp rotation.

    ``alpha`` outside [0, 1] extrapolates.
    """
    qa = tq.mat2quat(T_a[:3, :3])
    qb = tq.mat2quat(T_b[:3, :3])
    if np.dot(qa, qb) < 0:
        qb = -qb
    # Relative rotation as axis-angle, scaled by alpha (works for extrapolation too).
    q_rel = tq.qmult(tq.qinverse(qa), qb)
    axis, angle = tq.quat2axangle(q_rel)
    q = tq.qmult(qa, tq.axangle2quat(axis, angle * alpha)) if angle > 1e-12 else qa
    T = np.eye(4)
    T[:3, :3] = tq.quat2mat(q)
    T[:3, 3] = (1.0 - alpha) * T_a[:3, 3] + alpha * T_b[:3, 3]
    return T
