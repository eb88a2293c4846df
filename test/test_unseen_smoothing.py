"""The learned renderer's smoothing of never-seen pixels (issue 12, session 8:
:func:`worldfm_ros.core.renderers.learned.smooth_unseen`)."""

import numpy as np
import pytest
import torch

from worldfm_ros.core.renderers.learned import smooth_unseen


def _image(H=48, W=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((H, W, 3), dtype=np.float32)


def test_seen_pixels_are_returned_unchanged_and_unseen_ones_move_towards_a_blur():
    rgb = _image()
    covered = np.ones(rgb.shape[:2], bool)
    covered[:, 40:] = False  # a never-seen band on the right
    out = smooth_unseen(rgb, covered)
    assert out.dtype == np.float32 and out.shape == rgb.shape
    assert np.array_equal(out[covered], rgb[covered])  # bit for bit
    # Random noise blurred has far less spread; the far end of the band is nearly the blur.
    far = out[:, 60:]
    assert far.std() < 0.5 * rgb[:, 60:].std()
    # The weight grows with the distance to the seen pixels.
    step = np.abs(out - rgb).mean(axis=(0, 2))
    assert step[41] < step[44] < step[50]


def test_fully_seen_view_is_untouched():
    rgb = _image(seed=1)
    assert np.array_equal(smooth_unseen(rgb, np.ones(rgb.shape[:2], bool)), rgb)


def test_deterministic():
    rgb = _image(seed=2)
    covered = np.random.default_rng(3).random(rgb.shape[:2]) > 0.4
    assert np.array_equal(smooth_unseen(rgb, covered), smooth_unseen(rgb.copy(), covered.copy()))


@pytest.fixture(scope="module")
def off_path_scene():
    """A memory along part of world 5's loop and a target 0.3 m beside it, turned 40 deg:
    a view with a large never-seen region (exact ground truth)."""
    from worldfm_ros.core.keyframe import Keyframe
    from worldfm_ros.core.memory import KeyframeMemory, MemoryConfig
    from worldfm_ros.core.synthetic import default_intrinsics, generate_world, plan_loop
    from worldfm_ros.core.synthetic.offtrajectory import target_pose

    world = generate_world(5)
    K = default_intrinsics(160, 120)
    loop = plan_loop(world, 5, 60)
    memory = KeyframeMemory(MemoryConfig())
    for i in range(0, 60, 2):
        colour, depth = world.render(loop.T_world_cam[i], K, supersample=2)
        memory.consider(Keyframe(colour, depth, K, loop.T_world_cam[i], float(i)))
    T = target_pose(loop.T_world_base[40], loop.camera_to_base, left=0.3, turn_deg=40.0)
    return memory, K, T, world.render(T, K, supersample=2)[0]


def test_renderer_changes_only_never_seen_pixels_and_lowers_their_error(off_path_scene):
    from worldfm_ros.core.renderers.learned import LearnedRenderer

    torch.set_num_threads(1)
    memory, K, T, truth = off_path_scene
    on, off = LearnedRenderer(smooth_unseen=True), LearnedRenderer()
    refs = memory.retrieve(T, K, k=on.references_per_view)
    a, b = on.render(refs, T[None], K), off.render(refs, T[None], K)
    unseen = ~a.covered[0]
    assert unseen.mean() > 0.05, "the scene should leave part of the view unseen"
    assert np.array_equal(a.covered, b.covered)
    assert np.array_equal(a.rgb[0][~unseen], b.rgb[0][~unseen])  # seen pixels: the same bytes
    assert not np.array_equal(a.rgb[0][unseen], b.rgb[0][unseen])

    def mse(x):
        return float(((x[0][unseen].astype(np.float64) - truth[unseen]) ** 2).mean())

    assert mse(a.rgb) < mse(b.rgb)
    # same pose, same memory: same bytes; batch = single
    assert np.array_equal(a.rgb, LearnedRenderer(smooth_unseen=True).render(refs, T[None], K).rgb)
    batch = on.render_batch([refs, refs], np.stack([T, T]), K)
    assert np.array_equal(batch.rgb[0], a.rgb[0]) and np.array_equal(batch.rgb[1], a.rgb[0])
