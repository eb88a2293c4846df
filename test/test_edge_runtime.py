"""Edge deployment: the ONNX export of the frame model, the ONNX Runtime / TensorRT runtimes
of the learned renderer, the batched learned render, and every way a deployment file can be
wrong (each must fail with a message naming the file, or fall back with a warning).

GPU tests (CUDA renderers, ONNX Runtime's CUDA provider, TensorRT) are skipped with the
reason where the machine has no GPU or the package; scripts/device_check.sh runs them."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import ModelLoadError
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.pose import interpolate_pose
from worldfm_ros.core.renderers.learned import DEFAULT_MODEL_PATH, LearnedRenderer
from worldfm_ros.learned import onnx_export
from worldfm_ros.learned.model import FrameModel, ModelConfig, load_checkpoint, save_checkpoint
from worldfm_ros.learned.runtime import OnnxRuntime, make_runtime

SMALL = Intrinsics(fx=64.0, fy=64.0, cx=39.5, cy=29.5, width=80, height=60)

try:
    import onnxruntime

    ORT_GPU = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
except ImportError:  # pragma: no cover - onnxruntime is a runtime dependency
    ORT_GPU = False
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA GPU on this machine (scripts/device_check.sh runs this)")


@pytest.fixture(scope="module")
def frames():
    """14 exact frames (80x60) along a loop through synthetic world 3."""
    from worldfm_ros.core.synthetic.generate import generate_world
    from worldfm_ros.core.synthetic.trajectory import plan_loop

    world = generate_world(3)
    out = []
    for i, T in enumerate(plan_loop(world, 3, 14).T_world_cam):
        colour, depth = world.render(T, SMALL)
        out.append(Keyframe(colour, depth, SMALL, T, i / 15.0, id=i))
    return out


@pytest.fixture(scope="module")
def targets(frames):
    return np.stack([interpolate_pose(frames[i].T_world_cam, frames[i + 1].T_world_cam, 0.5) for i in (0, 4, 8, 11)])


@pytest.fixture(scope="module")
def shipped():
    model, _ = load_checkpoint(DEFAULT_MODEL_PATH)
    return model


@pytest.fixture(scope="module")
def shipped_onnx(shipped, tmp_path_factory):
    """The shipped checkpoint exported at 80x60 (the graph takes any size)."""
    path = tmp_path_factory.mktemp("onnx") / "learned.onnx"
    return onnx_export.export_onnx(shipped, path, height=60, width=80, checkpoint_path=DEFAULT_MODEL_PATH)


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory):
    """A small random model (2 slots): another checkpoint with another architecture."""
    torch.manual_seed(0)
    model = FrameModel(ModelConfig(k=2, ref_channels=8, widths=(8, 8, 8, 8)))
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    save_checkpoint(path, model)
    return path


def _within_one_level(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels whose channels all differ by at most one 8-bit level."""
    return float((np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1) <= 1).mean())


# ---------------------------------------------------------------------------- export
def test_export_is_valid_onnx_with_dynamic_batch_and_size_and_the_model_metadata(shipped_onnx, shipped):
    proto = onnx.load(str(shipped_onnx))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    inputs = onnx_export.graph_inputs(shipped_onnx)
    assert inputs["colour"] == ["batch", shipped.k, 3, "height", "width"]
    assert inputs["geometry"][:2] == ["batch", shipped.k] and inputs["geometry"][-2:] == ["coarse_height", "coarse_width"]
    assert "depth" not in inputs  # the model does not read it
    meta = onnx_export.read_metadata(shipped_onnx)
    assert meta["checkpoint_sha256"] == onnx_export.file_sha256(DEFAULT_MODEL_PATH)
    assert json.loads(meta["model_config"])["k"] == shipped.k


@pytest.mark.parametrize("batch, height, width", [(3, 60, 80), (1, 37, 53)])
def test_onnxruntime_matches_torch_on_warped_views_at_any_batch_and_size(shipped_onnx, shipped, batch, height, width):
    result = onnx_export.compare_with_torch(shipped_onnx, shipped,
                                            onnx_export.example_bundle(shipped.k, height, width, batch))
    assert result["shape"] == [batch, 3, height, width]
    assert result["max_abs_diff"] < 1e-4
    assert result["pixels_within_1_255"] == 1.0


