"""Geometric and nearest renderers against exact ground truth and the numpy oracle."""

import math

import numpy as np
import pytest

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import EmptyMemoryError, InvalidPoseError, InvalidSizeError
from worldfm_ros.core.evaluation import psnr
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.renderers import make_renderer
from worldfm_ros.core.renderers.geometric import GeometricRenderer
from worldfm_ros.core.renderers.nearest import NearestRenderer
from worldfm_ros.core.renderers.reference import ReferenceGeometricRenderer
from worldfm_ros.core.synthetic import SyntheticWorld
from worldfm_ros.core.synthetic.trajectory import plan_loop

K = Intrinsics(fx=160.0, fy=160.0, cx=79.5, cy=59.5, width=160, height=120)


@pytest.fixture(scope="module")
def world():
    return SyntheticWorld.generate(5)


@pytest.fixture(scope="module")
def loop_frames(world):
    loop = plan_loop(world, 5, 60)
    frames = []
    for i, T in enumerate(loop.T_world_cam[:40]):
        colour, depth = world.render(T, K)
        frames.append(Keyframe(colour, depth, K, T, float(i), id=i))
    return frames


def looking_at_wall(distance, x=0.0):
    """Camera at (x, 0, 0) looking along +z (world = optical frame)."""
    T = np.eye(4)
    T[0, 3] = x
    return T


def plane_keyframe(depth_value, colour_value, T, kid, hole=None):
    colour = np.zeros((K.height, K.width, 3), np.uint8)
    colour[..., 0] = colour_value
    colour[..., 1] = (np.arange(K.width)[None, :] * 3) % 256  # texture along x
    depth = np.full((K.height, K.width), depth_value, np.float32)
    if hole is not None:
        depth[hole] = 0.0
    return Keyframe(colour, depth, K, T, 0.0, id=kid)


def test_render_at_a_keyframes_own_pose_reproduces_it(loop_frames):
    kf = loop_frames[10]
    out = GeometricRenderer().render([kf], kf.T_world_cam[None], K)
    assert out.coverage[0] > 0.85  # depth-edge pixels are dropped on purpose
    assert psnr(out.rgb[0], kf.colour, out.covered[0]) >= 40.0
    valid = out.covered[0] & (kf.depth > 0)
    np.testing.assert_allclose(out.depth[0][valid], kf.depth[valid], rtol=1e-4)


def test_novel_view_matches_exact_ground_truth(world, loop_frames):
    # A target between two keyframes, rendered from the four nearest ones.
    refs = [loop_frames[i] for i in (18, 20, 16, 22)]
    T = loop_frames[19].T_world_cam
    truth, _ = world.render(T, K)
    out = GeometricRenderer().render(refs, T[None], K)
    assert out.coverage[0] > 0.8
    assert psnr(out.rgb[0], truth, out.covered[0]) >= 27.0
    assert psnr(out.rgb[0], truth) > psnr(NearestRenderer().render(refs, T[None], K).rgb[0], truth) + 3.0


def test_fast_renderer_agrees_with_the_numpy_oracle(loop_frames):
    refs = [loop_frames[i] for i in (5, 7, 3, 9)]
    T = loop_frames[6].T_world_cam[None]
    for kernel, footprint in (("numba", "bilinear"), ("numba", "point"), ("torch", "bilinear"), ("torch", "point")):
        fast = GeometricRenderer(footprint=footprint, kernel=kernel).render(refs, T, K)
        slow = ReferenceGeometricRenderer(footprint=footprint).render(refs, T, K)
        agree = fast.covered[0] == slow.covered[0]
        assert agree.mean() > 0.995
        both = fast.covered[0] & slow.covered[0]
        diff = np.abs(fast.rgb[0].astype(int) - slow.rgb[0].astype(int))[both]
        assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 2
        rel = np.abs(fast.depth[0][both] - slow.depth[0][both]) / slow.depth[0][both]
        assert (rel < 1e-4).mean() > 0.999  # float32 vs float64 at the tolerance boundary


