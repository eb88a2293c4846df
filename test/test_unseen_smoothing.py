"""The learned renderer's smoothing of never-seen pixels (issue 12, session 8:
:func:`worldfm_ros.core.renderers.learned.smooth_unseen`)."""

import numpy as np
import pytest
import torch

from worldfm_ros.core.renderers.learned import disoccluded_unseen, smooth_unseen


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


def test_disocclusion_mask_takes_gaps_beside_depth_edges_only():
    H, W = 60, 80
    covered = np.ones((H, W), bool)
    depth = np.full((H, W), 3.0, np.float32)
    depth[:, :30] = 1.0  # a foreground object on the left
    covered[10:50, 30:34] = False  # the gap that opens beside its edge
    covered[20:30, 60:66] = False  # a hole inside the background wall (a sensor's missing pixels)
    covered[:, 76:] = False  # the never-seen band of a turned view (touches the border)
    depth[~covered] = 0.0
    mask = disoccluded_unseen(covered, depth)
    assert mask[10:50, 30:34].all()
    assert not mask[20:30, 60:66].any()
    assert not mask[:, 76:].any()
    assert mask.sum() == 40 * 4
    assert not disoccluded_unseen(np.ones((H, W), bool), depth).any()


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
    on, off = LearnedRenderer(smooth_unseen=True), LearnedRenderer(smooth_unseen="off")
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


def test_disocclusion_mode_changes_only_gaps_beside_edges():
    """One reference: a textured wall at 3 m with a box 1 m from the camera in the middle; the
    target stands 10 cm to the side, so a gap opens beside the box (and a band along the
    border, which the mode leaves alone)."""
    from worldfm_ros.core.keyframe import Keyframe
    from worldfm_ros.core.renderers.learned import LearnedRenderer
    from worldfm_ros.core.synthetic import default_intrinsics

    torch.set_num_threads(1)
    K = default_intrinsics(160, 120)
    rng = np.random.default_rng(4)
    colour = (rng.random((120, 160, 3)) * 80 + 100).astype(np.uint8)
    colour[40:80, 60:100] = (200, 40, 40)
    depth = np.full((120, 160), 3.0, np.float32)
    depth[40:80, 60:100] = 1.0
    ref = Keyframe(colour, depth, K, np.eye(4), 0.0, id=0)
    T = np.eye(4)
    T[0, 3] = 0.1
    on, off = LearnedRenderer(), LearnedRenderer(smooth_unseen="off")
    a, b = on.render([ref], T[None], K), off.render([ref], T[None], K)
    holes = disoccluded_unseen(b.covered[0], b.depth[0])
    assert holes.sum() > 100, "the gap beside the box"
    assert not holes[:, -10:].any() and (~b.covered[0][:, -3:]).all(), "the border band is not a gap"
    changed = np.any(a.rgb[0] != b.rgb[0], axis=-1)
    assert changed.any()
    assert not (changed & ~holes).any()  # nothing outside the gaps moves, not even the border band
    assert np.array_equal(a.rgb, LearnedRenderer(smooth_unseen="disocclusion").render([ref], T[None], K).rgb)
    # a depth sensor's reference (missing depth on 5 % of its pixels): left as the network made it
    holey = Keyframe(colour, np.where(rng.random(depth.shape) < 0.05, 0, depth).astype(np.float32), K, np.eye(4), 0.0, id=1)
    assert np.array_equal(on.render([holey], T[None], K).rgb, off.render([holey], T[None], K).rgb)
    with pytest.raises(ValueError, match="smooth_unseen"):
        LearnedRenderer(smooth_unseen="interior")