# ---------------------------------------------------------------------------- renderer
def test_render_batch_equals_per_view_renders_and_onnxruntime_equals_torch(frames, targets, shipped_onnx):
    torch_renderer = LearnedRenderer()
    ort_renderer = LearnedRenderer(runtime="onnxruntime", onnx_path=str(shipped_onnx), fallback=False)
    assert ort_renderer.runtime.name == "onnxruntime" and ort_renderer.runtime_warnings == []
    refs = [frames[max(0, i - 4):i + 5] for i in (0, 4, 8, 11)]
    single = [torch_renderer.render(r, T[None], SMALL) for r, T in zip(refs, targets)]
    batch = torch_renderer.render_batch(refs, targets, SMALL)
    for b, one in enumerate(single):
        np.testing.assert_array_equal(batch.rgb[b], one.rgb[0])
        np.testing.assert_array_equal(batch.depth[b], one.depth[0])
        np.testing.assert_array_equal(batch.covered[b], one.covered[0])
        assert batch.reference_ids_per_view[b] == one.reference_ids
    assert batch.coverage.shape == (4,) and (batch.coverage > 0.5).all()
    ort_batch = ort_renderer.render_batch(refs, targets, SMALL)
    assert _within_one_level(ort_batch.rgb, batch.rgb) >= 0.999
    np.testing.assert_array_equal(ort_batch.depth, batch.depth)
    # ONNX Runtime on the CPU runs a batch view by view: the same bytes as single renders
    for b, (r, T) in enumerate(zip(refs, targets)):
        np.testing.assert_array_equal(ort_batch.rgb[b], ort_renderer.render(r, T[None], SMALL).rgb[0])


def test_io_binding_path_gives_the_plain_path_s_output(shipped, shipped_onnx):
    """The copy-free path CUDA uses, run on CPU memory: same values as the plain one."""
    runtime = OnnxRuntime(shipped, DEFAULT_MODEL_PATH, onnx_path=shipped_onnx)
    bundle = onnx_export.example_bundle(shipped.k, 44, 60, 2)
    bound = runtime._run_bound(bundle, torch.device("cpu"))
    torch.testing.assert_close(bound, runtime(bundle), rtol=0, atol=1e-6)
    assert bound.shape == (2, 3, 44, 60)


def test_onnx_is_exported_into_the_cache_once_and_reused(tmp_path, frames, targets):
    first = LearnedRenderer(runtime="onnxruntime", cache_dir=str(tmp_path), fallback=False)
    files = list(tmp_path.glob("learned_v2-*-opset17.onnx")) or list(tmp_path.glob("*.onnx"))
    assert [first.runtime.onnx_path] == files
    stamp = files[0].stat().st_mtime_ns
    second = LearnedRenderer(runtime="onnxruntime", cache_dir=str(tmp_path), fallback=False)
    assert second.runtime.onnx_path == files[0] and files[0].stat().st_mtime_ns == stamp
    files[0].write_bytes(files[0].read_bytes()[:1000])  # a damaged cache entry is rewritten
    third = LearnedRenderer(runtime="onnxruntime", cache_dir=str(tmp_path), fallback=False)
    out = third.render(frames[:9], targets[1][None], SMALL)
    assert out.rgb.shape == (1, 60, 80, 3)


# ---------------------------------------------------------------------------- bad files
def _bad_files(tmp_path, shipped_onnx, other_checkpoint):
    """name -> (path, the words the error must contain)."""
    good = shipped_onnx.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good[: len(good) // 2])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not an onnx file" * 50)
    foreign = tmp_path / "foreign.onnx"  # valid ONNX, not ours
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(foreign))
    renamed = tmp_path / "renamed_input.onnx"  # our metadata, an input name the warp does not make
    proto = onnx.load(str(shipped_onnx))
    old = proto.graph.input[0].name
    proto.graph.input[0].name = "colour_v1"
    for node in proto.graph.node:
        node.input[:] = ["colour_v1" if n == old else n for n in node.input]
    onnx.save(proto, str(renamed))
    other_model, _ = load_checkpoint(other_checkpoint)
    other = onnx_export.export_onnx(other_model, tmp_path / "other_model.onnx", height=24, width=32,
                                    checkpoint_path=other_checkpoint)
    return {
        "missing": (tmp_path / "missing.onnx", "does not exist"),
        "truncated": (truncated, "not a valid ONNX model"),
        "garbage": (garbage, "not a valid ONNX model"),
        "foreign": (foreign, "not a worldfm_ros frame-model export"),
        "renamed input": (renamed, "does not match the checkpoint's model"),
        "other architecture": (other, "exported from a model with config"),
    }


