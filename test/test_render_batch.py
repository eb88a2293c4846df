"""Batched rendering: ``render_batch`` equals one render per view (the reference loop) byte
for byte, and ``WorldService.render_batch`` retrieves references per view as ``render`` does."""

import numpy as np
import pytest

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import EmptyMemoryError, InvalidPoseError
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.renderers.base import render_batch, render_views_one_by_one
from worldfm_ros.core.renderers.geometric import GeometricRenderer
from worldfm_ros.core.renderers.nearest import NearestRenderer
from worldfm_ros.core.synthetic import SyntheticWorld
from worldfm_ros.core.synthetic.trajectory import plan_loop
from worldfm_ros.core.world_service import WorldService

K = Intrinsics(fx=160.0, fy=160.0, cx=79.5, cy=59.5, width=160, height=120)


@pytest.fixture(scope="module")
def frames():
    world = SyntheticWorld.generate(5)
    loop = plan_loop(world, 5, 60)
    out = []
    for i, T in enumerate(loop.T_world_cam[:40]):
        colour, depth = world.render(T, K)
        out.append(Keyframe(colour, depth, K, T, float(i), id=i))
    return out


def _views(frames):
    """Targets between keyframes, each with its own (differently sized) reference list."""
    refs = [frames[i - 2 : i + 2 + (i % 3)] for i in range(3, 37, 3)]
    T = np.stack([frames[i].T_world_cam for i in range(3, 37, 3)])
    T[:, 0, 3] += 0.03  # off the keyframes' own poses
    return refs, T


def _assert_same(a, b):
    assert np.array_equal(a.rgb, b.rgb)
    assert np.array_equal(a.depth, b.depth)
    assert np.array_equal(a.covered, b.covered)
    assert np.array_equal(a.coverage, b.coverage)
    assert a.reference_ids_per_view == b.reference_ids_per_view


@pytest.mark.parametrize("options", [{}, {"footprint": "point"}, {"fill_holes": False}, {"threads": 1}])
def test_geometric_batch_equals_per_view_renders_byte_for_byte(frames, options):
    renderer = GeometricRenderer(**options)
    refs, T = _views(frames)
    batch = renderer.render_batch(refs, T, K)
    oracle = render_views_one_by_one(GeometricRenderer(**options), refs, T, K)
    assert batch.rgb.shape == (len(T), K.height, K.width, 3)
    assert 0.3 < batch.coverage.min()
    _assert_same(batch, oracle)


def test_geometric_batch_bytes_do_not_depend_on_batch_split_or_reference_count(frames):
    """The batch runs its views in compiled chunks on the threads: a view's bytes are the same
    whichever chunk and thread rendered it, and views drawn from one reference (one group)
    match their single render too."""
    refs, T = _views(frames)
    refs = refs + [[frames[10]], [frames[20], frames[21]], frames[30:33]]
    T = np.concatenate([T, T[:3]])
    T[-3:, 1, 3] += 0.02
    renderer = GeometricRenderer()
    whole = renderer.render_batch(refs, T, K)
    parts = [GeometricRenderer(threads=1).render_batch(refs[i : i + 5], T[i : i + 5], K) for i in range(0, len(T), 5)]
    assert np.array_equal(whole.rgb, np.concatenate([p.rgb for p in parts]))
    assert np.array_equal(whole.depth, np.concatenate([p.depth for p in parts]))
    for b in (len(T) - 3, len(T) - 2, len(T) - 1):
        single = renderer.render(refs[b], T[b : b + 1], K)
        assert np.array_equal(whole.rgb[b], single.rgb[0])
        assert np.array_equal(whole.covered[b], single.covered[0])


def test_geometric_batch_packs_references_in_bounded_runs_with_the_same_bytes(frames, monkeypatch):
    """A batch whose references exceed the packing budget is rendered in runs of views (so a
    large batch never copies a whole large world at once), with the same bytes."""
    from worldfm_ros.core.renderers import geometric

    refs, T = _views(frames)
    whole = GeometricRenderer().render_batch(refs, T, K)
    monkeypatch.setattr(geometric, "_MAX_PACKED_BYTES", 6 * K.width * K.height * 8)  # about one view's references
    assert len(geometric._packing_runs(refs, geometric._MAX_PACKED_BYTES)) > 3
    _assert_same(GeometricRenderer().render_batch(refs, T, K), whole)


def test_magnified_targets_are_splatted_small_and_upsampled_as_per_view(frames):
    big = K.resized(480, 360)
    refs, T = _views(frames)
    _assert_same(GeometricRenderer().render_batch(refs[:3], T[:3], big),
                 render_views_one_by_one(GeometricRenderer(), refs[:3], T[:3], big))


def test_renderers_without_a_batched_path_get_the_reference_loop(frames):
    refs, T = _views(frames)
    _assert_same(render_batch(NearestRenderer(), refs, T, K), render_views_one_by_one(NearestRenderer(), refs, T, K))


def test_batch_input_errors(frames):
    refs, T = _views(frames)
    renderer = GeometricRenderer()
    with pytest.raises(InvalidPoseError):
        renderer.render_batch(refs[:2], T[:3], K)
    with pytest.raises(EmptyMemoryError):
        renderer.render_batch([refs[0], []], T[:2], K)
    bad = T[:2].copy()
    bad[1, 0, 0] = np.nan
    with pytest.raises(InvalidPoseError):
        renderer.render_batch(refs[:2], bad, K)


def test_world_service_render_batch_matches_render_per_pose(frames):
    service = WorldService(renderer=GeometricRenderer())
    for frame in frames:
        service.ingest(frame)
    _, T = _views(frames)
    batch = service.render_batch(T, K)
    assert batch.result.rgb.shape[0] == len(T)
    for b in range(len(T)):
        single = service.render(T[b], K).result
        assert np.array_equal(batch.result.rgb[b], single.rgb[0])
        assert np.array_equal(batch.result.depth[b], single.depth[0])
        assert batch.result.reference_ids_per_view[b] == single.reference_ids


def test_world_service_render_batch_names_the_bad_pose(frames):
    service = WorldService(renderer=GeometricRenderer())
    with pytest.raises(EmptyMemoryError):
        service.render_batch(np.eye(4)[None], K)
    service.ingest(frames[0])
    poses = np.stack([np.eye(4)] * 4)
    poses[2, :3, :3] *= 2.0
    with pytest.raises(InvalidPoseError, match="pose 2"):
        service.render_batch(poses, K)
    with pytest.raises(InvalidPoseError, match="1..256"):
        service.render_batch(np.stack([np.eye(4)] * 257), K)


@pytest.mark.parametrize("threads", [1, 2])
def test_learned_batch_in_network_chunks_equals_per_view_renders_byte_for_byte(frames, threads):
    """The learned renderer warps and runs the network NETWORK_CHUNK views at a time (one at a
    time with one torch thread, where oneDNN's batch kernels round differently): 12 views
    (3 chunks, a different reference list each) give one render's bytes per view."""
    import torch

    from worldfm_ros.core.renderers import learned

    renderer = learned.LearnedRenderer()
    refs, T = _views(frames)
    assert len(T) > 2 * learned.NETWORK_CHUNK
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        batch = renderer.render_batch(refs, T, K)
        oracle = render_views_one_by_one(renderer, refs, T, K)
    finally:
        torch.set_num_threads(before)
    _assert_same(batch, oracle)
    assert batch.reference_ids == list(dict.fromkeys(i for ids in batch.reference_ids_per_view for i in ids))
