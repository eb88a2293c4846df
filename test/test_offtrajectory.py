"""The off-trajectory protocol (binning, split, JSON), the synthetic off-trajectory benchmark
(exact ground truth) and the off-trajectory training targets and model parts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from worldfm_ros.core.offtrajectory import (
    BIN_LABELS,
    bins_of,
    evaluate_offtrajectory,
    nearest_memory_camera,
    rotation_angle_deg,
    split_half,
    strided,
)
from worldfm_ros.core.synthetic.trajectory import base_pose


def _pose(x=0.0, y=0.0, z=0.0, yaw_deg=0.0) -> np.ndarray:
    return base_pose(x, y, math.radians(yaw_deg), z)


# ---------------------------------------------------------------------------- protocol
def test_bins_by_distance_and_angle_with_half_open_edges():
    assert bins_of(0.0, 0.0) == ["all", "0.0-0.1", "0-10deg"]
    assert bins_of(0.1, 10.0) == ["all", "0.1-0.2", "10-30deg"]  # lower edge inclusive
    assert bins_of(0.3999, 59.9) == ["all", "0.2-0.4", "30-60deg"]
    assert bins_of(0.4, 30.0) == ["all", "0.4-0.8", "30-60deg"]
    assert bins_of(0.8, 60.0) == ["all"]  # beyond the last bins: only in "all"
    assert BIN_LABELS == ("all", "0.0-0.1", "0.1-0.2", "0.2-0.4", "0.4-0.8", "0-10deg", "10-30deg", "30-60deg")


def test_nearest_memory_camera_distance_and_angle():
    memory = np.stack([_pose(0, 0), _pose(1, 0, yaw_deg=90), _pose(0, 2)])
    d, a, i = nearest_memory_camera(_pose(0.9, 0.1, 0.05, yaw_deg=60), memory)
    assert i == 1 and d == pytest.approx(math.sqrt(0.01 + 0.01 + 0.0025))
    assert a == pytest.approx(30.0)
    assert rotation_angle_deg(_pose(yaw_deg=-17), _pose(yaw_deg=0)) == pytest.approx(17.0)
    with pytest.raises(ValueError, match="memory_poses"):
        nearest_memory_camera(_pose(), np.zeros((0, 4, 4)))


def test_split_half_and_stride():
    frames = list(range(11))
    memory, targets = split_half(frames)
    assert memory == list(range(6)) and targets == list(range(6, 11))
    assert strided(targets, 2) == [6, 8, 10] and strided(targets, 5) == [6]
    with pytest.raises(ValueError, match="stride"):
        strided(targets, 0)
    with pytest.raises(ValueError, match="at least 2 frames"):
        split_half([1])


class _Flat:
    """A renderer that paints every view one grey and covers nothing (scores are exact)."""

    name = "flat"

    def __init__(self, value: int):
        self.value = value

    def render(self, references, T_world_cam, intrinsics):
        from worldfm_ros.core.renderers.base import RenderResult

        B, H, W = len(T_world_cam), intrinsics.height, intrinsics.width
        return RenderResult(np.full((B, H, W, 3), self.value, np.uint8), np.zeros((B, H, W), np.float32),
                            np.zeros((B, H, W), bool), np.zeros(B, np.float32), [])


def test_evaluate_bins_targets_and_writes_valid_json():
    from worldfm_ros.cli.eval import json_safe
    from worldfm_ros.core.camera import Intrinsics
    from worldfm_ros.core.synthetic.offtrajectory import SyntheticFrame

    K = Intrinsics(20.0, 20.0, 7.5, 5.5, 16, 12)

    def frame(T, value):
        return SyntheticFrame(np.full((12, 16, 3), value, np.uint8), np.ones((12, 16), np.float32), K, T, 0.0, 0)

    memory = [frame(_pose(x=0.05 * i), 100) for i in range(5)]  # along x, 0 ... 0.2 m
    targets = [frame(_pose(0.1, 0.05), 110), frame(_pose(0.2, 0.15, yaw_deg=20), 110),
               frame(_pose(0.0, 0.5, yaw_deg=45), 110), frame(_pose(0.1, 2.0), 110)]
    ingested = []
    run = evaluate_offtrajectory(memory, targets, {"flat": _Flat(100)}, ingest=ingested.append,
                                 retrieve=lambda T, K, k: [], keyframe_count=lambda: len(ingested), sheet_per_bin=1)
    assert len(ingested) == 5
    assert [round(r.distance, 3) for r in run.records] == [0.05, 0.15, 0.5, 2.0]
    data = json.loads(json.dumps(json_safe(run.as_json()), allow_nan=False))
    flat = data["flat"]
    assert list(flat) == list(BIN_LABELS)
    assert flat["all"]["views"] == 4 and flat["0.0-0.1"]["views"] == 1 and flat["0.1-0.2"]["views"] == 1
    assert flat["0.2-0.4"]["views"] == 0 and flat["0.2-0.4"]["psnr"] is None  # empty bin: null, not NaN
    assert flat["0.4-0.8"]["views"] == 1
    assert flat["0-10deg"]["views"] == 2 and flat["10-30deg"]["views"] == 1 and flat["30-60deg"]["views"] == 1
    # Every pixel is off by 10 levels: PSNR = 20 log10(255 / 10).
    assert flat["all"]["psnr"] == pytest.approx(20 * math.log10(25.5))
    assert flat["all"]["covered_psnr"] is None  # nothing covered: NaN in Python, null in JSON
    assert set(run.sheet_rows) == {"0.0-0.1", "0.1-0.2", "0.4-0.8"}


def test_json_safe_replaces_non_finite_numbers():
    from worldfm_ros.cli.eval import json_safe

    assert json_safe({"a": float("nan"), "b": [1.0, float("inf")], "c": "x", "d": 2}) == \
        {"a": None, "b": [1.0, None], "c": "x", "d": 2}


def test_eval_cli_split_half_writes_bins(shared_data, tmp_path):
    from worldfm_ros.cli.eval import main

    out = tmp_path / "off.json"
    rc = main(["--protocol", "offtrajectory", "--data", str(shared_data / "redkitchen_a"), "--format", "7scenes",
               "--split", "half", "--max-frames", "24", "--stride", "4", "--backend", "nearest", "--quiet",
               "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())  # strict JSON: NaN would not parse back as null
    assert list(data) == ["nearest"] and data["nearest"]["all"]["views"] == 3  # targets 12, 16, 20
    assert sum(data["nearest"][b]["views"] for b in BIN_LABELS[1:5]) <= 3


def test_eval_cli_refuses_mixed_arguments(capsys):
    from worldfm_ros.cli.eval import main

    with pytest.raises(SystemExit):
        main(["--protocol", "offtrajectory", "--data", "somewhere", "--format", "7scenes"])  # no --split half
    assert "--split half" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--protocol", "offtrajectory", "--data", "synthetic:x"])
    assert "integer seed" in capsys.readouterr().err


# ---------------------------------------------------------------------------- synthetic benchmark
def test_synthetic_targets_leave_the_path_with_exact_ground_truth():
    from worldfm_ros.core.camera import Intrinsics
    from worldfm_ros.core.synthetic.offtrajectory import TARGET_DISTANCE_BINS, offtrajectory_benchmark

    K = Intrinsics(40.0, 40.0, 23.5, 17.5, 48, 36)
    bench = offtrajectory_benchmark(5, n_targets=8, intrinsics=K, supersample=1, memory_step=4)
    again = offtrajectory_benchmark(5, n_targets=8, intrinsics=K, supersample=1, memory_step=4)
    assert len(bench.targets) == 8 and len(bench.memory) >= 10
    memory_poses = np.stack([f.T_world_cam for f in bench.memory])
    camera_height = bench.memory[0].T_world_cam[2, 3]
    for t, target in enumerate(bench.targets):
        # Seeded, and the ground truth is the world rendered exactly at the target pose.
        assert np.array_equal(target.T_world_cam, again.targets[t].T_world_cam)
        colour, depth = bench.world.render(target.T_world_cam, K)
        assert np.array_equal(colour, target.colour) and np.array_equal(depth, target.depth)
        # In the intended distance bin, in free space, level camera within +-0.2 m of the path's height.
        d, angle, _ = nearest_memory_camera(target.T_world_cam, memory_poses)
        lo, hi = TARGET_DISTANCE_BINS[t % 4]
        assert lo <= d < hi, (t, d)
        assert bench.world.is_free(target.T_world_cam[None, :2, 3], margin=0.25)[0]
        assert abs(target.T_world_cam[2, 3] - camera_height) <= 0.2 + 1e-9
        assert abs(target.T_world_cam[2, 2]) < 1e-9  # optical axis stays horizontal (yaw only)
        assert target.kind in ("turn", "lateral", "unrecorded")
    assert {t.kind for t in bench.targets[:1]} == {"turn"}  # the 0-0.1 m bin: turns in place


def test_training_scene_offtrack_targets_stay_out_of_memory():
    from worldfm_ros.learned.data import random_sample, synthetic_scene

    plain = synthetic_scene(1_000_003, width=48, height=36, n_frames=10, sensor_strength=0.0, supersample=1)
    scene = synthetic_scene(1_000_003, width=48, height=36, n_frames=10, sensor_strength=0.0, supersample=1,
                            offtrack=4)
    assert len(scene.offtrack) >= 1 and scene.offtrack <= scene.held_out
    # The path frames are the same bytes with or without off-trajectory targets.
    assert all(np.array_equal(a.colour, b.colour) for a, b in zip(plain.frames, scene.frames))
    stored = {kf.extras["index"] for kf in scene.memories[0].keyframes()}
    assert not stored & scene.offtrack
    i = min(scene.offtrack)
    target = scene.frames[i]
    # References are exactly the node's retrieval at that pose.
    expected = scene.memories[0].retrieve(target.T_world_cam, target.intrinsics, k=4)
    assert [r.id for r in scene.references(i, 4)] == [r.id for r in expected]
    sample = random_sample(scene, np.random.default_rng(0), 4, offtrack_fraction=1.0)
    assert sample.target.shape == (1, 3, 36, 48)


def test_pushpull_fill_continues_references_into_holes():
    from worldfm_ros.learned.model import FrameModel, ModelConfig, _push_pull
    from worldfm_ros.learned.training import with_pushpull_fill

    colour = torch.zeros(1, 3, 8, 8)
    colour[:, 0] = 0.8  # red everywhere it is known
    weight = torch.zeros(1, 1, 8, 8)
    weight[..., :, :3] = 1.0  # known only on the left
    filled = _push_pull(colour, weight)
    torch.testing.assert_close(filled[:, 0], torch.full((1, 8, 8), 0.8))
    torch.testing.assert_close(filled[:, 1:], torch.zeros(1, 2, 8, 8))
    assert float(_push_pull(colour, torch.zeros_like(weight)).mean()) == pytest.approx(0.5)  # nothing known
    torch.manual_seed(0)
    old = FrameModel(ModelConfig(k=2, ref_channels=4, widths=(4, 4, 4, 4), refine_channels=0))
    new = with_pushpull_fill(old)
    assert new.config.pushpull_fill and not old.config.pushpull_fill
    assert all(torch.equal(a, b) for (n, a), (_, b) in zip(old.state_dict().items(), new.state_dict().items())
               if not n.startswith("fill_head"))


# ---------------------------------------------------------------------------- regression
def _turned_views():
    """A small exact memory and two views 2 cm beside memory frames, turned 17 deg either way."""
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
    views = []
    for turn in (17.0, -17.0):
        T = target_pose(loop.T_world_base[40], loop.camera_to_base, left=0.02, turn_deg=turn)
        views.append((T, world.render(T, K, supersample=2)[0]))
    return memory, K, views


def _learned_minus_geometric(model_path, check_determinism: bool = False) -> list[float]:
    from worldfm_ros.core.evaluation import psnr
    from worldfm_ros.core.renderers.geometric import GeometricRenderer
    from worldfm_ros.core.renderers.learned import LearnedRenderer

    torch.set_num_threads(1)
    memory, K, views = _turned_views()
    learned, geometric = LearnedRenderer(model_path=model_path), GeometricRenderer()
    margins = []
    for T, truth in views:
        refs = memory.retrieve(T, K, k=learned.references_per_view)
        a = learned.render(refs, T[None], K).rgb[0]
        if check_determinism:  # same pose, same memory: same bytes
            assert np.array_equal(a, LearnedRenderer(model_path=model_path).render(refs, T[None], K).rgb[0])
        b = geometric.render(memory.retrieve(T, K, k=4), T[None], K).rgb[0]
        margins.append(psnr(a, truth) - psnr(b, truth))
    return margins


@pytest.mark.xfail(strict=True, reason=(
    "documents today's failure (issue 12): learned_v2 at 2 cm from a memory frame, turned 17 deg, "
    "scores 16.98 / 30.49 dB against the geometric renderer's 19.36 / 32.76 dB (grey hole fill, "
    "no off-trajectory training); measured with this test's memory and views"))
def test_regression_v2_turned_view_at_least_geometric():
    from worldfm_ros.core.renderers.learned import DEFAULT_MODEL_PATH

    assert min(_learned_minus_geometric(DEFAULT_MODEL_PATH.with_name("learned_v2.pt"))) >= 0.0


def test_regression_v3_turned_view_at_least_geometric():
    """The off-trajectory model (push-pull hole fill, trained on off-trajectory targets) on the
    views that learned_v2 fails (measured: 19.50 / 32.78 dB against 19.36 / 32.76), rendering
    the same bytes twice."""
    from worldfm_ros.core.renderers.learned import DEFAULT_MODEL_PATH

    margins = _learned_minus_geometric(DEFAULT_MODEL_PATH.with_name("learned_v3.pt"), check_determinism=True)
    assert min(margins) >= 0.0, margins


@pytest.mark.xfail(strict=True, reason=(
    "documents the price of speed: learned_v3_k4 (v3's weights with 4 reference slots, 30 % faster) "
    "loses the -17 deg view by 0.38 dB to the geometric renderer (+0.01 dB on the +17 deg one); "
    "measured with this test's memory and views"))
def test_regression_v3_k4_turned_view_at_least_geometric():
    from worldfm_ros.core.renderers.learned import DEFAULT_MODEL_PATH

    assert min(_learned_minus_geometric(DEFAULT_MODEL_PATH.with_name("learned_v3_k4.pt"))) >= 0.0


def test_v3_k4_has_four_slots_and_renders_the_same_bytes_twice():
    from worldfm_ros.core.renderers.learned import DEFAULT_MODEL_PATH, LearnedRenderer

    torch.set_num_threads(1)
    memory, K, views = _turned_views()
    path = DEFAULT_MODEL_PATH.with_name("learned_v3_k4.pt")
    renderer = LearnedRenderer(model_path=path)
    assert renderer.references_per_view == 4
    T = views[0][0]
    refs = memory.retrieve(T, K, k=renderer.references_per_view)
    first = renderer.render(refs, T[None], K)
    assert len(first.reference_ids) == 4
    assert np.array_equal(first.rgb, LearnedRenderer(model_path=path).render(refs, T[None], K).rgb)
