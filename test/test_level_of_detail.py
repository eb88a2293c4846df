"""Levels of detail of the geometric renderer's references (small targets draw halved
references): the level rule, the halving, and single == batch bytes on that path."""

import numpy as np
import pytest

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.renderers.base import render_views_one_by_one
from worldfm_ros.core.renderers.geometric import GeometricRenderer, halve_keyframe, reference_level
from worldfm_ros.core.synthetic import SyntheticWorld
from worldfm_ros.core.synthetic.trajectory import plan_loop

K = Intrinsics(fx=160.0, fy=160.0, cx=79.5, cy=59.5, width=160, height=120)


@pytest.fixture(scope="module")
def frames():
    world = SyntheticWorld.generate(5)
    loop = plan_loop(world, 5, 30)
    out = []
    for i, T in enumerate(loop.T_world_cam[:12]):
        colour, depth = world.render(T, K)
        out.append(Keyframe(colour, depth, K, T, float(i), id=i))
    return world, out


def test_level_keeps_the_asked_oversampling():
    assert reference_level(K, K, 2.0) == 0
    assert reference_level(K, K.resized(80, 60), 2.0) == 0  # ratio 2: halving would leave 1x
    assert reference_level(K, K.resized(40, 30), 2.0) == 1
    assert reference_level(K, K.resized(40, 30), 1.0) == 2
    assert reference_level(K, K.resized(40, 30), 0.0) == 0  # off
    assert reference_level(K, K.resized(2, 2), 1.0) == 3  # 120 >> 4 = 7 < 8: capped by the side
    assert reference_level(K.resized(1280, 960), K.resized(8, 6), 1.0) == 4  # MAX_REFERENCE_LEVEL


def test_halving_averages_each_blocks_front_surface():
    depth = np.array([[1.0, 1.02, 3.0, 0.0],
                      [2.0, 0.0, 0.0, 0.0]], np.float32)
    colour = np.zeros((2, 4, 3), np.uint8)
    colour[0, 0], colour[0, 1], colour[1, 0], colour[0, 2] = 10, 21, 200, 50
    kf = Keyframe(colour, depth, Intrinsics(fx=4.0, fy=4.0, cx=1.5, cy=0.5, width=4, height=2), np.eye(4), 1.0, id=7)
    half = halve_keyframe(kf, 0.03)
    # Block 0: 1.0 and 1.02 are one surface (2.0 is behind it); block 1: only 3.0 is valid.
    np.testing.assert_allclose(half.depth, [[1.01, 3.0]], rtol=1e-6)
    np.testing.assert_array_equal(half.colour[0, :, 0], [16, 50])  # (10 + 21) / 2 = 15.5 -> 16 (half to even)
    assert half.intrinsics == Intrinsics(fx=2.0, fy=2.0, cx=0.5, cy=0.0, width=2, height=1)
    assert half.id == 7 and half.stamp == 1.0 and half.T_world_cam is kf.T_world_cam
    empty = halve_keyframe(Keyframe(colour, np.zeros_like(depth), kf.intrinsics, np.eye(4)), 0.03)
    assert not empty.depth.any()


def test_small_targets_draw_halved_references_single_equals_batch(frames):
    world, kfs = frames
    small = K.resized(40, 30)
    T = np.stack([kfs[i].T_world_cam for i in range(2, 10, 2)])
    T[:, 0, 3] += 0.02
    refs = [kfs[i - 2: i + 2] for i in range(2, 10, 2)]
    renderer = GeometricRenderer()
    assert [r.depth.shape for r in renderer.drawn_references(refs[0], small)] == [(60, 80)] * 4
    batch = renderer.render_batch(refs, T, small)
    single = render_views_one_by_one(GeometricRenderer(), refs, T, small)
    for name in ("rgb", "depth", "covered", "coverage"):
        assert np.array_equal(getattr(batch, name), getattr(single, name)), name
    full = GeometricRenderer(level_of_detail=0).render_batch(refs, T, small)
    assert not np.array_equal(batch.rgb, full.rgb)  # it did take the other path
    for b, pose in enumerate(T):
        exact, _ = world.render(pose, small)
        err_lod = np.abs(batch.rgb[b].astype(float) - exact).mean()
        err_full = np.abs(full.rgb[b].astype(float) - exact).mean()
        assert err_lod < err_full + 2.0  # within 2 grey levels of the full-resolution path
    assert batch.coverage.mean() > full.coverage.mean() - 0.03