def test_bad_onnx_files_fail_naming_the_file_or_fall_back_to_torch(tmp_path, shipped_onnx, other_checkpoint, frames):
    for name, (path, words) in _bad_files(tmp_path, shipped_onnx, other_checkpoint).items():
        with pytest.raises(ModelLoadError) as error:
            LearnedRenderer(runtime="onnxruntime", onnx_path=str(path), fallback=False)
        assert str(path) in str(error.value) and words in str(error.value), name
        renderer = LearnedRenderer(runtime="onnxruntime", onnx_path=str(path), fallback=True)
        assert renderer.runtime.name == "torch", name
        assert len(renderer.runtime_warnings) == 1 and str(path) in renderer.runtime_warnings[0], name
    # the right architecture from another checkpoint file: refused by its SHA-256
    copy = tmp_path / "copy_of_shipped.pt"
    copy.write_bytes(DEFAULT_MODEL_PATH.read_bytes() + b"")
    model, payload = load_checkpoint(copy)
    with torch.no_grad():
        model.phase_scale.add_(0.1)
    save_checkpoint(copy, model)
    with pytest.raises(ModelLoadError, match="exported from another checkpoint"):
        LearnedRenderer(model_path=str(copy), runtime="onnxruntime", onnx_path=str(shipped_onnx), fallback=False)


def test_world_service_and_node_config_fall_back_with_a_warning(tmp_path):
    from worldfm_ros.core.world_service import WorldServiceConfig, build_renderer
    from worldfm_ros.ros.config import ConfigError, NodeConfig

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00" * 100)
    node = NodeConfig(backend="learned", learned_runtime="onnxruntime", learned_onnx_path=str(bad))
    renderer, backend, warnings = build_renderer(node.world_service_config())
    assert backend == "learned" and renderer.runtime.name == "torch"
    assert any(str(bad) in w and "falling back to 'torch'" in w for w in warnings)
    with pytest.raises(ModelLoadError, match="bad.onnx"):
        build_renderer(WorldServiceConfig(backend="learned", backend_fallback=False, learned_runtime="onnxruntime",
                                          learned_onnx_path=str(bad)))
    with pytest.raises(ConfigError, match="learned.runtime"):
        NodeConfig(learned_runtime="tflite")
    with pytest.raises(ConfigError, match="learned.precision"):
        NodeConfig(learned_precision="int8")


def test_missing_gpu_execution_provider_is_a_warning_or_a_clear_error(shipped, shipped_onnx):
    if ORT_GPU:
        pytest.skip("this onnxruntime has the CUDA provider: nothing is missing")
    runtime = OnnxRuntime(shipped, DEFAULT_MODEL_PATH, onnx_path=shipped_onnx, device="cuda", precision="fp16")
    text = " ".join(runtime.warnings)
    assert "no TensorrtExecutionProvider" in text and "no CUDAExecutionProvider" in text and "fp16" in text
    assert runtime.providers == ["CPUExecutionProvider"]
    with pytest.raises(ModelLoadError, match="no GPU execution provider") as error:
        make_runtime("onnxruntime", shipped, DEFAULT_MODEL_PATH, device="cuda", onnx_path=shipped_onnx, fallback=False)
    assert str(shipped_onnx) in str(error.value)


