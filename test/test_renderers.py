"""Geometric and nearest renderers against exact ground truth and the numpy oracle."""

import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import EmptyMemoryError, InvalidPoseError, InvalidSizeError
from worldfm_ros.core.evaluation import psnr
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.renderers import make_renderer
from worldfm_ros.core.renderers import splat_kernels
from worldfm_ros.core.renderers.geometric import GeometricRenderer
from worldfm_ros.core.renderers.hole_filling import push_pull
from worldfm_ros.core.renderers.nearest import NearestRenderer
from worldfm_ros.core.renderers.reference import ReferenceGeometricRenderer
from worldfm_ros.core.renderers.splatting import MIN_VIEW_WEIGHT, discontinuity_mask, view_weights
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
    assert out.coverage[0] > 0.97  # only the image border (half a footprint) is thin
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
    # Intrinsics refuse bad sizes on construction; the renderers check again for objects
    # that only look like Intrinsics.
    for width, height in ((0, 60), (8193, 60), (80, 0)):
        fake = SimpleNamespace(fx=100.0, fy=100.0, cx=40.0, cy=30.0, width=width, height=height)
        with pytest.raises(InvalidSizeError) as err:
            renderer.render(loop_frames[:1], np.eye(4)[None], fake)
        assert err.value.value in (width, height)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend"):
        make_renderer("raytraced")
    with pytest.raises(ValueError, match="device"):
        make_renderer("geometric", device="tpu")


def test_same_bytes_whatever_the_thread_count(loop_frames):
    refs = [loop_frames[i] for i in (30, 32, 28, 34, 26)]
    T = loop_frames[31].T_world_cam[None]
    one = GeometricRenderer(threads=1).render(refs, T, K)
    two = GeometricRenderer(threads=2).render(refs, T, K)
    assert np.array_equal(one.rgb, two.rgb)
    assert np.array_equal(one.depth, two.depth)
    assert np.array_equal(one.covered, two.covered)


def test_a_magnified_target_keeps_its_coverage(world, loop_frames):
    # 2x the keyframes' resolution: one reference's points alone would reach one pixel in four.
    refs = [loop_frames[18]]
    T = loop_frames[19].T_world_cam
    native = GeometricRenderer().render(refs, T[None], K)
    big_K = K.resized(2 * K.width, 2 * K.height)
    big = GeometricRenderer().render(refs, T[None], big_K)
    assert big.rgb.shape == (1, big_K.height, big_K.width, 3)
    assert abs(float(big.coverage[0]) - float(native.coverage[0])) < 0.02
    truth, truth_depth = world.render(T, big_K)
    assert psnr(big.rgb[0], truth, big.covered[0]) >= 25.0
    ok = big.covered[0] & (truth_depth > 0)
    rel = np.abs(big.depth[0][ok] - truth_depth[ok]) / truth_depth[ok]
    assert np.median(rel) < 0.01


def test_view_weights_favour_the_nearest_view():
    target = np.eye(4)
    poses = []
    for dx, yaw_deg in ((0.01, 0.0), (0.10, 0.0), (0.01, 10.0), (5.0, 90.0)):
        T = np.eye(4)
        a = math.radians(yaw_deg)
        T[:3, :3] = [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]
        T[0, 3] = dx
        poses.append(T)
    w = view_weights(poses, target, angle_scale_deg=2.0, distance_scale=0.02)
    assert w[0] == 1.0
    np.testing.assert_allclose(w[1], math.exp(-(0.10 - 0.01) / 0.02), rtol=1e-9)
    np.testing.assert_allclose(w[2], math.exp(-10.0 / 2.0), rtol=1e-6)
    assert w[3] == MIN_VIEW_WEIGHT  # far away, yet still able to fill what others miss


def test_numba_edge_mask_and_push_pull_match_their_numpy_and_torch_versions(loop_frames):
    depth = loop_frames[12].depth.copy()
    depth[50:60, 70:90] = 0.0  # invalid pixels next to valid ones
    for ratio in (0.0, 0.05, 0.2):
        keep = np.empty(depth.shape, np.uint8)
        splat_kernels.edge_free_mask(depth, ratio, keep)
        np.testing.assert_array_equal(keep.astype(bool), discontinuity_mask(depth, ratio))
    rng = np.random.default_rng(0)
    colour = (rng.random((3, 37, 50)) * 255).astype(np.float32)  # odd sizes on purpose
    weight = np.zeros((37, 50), np.float32)
    weight[5:20, 3:30] = 1.0
    weight[25:30, 40:45] = 0.4
    expected = push_pull(torch.from_numpy(colour), torch.from_numpy(weight)).numpy()
    out = np.empty_like(colour)
    work = np.empty(splat_kernels.push_pull_workspace_size(37, 50, 10), np.float32)
    splat_kernels.push_pull(colour, weight, 10, out, work)
    np.testing.assert_allclose(out, expected, atol=1e-2)
    np.testing.assert_array_equal(out[:, 5:20, 3:30], colour[:, 5:20, 3:30])  # known pixels kept


def test_nearest_copies_the_best_ranked_reference(loop_frames):
    refs = [loop_frames[7], loop_frames[3]]
    poses = np.stack([loop_frames[5].T_world_cam] * 2)
    same = NearestRenderer().render(refs, poses, K)
    assert np.array_equal(same.rgb[0], refs[0].colour) and np.array_equal(same.rgb[1], refs[0].colour)
    assert not same.covered.any() and same.coverage.tolist() == [0.0, 0.0]
    small = K.resized(80, 60)
    half = NearestRenderer().render(refs, poses[:1], small)
    np.testing.assert_array_equal(half.rgb[0], cv2.resize(refs[0].colour, (80, 60), interpolation=cv2.INTER_AREA))