def test_numba_and_torch_kernels_agree(loop_frames):
    refs = [loop_frames[i] for i in (25, 27, 23, 29)]
    T = loop_frames[26].T_world_cam[None]
    a = GeometricRenderer(kernel="numba").render(refs, T, K)
    b = GeometricRenderer(kernel="torch").render(refs, T, K)
    assert (a.covered == b.covered).mean() > 0.999
    assert np.abs(a.rgb.astype(int) - b.rgb.astype(int)).max() <= 2


def test_renders_are_deterministic_whatever_the_cache(loop_frames):
    refs = [loop_frames[i] for i in (11, 13, 9, 15)]
    T = loop_frames[12].T_world_cam[None]
    renderer = GeometricRenderer(cache_size=2)
    first = renderer.render(refs, T, K)
    second = renderer.render(refs, T, K)  # cache now holds some of the clouds
    fresh = GeometricRenderer().render(refs, T, K)
    for other in (second, fresh):
        assert np.array_equal(first.rgb, other.rgb)
        assert np.array_equal(first.depth, other.depth)
        assert np.array_equal(first.covered, other.covered)


def test_near_surface_occludes_far_surface():
    far = plane_keyframe(4.0, 200, looking_at_wall(4.0), 0)
    near = plane_keyframe(1.0, 50, looking_at_wall(1.0), 1)
    out = GeometricRenderer().render([far, near], np.eye(4)[None], K)
    centre = out.rgb[0, 40:80, 60:100, 0]
    assert np.all(np.abs(centre.astype(int) - 50) <= 1)
    np.testing.assert_allclose(out.depth[0, 40:80, 60:100], 1.0, rtol=1e-3)


def test_holes_are_filled_but_not_covered():
    hole = (slice(40, 80), slice(60, 100))
    kf = plane_keyframe(2.0, 120, np.eye(4), 0, hole=hole)
    out = GeometricRenderer().render([kf], np.eye(4)[None], K)
    assert not out.covered[0][hole].any()
    assert out.depth[0][hole].max() == 0.0
    assert np.all(np.abs(out.rgb[0][hole][..., 0].astype(int) - 120) <= 2)  # filled from around
    assert out.covered[0][:30].all()
    assert math.isclose(float(out.coverage[0]), 1.0 - 1600 / (160 * 120), abs_tol=0.02)


def test_batch_equals_single_renders(loop_frames):
    refs = [loop_frames[i] for i in (20, 22, 24)]
    poses = np.stack([loop_frames[21].T_world_cam, loop_frames[23].T_world_cam])
    renderer = GeometricRenderer()
    batch = renderer.render(refs, poses, K)
    for b in range(2):
        single = renderer.render(refs, poses[b : b + 1], K)
        assert np.array_equal(batch.rgb[b], single.rgb[0])
        assert np.array_equal(batch.depth[b], single.depth[0])


def test_output_size_follows_the_target_intrinsics(loop_frames):
    big = K.resized(240, 180)
    out = GeometricRenderer().render(loop_frames[:2], loop_frames[1].T_world_cam[None], big)
    assert out.rgb.shape == (1, 180, 240, 3) and out.rgb.dtype == np.uint8
    assert out.depth.shape == (1, 180, 240) and out.depth.dtype == np.float32
    nearest = NearestRenderer().render(loop_frames[:2], loop_frames[1].T_world_cam[None], big)
    assert nearest.rgb.shape == (1, 180, 240, 3) and nearest.reference_ids == [loop_frames[0].id]


@pytest.mark.parametrize("backend", ["geometric", "nearest"])
def test_bad_input_gives_typed_errors(backend, loop_frames):
    renderer = make_renderer(backend)
    with pytest.raises(EmptyMemoryError):
        renderer.render([], np.eye(4)[None], K)
    bad = np.eye(4)[None].copy()
    bad[0, 0, 3] = np.nan
    with pytest.raises(InvalidPoseError):
        renderer.render(loop_frames[:1], bad, K)
    with pytest.raises(InvalidPoseError):
        renderer.render(loop_frames[:1], np.eye(4), K)  # not [B, 4, 4]
    with pytest.raises(InvalidSizeError):
        K.resized(9000, 60)
    with pytest.raises(InvalidSizeError):
        K.resized(0, 60)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend"):
        make_renderer("raytraced")
    with pytest.raises(ValueError, match="device"):
        make_renderer("geometric", device="tpu")
