"""Bad input to the core: typed errors that carry the bad value; nothing stored is lost."""

import math

import numpy as np
import pytest

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import (
    EmptyMemoryError,
    InvalidImageError,
    InvalidIntrinsicsError,
    InvalidPoseError,
    InvalidSizeError,
)
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.pose import pose_from_position_quaternion, position_quaternion_from_pose
from worldfm_ros.core.renderers.geometric import GeometricRenderer
from worldfm_ros.core.world_service import WorldService, WorldServiceConfig

K = Intrinsics(fx=50.0, fy=50.0, cx=31.5, cy=23.5, width=64, height=48)


def frame(x=0.0, depth=2.0):
    T = np.eye(4)
    T[0, 3] = x
    return Keyframe(np.full((48, 64, 3), 90, np.uint8), np.full((48, 64), depth, np.float32), K, T)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_position_or_quaternion(bad):
    with pytest.raises(InvalidPoseError) as e:
        pose_from_position_quaternion([0.0, bad, 0.0], [0, 0, 0, 1])
    assert not np.isfinite(e.value.value).all()
    with pytest.raises(InvalidPoseError):
        pose_from_position_quaternion([0.0, 0.0, 0.0], [0, bad, 0, 1])


def test_zero_quaternion_is_refused_and_a_long_one_normalised():
    with pytest.raises(InvalidPoseError, match="norm") as e:
        pose_from_position_quaternion([0, 0, 0], [0, 0, 0, 0])
    assert np.array_equal(e.value.value, [0, 0, 0, 0])
    with pytest.raises(InvalidPoseError):
        pose_from_position_quaternion([0, 0, 0], [1e-7, 0, 0, 0])
    T = pose_from_position_quaternion([1, 2, 3], [0, 0, 0, 1.5])  # norm 1.5: normalised
    np.testing.assert_allclose(T[:3, :3], np.eye(3))
    q = np.array([0.2, -0.4, 0.1, 0.9]) * 1.5
    _, back = position_quaternion_from_pose(pose_from_position_quaternion([0, 0, 0], q))
    np.testing.assert_allclose(back, q / np.linalg.norm(q), atol=1e-12)


def test_depth_colour_size_mismatch():
    with pytest.raises(InvalidImageError, match="differs") as e:
        Keyframe(np.zeros((48, 64, 3), np.uint8), np.zeros((40, 64), np.float32), K, np.eye(4))
    assert e.value.value == ((40, 64), (48, 64, 3))


@pytest.mark.parametrize("fx", [0.0, math.nan, -5.0])
def test_zero_or_bad_focal_length(fx):
    with pytest.raises(InvalidIntrinsicsError) as e:
        Intrinsics(fx=fx, fy=50.0, cx=31.5, cy=23.5, width=64, height=48)
    assert e.value.value is fx or (math.isnan(fx) and math.isnan(e.value.value))
    with pytest.raises(InvalidIntrinsicsError):
        Intrinsics.from_matrix(np.zeros((3, 3)), 64, 48)  # an all-zero K


@pytest.mark.parametrize("width, height", [(0, 48), (64, 0), (8193, 48), (64, 100000)])
def test_target_size_out_of_range(width, height):
    with pytest.raises(InvalidSizeError) as e:
        K.resized(width, height)
    assert e.value.value in (width, height)


def test_empty_memory_and_a_failed_render_lose_nothing():
    service = WorldService(WorldServiceConfig(keyframe_width=64, keyframe_height=48), renderer=GeometricRenderer())
    with pytest.raises(EmptyMemoryError):
        service.render(np.eye(4), K)
    assert service.ingest(frame(0.0)) is not None
    assert service.ingest(frame(0.5)) is not None
    before = [kf.id for kf in service.keyframes()]
    bad = np.eye(4)
    bad[1, 3] = math.nan
    with pytest.raises(InvalidPoseError):
        service.render(bad, K)
    with pytest.raises(InvalidSizeError):
        service.render(np.eye(4), K.resized(5000, 48))  # the node serves up to 4096 per side
    assert [kf.id for kf in service.keyframes()] == before
    good = service.render(np.eye(4), K).result
    assert good.rgb.shape == (1, 48, 64, 3) and good.coverage[0] > 0.5
