"""The learned renderer: warping against exact synthetic ground truth, the network's shapes and
starting point, determinism, checkpoints (round trip and every way loading must fail), a few
optimisation steps, the training CLI (including resuming) and the shipped model."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import EmptyMemoryError, ModelLoadError
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.learned.model import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    FrameModel,
    ModelConfig,
    load_checkpoint,
    parameter_count,
    save_checkpoint,
)
from worldfm_ros.learned.sensor import SensorModel
from worldfm_ros.learned.training import blend_baseline, loss_fn, ssim_map
from worldfm_ros.learned.warp import WarpBundle, fill_depth, target_depth, warp_references

SMALL = Intrinsics(fx=80.0, fy=80.0, cx=39.5, cy=29.5, width=80, height=60)


@pytest.fixture(scope="module")
def sequence():
    """12 exact, anti-aliased frames (80x60) along a loop through synthetic world 3."""
    from worldfm_ros.core.synthetic.generate import generate_world
    from worldfm_ros.core.synthetic.trajectory import plan_loop

    world = generate_world(3)
    traj = plan_loop(world, 3, 12)
    frames = []
    for i, T in enumerate(traj.T_world_cam):
        colour, depth = world.render(T, SMALL, supersample=3)
        frames.append(Keyframe(colour, depth, SMALL, T, i / 15.0, id=i))
    return frames


@pytest.fixture()
def model_file(tmp_path):
    torch.manual_seed(0)
    model = FrameModel(ModelConfig(k=2, ref_channels=8, widths=(8, 8, 8, 8)))
    with torch.no_grad():  # not the zero-initialised heads: outputs must depend on every weight
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, extra={"step": 7})
    return path


def _psnr(a, b, mask=None):
    d = a.astype(np.float64) / 255 - b.astype(np.float64) / 255
    if mask is not None:
        d = d[mask]
    return 10 * math.log10(1.0 / np.mean(d * d))


# ---------------------------------------------------------------------------- warping
def test_warp_of_the_target_itself_reproduces_it(sequence):
    frame = sequence[4]
    b = warp_references([frame], frame.T_world_cam, SMALL, k=2)
    assert b.colour.shape == (1, 2, 3, 60, 80) and b.geometry.shape == (1, 2, 11, 15, 20) and b.target.shape == (1, 6, 15, 20)
    assert b.phase.shape == (1, 2, 1, 60, 80) and float(b.phase[0, 0].max()) < 1e-6  # on the pixel centres
    valid = b.valid[0, 0, 0].numpy() > 0
    assert valid.mean() > 0.99 and b.valid[0, 1].sum() == 0  # empty second slot
    rgb = (b.colour[0, 0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert np.abs(rgb[valid].astype(int) - frame.colour[valid].astype(int)).max() <= 1
    np.testing.assert_allclose(b.depth[0, 0].numpy(), frame.depth, rtol=1e-5)
    # Same camera: zero angle, zero depth disagreement, zero moment.
    assert float(b.geometry[0, 0, :2].abs().max()) < 1e-2 and float(b.geometry[0, 0, 6:].abs().max()) < 1e-3


def test_warp_from_neighbours_matches_exact_render(sequence):
    target = sequence[5]
    refs = [sequence[3], sequence[4], sequence[6], sequence[7]]
    depth = target_depth(refs, target.T_world_cam, SMALL).numpy()
    known = (depth > 0) & (target.depth > 0)
    assert known.mean() > 0.9
    rel = np.abs(depth[known] - target.depth[known]) / target.depth[known]
    assert np.median(rel) < 0.01
    b = warp_references(refs, target.T_world_cam, SMALL, k=4)
    blend = (blend_baseline(b)[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    covered = b.covered[0].numpy()
    assert covered.mean() > 0.9
    assert _psnr(blend, target.colour, covered) > 22.0


def test_fill_depth_keeps_measurements_and_interpolates_holes():
    depth = torch.full((30, 41), 2.0)
    depth[:, 20:] = 4.0
    depth[10:14, 5:9] = 0.0  # a hole inside the 2 m plane
    depth[0, :] = 0.0  # a hole spanning both planes
    filled = fill_depth(depth)
    known = depth > 0
    assert torch.equal(filled[known], depth[known])
    np.testing.assert_allclose(filled[10:14, 5:9].numpy(), 2.0, rtol=1e-5)
    assert float(filled[0, :].min()) >= 2.0 - 1e-5 and float(filled[0, :].max()) <= 4.0 + 1e-5
    assert torch.equal(fill_depth(torch.zeros(5, 6)), torch.zeros(5, 6))


def test_more_references_than_slots_keeps_the_closest(sequence):
    target = sequence[5]
    b_all = warp_references(sequence[:5] + sequence[6:], target.T_world_cam, SMALL, k=2)
    b_two = warp_references([sequence[4], sequence[6]], target.T_world_cam, SMALL, k=2)
    assert torch.equal(b_all.colour, b_two.colour)


# ---------------------------------------------------------------------------- network
def test_model_shapes_odd_sizes_and_range():
    torch.manual_seed(1)
    model = FrameModel(ModelConfig(k=3)).eval()
    valid = (torch.rand(2, 3, 1, 37, 51) > 0.3).float()
    b = WarpBundle(torch.rand(2, 3, 3, 37, 51), valid, (1 - valid) * (torch.rand(2, 3, 1, 37, 51) > 0.5),
                   torch.randn(2, 3, 11, 10, 13), torch.rand(2, 6, 10, 13), torch.rand(2, 1, 37, 51),
                   0.5 * torch.rand(2, 3, 1, 37, 51))
    with torch.no_grad():
        out = model(b)
    assert out.shape == (2, 3, 37, 51) and float(out.min()) >= 0 and float(out.max()) <= 1
    with pytest.raises(ValueError):
        FrameModel(ModelConfig(k=2))(b)
    assert parameter_count(FrameModel()) < 3_000_000


def test_fresh_model_is_the_phase_weighted_blend(sequence):
    target = sequence[5]
    b = warp_references([sequence[9]], target.T_world_cam, SMALL, k=2)
    with torch.no_grad():
        out = FrameModel(ModelConfig(k=2))(b)
    covered = b.covered[0]
    assert 0.2 < float(covered.float().mean()) < 0.98
    diff = (out - blend_baseline(b))[0].abs().amax(0)
    assert float(diff[covered].max()) < 3e-3  # one reference: the phase prior has nothing to choose
    assert float((out[0, :, ~covered] - 0.5).abs().max()) < 0.01  # holes: grey fill
    # Two references: weights exp(-10 phase), i.e. the sample nearer a pixel centre counts more.
    b = warp_references([sequence[4], sequence[6]], target.T_world_cam, SMALL, k=2)
    with torch.no_grad():
        out = FrameModel(ModelConfig(k=2))(b)
    w = (b.valid + b.plausible) * torch.exp(-10.0 * b.phase)
    expected = (w * b.colour).sum(1) / w.sum(1).clamp_min(1e-6)
    both = (b.valid.sum(1)[:, 0] == 2)[0]
    assert float(both.float().mean()) > 0.5
    assert float((out - expected)[0].abs().amax(0)[both].max()) < 3e-3
    assert float((out - blend_baseline(b))[0].abs().amax(0)[both].max()) > 0.01  # not the plain mean


def test_cpu_kernels_agree_with_the_torch_path(sequence, monkeypatch):
    import worldfm_ros.learned.warp as warp

    target = sequence[5]
    refs = sequence[1:5] + sequence[6:10]
    fast = warp_references(refs, target.T_world_cam, SMALL, k=8)
    monkeypatch.setattr(warp, "_FORCE_TORCH", True)
    slow = warp_references(refs, target.T_world_cam, SMALL, k=8)
    for name in ("valid", "plausible"):  # decisions: identical but for float ties
        assert float((getattr(fast, name) != getattr(slow, name)).float().mean()) < 1e-3
    for name, tol in (("colour", 1 / 255 + 1e-6), ("depth", 1e-3), ("phase", 1e-2), ("geometry", 1e-2), ("target", 1e-2)):
        diff = (getattr(fast, name) - getattr(slow, name)).abs()
        assert float((diff > tol).float().mean()) < 1e-3, name
    assert float(fast.valid.sum()) > 0.5 * fast.valid.numel()


def test_empty_slots_of_the_cpu_warp_are_zero_every_time(sequence):
    """Fewer references than slots: the slots past them are all zero (the CPU warp leaves
    the others' arrays uninitialised until the kernels write them), on every call."""
    target = sequence[5]
    refs = sequence[3:5] + sequence[6:8]
    for _ in range(2):  # the second call gets recycled (dirty) memory from the first
        bundle = warp_references(refs, target.T_world_cam, SMALL, k=8)
        for name in ("colour", "valid", "plausible", "phase", "geometry"):
            assert float(getattr(bundle, name)[:, 4:].abs().sum()) == 0.0, name
        for name in ("colour", "valid", "geometry"):  # the used slots are written
            assert float(getattr(bundle, name)[:, :4].abs().sum()) > 0.0, name


def test_crop_keeps_the_coarse_maps_aligned(sequence):
    b = warp_references(sequence[4:7:2], sequence[5].T_world_cam, SMALL, k=2)
    c = b.crop(8, 12, 32, 40)
    assert c.colour.shape[-2:] == (32, 40) and c.geometry.shape[-2:] == (8, 10)
    assert torch.equal(c.geometry, b.geometry[..., 2:10, 3:13])
    with pytest.raises(ValueError):
        b.crop(2, 0, 32, 40)


def test_ssim_map_matches_scikit_image():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.random((20, 24, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    ours = float(ssim_map(torch.tensor(a).permute(2, 0, 1)[None], torch.tensor(b).permute(2, 0, 1)[None]).mean())
    ref = structural_similarity(a, b, channel_axis=2, data_range=1.0)
    assert abs(ours - ref) < 1e-6


def test_a_few_steps_reduce_the_loss(sequence):
    torch.manual_seed(0)
    target = sequence[5]
    b = warp_references([sequence[9]], target.T_world_cam, SMALL, k=2)  # 10 % holes to fill
    truth = torch.from_numpy(target.colour).permute(2, 0, 1).float()[None] / 255
    holes = ~b.covered[0]
    model = FrameModel(ModelConfig(k=2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses, hole_errors = [], []
    for _ in range(30):
        out = model(b)
        loss = loss_fn(out, truth)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        hole_errors.append(float((out.detach() - truth).abs()[0][:, holes].mean()))
    assert losses[-1] < 0.93 * losses[0]
    assert hole_errors[-1] < 0.7 * hole_errors[0]


def test_log_mse_loss_weighs_each_sample_by_its_relative_error():
    torch.manual_seed(0)
    truth = torch.rand(2, 3, 16, 16)
    noise = torch.randn(2, 3, 16, 16)
    scale = torch.tensor([0.02, 0.2]).view(2, 1, 1, 1)  # one sample ten times worse than the other
    base = loss_fn(truth + scale * noise, truth, "log-mse", ssim_weight=0.0)
    for i in range(2):  # doubling either sample's error costs the same: 0.02 ln(4) / 2
        worse = scale.clone()
        worse[i] *= 2
        delta = float(loss_fn(truth + worse * noise, truth, "log-mse", ssim_weight=0.0) - base)
        assert abs(delta - 0.01 * math.log(4)) < 2e-3
    plain = [float(loss_fn(truth + s * noise, truth, "mse", 0.0)) for s in (scale, scale * torch.tensor([2, 1]).view(2, 1, 1, 1))]
    assert plain[1] - plain[0] < 0.05 * float(loss_fn(truth + scale * noise, truth, "mse", 0.0))  # plain MSE: not so
    with pytest.raises(ValueError, match="unknown loss"):
        loss_fn(truth, truth, "l1")


# ---------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(model_file, sequence):
    model, payload = load_checkpoint(model_file)
    assert payload["format"] == CHECKPOINT_FORMAT and payload["extra"]["step"] == 7 and model.k == 2
    again, _ = load_checkpoint(model_file)
    b = warp_references(sequence[4:7:2], sequence[5].T_world_cam, SMALL, k=2)
    with torch.no_grad():
        assert torch.equal(model(b), again(b))
    fresh = FrameModel(ModelConfig(k=2, ref_channels=8, widths=(8, 8, 8, 8))).eval()
    with torch.no_grad():
        assert not torch.equal(model(b), fresh(b))


def _expect_load_error(path, fragment):
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and fragment in str(info.value)
    assert info.value.value == str(path)


def test_global_context_model_round_trips_and_old_checkpoints_read_without_it(model_file, tmp_path, sequence):
    torch.manual_seed(1)
    model = FrameModel(ModelConfig(k=2, ref_channels=8, widths=(8, 8, 8, 8), global_context=True,
                                   misalignment_input=True))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_checkpoint(tmp_path / "global.pt", model)
    again, _ = load_checkpoint(tmp_path / "global.pt")
    assert again.config.global_context and again.unet.global_mix is not None and again.config.misalignment_input
    b = warp_references(sequence[4:7:2], sequence[5].T_world_cam, SMALL, k=2)
    with torch.no_grad():
        assert torch.equal(model.eval()(b), again(b))
    payload = torch.load(model_file, weights_only=True)
    del payload["config"]["global_context"], payload["config"]["misalignment_input"]  # as written before the options
    torch.save(payload, tmp_path / "old.pt")
    old = load_checkpoint(tmp_path / "old.pt")[0].config
    assert not old.global_context and not old.misalignment_input


def test_view_misalignment_grows_with_the_shift_between_references():
    from worldfm_ros.learned.model import view_misalignment

    torch.manual_seed(0)
    texture = F.interpolate(torch.rand(1, 3, 20, 24), size=(80, 96), mode="bicubic", align_corners=False)
    found = []
    for shift in (0, 1, 2):
        a, b = texture[..., 8:72, 8:88], texture[..., 8:72, 8 + shift:88 + shift]
        mean = (a + b) / 2
        spread = 4.0 * ((a - mean).abs().sum(1, keepdim=True) + (b - mean).abs().sum(1, keepdim=True)) / 2
        found.append(float(view_misalignment(mean, spread, torch.ones(1, 1, 64, 80))))
    assert found[0] == 0.0 and 0.2 < found[1] < found[2] < 2.0, found


def test_missing_corrupt_foreign_and_newer_checkpoints_fail_clearly(model_file, tmp_path):
    _expect_load_error(tmp_path / "absent.pt", "does not exist")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(model_file.read_bytes()[:200])
    _expect_load_error(truncated, "not a readable checkpoint")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    _expect_load_error(garbage, "not a readable checkpoint")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}, "epoch": 3}, foreign)
    _expect_load_error(foreign, "not a worldfm_ros frame-model checkpoint")
    payload = torch.load(model_file, weights_only=True)
    payload["version"] = 99
    newer = tmp_path / "newer.pt"
    torch.save(payload, newer)
    _expect_load_error(newer, "version 99")
    payload["version"] = 1  # the first model (four slots, bilinear warps): not readable any more
    older = tmp_path / "older.pt"
    torch.save(payload, older)
    _expect_load_error(older, "version 1; this code reads version 2")
    payload["version"] = CHECKPOINT_VERSION
    payload["state_dict"] = {k: v[..., :1] if v.dim() else v for k, v in payload["state_dict"].items()}
    mismatched = tmp_path / "mismatched.pt"
    torch.save(payload, mismatched)
    _expect_load_error(mismatched, "does not match")


# ---------------------------------------------------------------------------- renderer
def test_learned_renderer_is_deterministic_and_reports_coverage(model_file, sequence):
    from worldfm_ros.core.renderers import make_renderer

    renderer = make_renderer("learned", "cpu", model_path=str(model_file))
    assert renderer.name == "learned"
    refs = sequence[2:5] + sequence[6:9]
    poses = np.stack([sequence[5].T_world_cam, sequence[9].T_world_cam])
    r1 = renderer.render(refs, poses, SMALL)
    r2 = make_renderer("learned", "cpu", model_path=str(model_file)).render(refs, poses, SMALL)
    assert r1.rgb.shape == (2, 60, 80, 3) and r1.rgb.dtype == np.uint8
    assert r1.depth.shape == (2, 60, 80) and r1.covered.dtype == bool
    assert r1.rgb.tobytes() == r2.rgb.tobytes() and r1.depth.tobytes() == r2.depth.tobytes()
    np.testing.assert_allclose(r1.coverage, r1.covered.reshape(2, -1).mean(1))
    assert r1.coverage[0] > 0.9
    assert set(r1.reference_ids) <= {f.id for f in refs}
    # Depth is the exact surface where covered, 0 elsewhere.
    d, truth = r1.depth[0], sequence[5].depth
    assert np.all(d[~r1.covered[0]] == 0)
    assert np.median(np.abs(d[r1.covered[0]] - truth[r1.covered[0]]) / truth[r1.covered[0]]) < 0.01
    with pytest.raises(EmptyMemoryError):
        renderer.render([], poses, SMALL)


def test_missing_model_raises_model_load_error_naming_the_file(tmp_path):
    from worldfm_ros.core.renderers.learned import LearnedRenderer

    with pytest.raises(ModelLoadError, match="nope.pt"):
        LearnedRenderer(model_path=str(tmp_path / "nope.pt"))


def test_shipped_checkpoint_loads_when_present():
    from worldfm_ros.core.renderers.learned import DEFAULT_MODEL_PATH, LearnedRenderer

    if not DEFAULT_MODEL_PATH.exists():
        pytest.skip("no shipped checkpoint in this checkout")
    assert DEFAULT_MODEL_PATH.stat().st_size <= 20 * 1024 * 1024
    renderer = LearnedRenderer()
    assert renderer.model_path == DEFAULT_MODEL_PATH and parameter_count(renderer.model) < 3_000_000


# ---------------------------------------------------------------------------- sensor model
def test_sensor_model_strength_zero_is_exact_and_holes_follow_the_rate(sequence):
    rng = np.random.default_rng(0)
    frame = sequence[0]
    exact = SensorModel.draw(rng, 0.0)
    assert np.array_equal(exact.colour(frame.colour, rng), frame.colour)
    np.testing.assert_array_equal(exact.depth(frame.depth, rng), frame.depth)
    noisy = SensorModel(hole_rate=0.1, edge_dropout=0.0, depth_noise=0.0)
    d = noisy.depth(frame.depth, rng)
    lost = ((d == 0) & (frame.depth > 0)).mean()
    assert 0.07 < lost < 0.13


# ---------------------------------------------------------------------------- CLI
def test_train_cli_on_a_world_file_resumes_and_logs(tmp_path, sequence):
    from worldfm_ros.cli.train import main
    from worldfm_ros.core.world_file import write_world

    world = tmp_path / "site.world"
    frames = [Keyframe(f.colour, f.depth, f.intrinsics, f.T_world_cam, f.stamp, id=i) for i, f in enumerate(sequence)]
    write_world(world, frames)
    out = tmp_path / "run"
    args = ["--data", str(world), "--format", "world", "--out", str(out), "--batch", "2",
            "--crop", "32", "48", "--val-every", "2", "--ckpt-every", "1", "--quiet", "--threads", "1",
            "--k", "2", "--ref-channels", "8", "--widths", "8", "8", "8", "8", "--loss", "log-mse", "--ssim-weight", "0"]
    assert main(args + ["--steps", "2"]) == 0
    assert (out / "last.pt").exists() and (out / "model.pt").exists() and (out / "learning_curve.png").exists()
    assert main(args + ["--steps", "3", "--export", str(tmp_path / "exported.pt")]) == 0
    model, payload = load_checkpoint(tmp_path / "exported.pt")
    assert payload["extra"]["step"] == 3 and "optimizer" not in payload
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [r["step"] for r in rows if r["val_psnr"]] == ["0", "2", "3"]
    assert all(math.isfinite(float(r["val_psnr"])) for r in rows if r["val_psnr"])
    assert all(float(r["loss"]) < 0 for r in rows if r["loss"])  # log-mse without SSIM: 0.02 ln(MSE) < 0


# ---------------------------------------------------------------------------- training data
def test_synthetic_scene_is_seeded_and_exact_without_sensor():
    from worldfm_ros.core.synthetic.generate import generate_world
    from worldfm_ros.learned.data import synthetic_scene

    a = synthetic_scene(1_000_003, width=48, height=36, n_frames=10, sensor_strength=0.0, supersample=1)
    b = synthetic_scene(1_000_003, width=48, height=36, n_frames=10, sensor_strength=0.0, supersample=1)
    assert len(a.frames) == 10 and len(a.memories) == 2 and len(a.memories[0]) >= 1
    assert all(np.array_equal(x.colour, y.colour) and np.array_equal(x.T_world_cam, y.T_world_cam)
               for x, y in zip(a.frames, b.frames))
    world = generate_world(1_000_003)
    f = a.frames[3]
    colour, depth = world.render(f.T_world_cam, f.intrinsics)
    assert np.array_equal(colour, f.colour) and np.array_equal(depth, f.depth)
    noisy = synthetic_scene(1_000_003, width=48, height=36, n_frames=10, sensor_strength=1.0, supersample=1)
    assert not all(np.array_equal(x.colour, y.colour) for x, y in zip(a.frames, noisy.frames))
    # Leave-one-out: a frame's references never include itself.
    refs = a.references(3, k=4)
    assert refs and all(r.extras["index"] != 3 for r in refs)


def test_tap_convolution_equals_conv2d():
    from worldfm_ros.learned.model import _TapConv3x3

    torch.manual_seed(0)
    tap = _TapConv3x3(5, 1)
    ref = torch.nn.Conv2d(5, 1, 3, padding=1)
    ref.load_state_dict(tap.state_dict())
    x = torch.randn(2, 5, 9, 13)
    torch.testing.assert_close(tap(x), ref(x), rtol=1e-5, atol=1e-5)


def test_learned_backend_gets_as_many_references_as_its_model_has_slots(model_file, sequence):
    from worldfm_ros.core.memory import MemoryConfig
    from worldfm_ros.core.renderers import make_renderer
    from worldfm_ros.core.world_service import WorldService, WorldServiceConfig

    renderer = make_renderer("learned", "cpu", model_path=str(model_file))  # two slots
    config = WorldServiceConfig(backend="learned", memory=MemoryConfig(insertion="pose", retrieval_k=1),
                                keyframe_width=80, keyframe_height=60)
    world = WorldService(config, renderer=renderer)
    for f in sequence[:5] + sequence[6:]:
        world.ingest(Keyframe(f.colour, f.depth, f.intrinsics, f.T_world_cam, f.stamp))
    assert len(world) >= 3
    assert world.references_per_view() == 2
    assert world.references_per_view(make_renderer("geometric", "cpu")) == 1
    out = world.render(sequence[5].T_world_cam, SMALL)
    assert len(out.result.reference_ids) == 2


def test_cpu_warp_gives_the_same_bytes_on_one_or_two_threads(sequence):
    target = sequence[5]
    refs = sequence[1:5] + sequence[6:10]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = warp_references(refs, target.T_world_cam, SMALL, k=8)
        torch.set_num_threads(2)
        two = warp_references(refs, target.T_world_cam, SMALL, k=8)
    finally:
        torch.set_num_threads(before)
    for name in ("colour", "valid", "plausible", "geometry", "target", "depth", "phase"):
        assert torch.equal(getattr(one, name), getattr(two, name)), name


def test_exact_fraction_one_gives_exact_scenes():
    from worldfm_ros.core.synthetic.generate import generate_world
    from worldfm_ros.learned.data import synthetic_scene

    scene = synthetic_scene(1_000_004, width=48, height=36, n_frames=6, supersample=1, exact_fraction=1.0)
    world = generate_world(1_000_004)
    f = scene.frames[2]
    colour, depth = world.render(f.T_world_cam, f.intrinsics)
    assert np.array_equal(colour, f.colour) and np.array_equal(depth, f.depth)