# ---------------------------------------------------------------------------- CLI, TensorRT
def test_export_cli_writes_and_checks_a_file_and_tensorrt_needs_its_package(tmp_path, other_checkpoint, capsys):
    from worldfm_ros.cli.export import main

    out = tmp_path / "small.onnx"
    assert main(["--onnx", str(out), "--model", str(other_checkpoint), "--height", "24", "--width", "32",
                 "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert [c["pixels_within_1_255"] for c in report["checks"]] == [1.0, 1.0]
    assert "onnx.checker: ok" in capsys.readouterr().out
    assert main(["--onnx", str(tmp_path / "x.onnx"), "--model", str(tmp_path / "none.pt")]) == 2
    assert "none.pt" in capsys.readouterr().err
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert main(["--tensorrt", str(tmp_path / "e.engine"), "--onnx", str(out), "--model", str(other_checkpoint),
                     "--height", "24", "--width", "32"]) == 3
        assert "pip install '.[tensorrt]'" in capsys.readouterr().err
    else:  # pragma: no cover - machines with TensorRT
        pytest.skip("tensorrt is importable: test_tensorrt_engine_* cover it")


@pytest.mark.skipif(not CUDA, reason="no CUDA GPU on this machine (scripts/device_check.sh runs this)")
def test_tensorrt_engine_builds_runs_and_a_foreign_engine_fails_naming_the_file(tmp_path, shipped, shipped_onnx,
                                                                                 frames, targets):
    pytest.importorskip("tensorrt", reason="the optional 'tensorrt' package is not installed (pip install .[tensorrt])")
    engine = tmp_path / "learned.engine"
    onnx_export.build_tensorrt_engine(shipped_onnx, engine, height=60, width=80, max_batch=4)
    torch_out = LearnedRenderer(device="cuda").render_batch([frames[:9]] * 2, targets[:2], SMALL)
    trt_out = LearnedRenderer(device="cuda", runtime="tensorrt", engine_path=str(engine),
                              fallback=False).render_batch([frames[:9]] * 2, targets[:2], SMALL)
    assert _within_one_level(trt_out.rgb, torch_out.rgb) >= 0.999
    foreign = tmp_path / "other_gpu.engine"
    data = bytearray(engine.read_bytes())
    data[16:48] = bytes(32)  # a header that no TensorRT on this GPU accepts
    foreign.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="other_gpu.engine"):
        LearnedRenderer(device="cuda", runtime="tensorrt", engine_path=str(foreign), fallback=False)


# ---------------------------------------------------------------------------- CUDA
@needs_cuda
@pytest.mark.parametrize("backend", ["geometric", "learned"])
def test_cuda_renders_agree_with_cpu(backend, frames, targets):
    from worldfm_ros.core.renderers import make_renderer

    cpu = make_renderer(backend, "cpu").render(frames[:9], targets[:2], SMALL)
    gpu = make_renderer(backend, "cuda").render(frames[:9], targets[:2], SMALL)
    assert _within_one_level(gpu.rgb, cpu.rgb) >= 0.999
    assert np.mean(gpu.covered == cpu.covered) >= 0.999


@needs_cuda
@pytest.mark.skipif(not ORT_GPU, reason="onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu)")
def test_onnxruntime_cuda_agrees_with_torch_cuda(frames, targets, shipped_onnx):
    torch_out = LearnedRenderer(device="cuda").render_batch([frames[:9]] * 2, targets[:2], SMALL)
    ort = LearnedRenderer(device="cuda", runtime="onnxruntime", onnx_path=str(shipped_onnx), fallback=False)
    assert ort.runtime.providers[0] in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    out = ort.render_batch([frames[:9]] * 2, targets[:2], SMALL)
    assert _within_one_level(out.rgb, torch_out.rgb) >= 0.999


def test_node_with_a_corrupt_onnx_file_falls_back_or_fails_configure_cleanly(tmp_path):
    rclpy = pytest.importorskip("rclpy", reason="rclpy is needed for the node")
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from worldfm_ros.ros.node import WorldFMNode

    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(b"\x08\x07\x12\x04" * 10)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        for fallback, expected in ((True, TransitionCallbackReturn.SUCCESS), (False, TransitionCallbackReturn.FAILURE)):
            node = WorldFMNode(context=context, parameter_overrides=[
                Parameter("backend", value="learned"), Parameter("learned.runtime", value="onnxruntime"),
                Parameter("learned.onnx_path", value=str(bad)), Parameter("backend_fallback", value=fallback)])
            try:
                assert node.trigger_configure() == expected
                if fallback:
                    assert node.world.renderer.runtime.name == "torch"
                    assert any(str(bad) in w for w in node.world.warnings)
                else:
                    assert node.world is None
            finally:
                node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_a_file_from_before_a_config_field_existed_still_loads_but_a_changed_field_does_not(tmp_path, shipped,
                                                                                           shipped_onnx):
    proto = onnx.load(str(shipped_onnx))
    entry = next(p for p in proto.metadata_props if p.key == "worldfm.model_config")
    config = json.loads(entry.value)
    assert config["distance_prior"] is False  # the shipped model has the field's default
    entry.value = json.dumps({k: v for k, v in config.items() if k != "distance_prior"})
    onnx.save(proto, str(tmp_path / "older.onnx"))  # as written before the field existed
    onnx_export.check_onnx_file(tmp_path / "older.onnx", shipped)
    entry.value = json.dumps(dict(config, ref_channels=config["ref_channels"] + 1))
    onnx.save(proto, str(tmp_path / "changed.onnx"))
    with pytest.raises(ModelLoadError, match="ref_channels") as error:
        onnx_export.check_onnx_file(tmp_path / "changed.onnx", shipped)
    assert "changed.onnx" in str(error.value) and "distance_prior" not in str(error.value)


def test_tensorrt_runtime_without_its_package_or_gpu_falls_back_or_says_why(tmp_path):
    engine = tmp_path / "built_elsewhere.engine"
    engine.write_bytes(b"ftrt" + bytes(200))
    renderer = LearnedRenderer(runtime="tensorrt", engine_path=str(engine), fallback=True)
    assert renderer.runtime.name == "torch" and "falling back to 'torch'" in renderer.runtime_warnings[0]
    with pytest.raises((ImportError, ModelLoadError)) as error:
        LearnedRenderer(runtime="tensorrt", engine_path=str(engine), fallback=False)
    assert "tensorrt" in str(error.value).lower()
    with pytest.raises(ModelLoadError, match="needs an engine file"):
        LearnedRenderer(runtime="tensorrt", fallback=False)
