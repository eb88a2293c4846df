"""The frame model as an ONNX graph (for ONNX Runtime and TensorRT), and its checks.

What runs where (the renderer's pipeline per view):

* **numba / OpenCV (CPU) or torch (CUDA)** - retrieval, the splat of the references into the
  target (z-buffer with ``scatter``/``amin``), the push-pull depth fill and the inverse warp
  with bicubic sampling (:mod:`worldfm_ros.learned.warp`). These stay outside the graph:
  scatter-min z-buffering has no ONNX operator (``ScatterElements`` ``reduction="min"`` exists
  from opset 18, but TensorRT does not implement it) and the per-reference loop over a
  variable number of keyframes of arbitrary sizes does not fit a static graph.
* **the ONNX graph** - everything :class:`~worldfm_ros.learned.model.FrameModel` does with a
  :class:`~worldfm_ros.learned.warp.WarpBundle`: encoder, U-Net, heads, upsampling, blend,
  refinement. Its inputs are the bundle's fields by name (``colour``, ``valid``, ...), its
  output ``rgb [B, 3, H, W]`` in [0, 1].

Shapes: the batch and the image size are **dynamic** (one file serves every camera size and
batch; the size arithmetic of the forward pass is traced as shape operations). The ``K``
reference slots and every channel count are fixed by the checkpoint and checked when a file
is loaded (:func:`check_onnx_file`). TensorRT engines are built from the file for a range
of batch sizes and one optimisation size (see :func:`build_tensorrt_engine`).

The input names and shapes come from the model itself: an example bundle is warped from a
small synthetic scene with as many references as the checkpoint has slots, and every field
of :class:`WarpBundle` becomes an input with that field's shape (an unused field stays an
unused input). A checkpoint with a changed architecture therefore exports without changes
here, and a file exported from another checkpoint is refused with a message naming it.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from worldfm_ros.core.errors import ModelLoadError

#: ONNX opset of the exported graph (>= 17: LayerNormalization-era operators, the contract's floor).
OPSET = 17
#: ``metadata_props`` key prefix of the facts written into every exported file.
META_PREFIX = "worldfm."
#: Value of ``worldfm.format``.
ONNX_FORMAT = "worldfm_ros.learned.FrameModel.onnx"
#: Revision of the export's graph (part of the cache file name, :func:`~worldfm_ros.learned.runtime.cached_onnx`):
#: 2 = the full-resolution tail spelled for ONNX Runtime (``FrameModel._export_tail``).
EXPORT_REVISION = 2
#: Name of the graph's output.
OUTPUT_NAME = "rgb"


def input_names() -> tuple[str, ...]:
    """The graph's inputs: the fields of :class:`WarpBundle`, in declaration order."""
    from worldfm_ros.learned.warp import WarpBundle

    return tuple(f.name for f in dataclasses.fields(WarpBundle))


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------- example inputs
def example_bundle(k: int, height: int, width: int, batch: int = 1, seed: int = 3):
    """A real :class:`WarpBundle` (``batch`` views of ``height x width``, ``k`` slots): ``k``
    frames (160x120) of synthetic world ``seed`` warped into ``batch`` poses between them. The export
    traces on it and the checks compare torch and ONNX Runtime on it."""
    from worldfm_ros.core.camera import Intrinsics
    from worldfm_ros.learned.warp import WarpBundle, warp_references

    f = 0.8 * width
    camera = Intrinsics(fx=f, fy=f, cx=(width - 1) / 2, cy=(height - 1) / 2, width=width, height=height)
    refs, targets = _example_scene(k, batch, seed)
    return WarpBundle.stack([warp_references(list(refs), T, camera, k, "cpu") for T in targets])


@lru_cache(maxsize=4)
def _example_scene(k: int, batch: int, seed: int) -> tuple:
    """``k + 1`` reference keyframes (160x120) of synthetic world ``seed`` and ``batch``
    target poses between them (cached: tests and checks ask for the same scene often)."""
    from worldfm_ros.core.camera import Intrinsics
    from worldfm_ros.core.keyframe import Keyframe
    from worldfm_ros.core.pose import interpolate_pose
    from worldfm_ros.core.synthetic.generate import generate_world
    from worldfm_ros.core.synthetic.trajectory import plan_loop

    ref_camera = Intrinsics(fx=128.0, fy=128.0, cx=79.5, cy=59.5, width=160, height=120)
    world = generate_world(seed)
    poses = plan_loop(world, seed, k + batch + 1).T_world_cam
    refs = []
    for i, T in enumerate(poses[: k + 1]):
        colour, depth = world.render(T, ref_camera)
        refs.append(Keyframe(colour, depth, ref_camera, T, float(i), id=i))
    return tuple(refs), tuple(interpolate_pose(poses[b], poses[b + 1], 0.5) for b in range(batch))


def _dims(bundle) -> dict[str, list]:
    """Per input: its dimensions, symbolic (``batch``, ``height``/``width`` for full-resolution
    maps, ``coarse_height``/``coarse_width`` for the working-resolution ones) or fixed."""
    H, W = bundle.colour.shape[-2:]
    out = {}
    for name in input_names():
        shape = list(getattr(bundle, name).shape)
        dims: list = ["batch"] + shape[1:]
        if tuple(shape[-2:]) == (H, W):
            dims[-2:] = ["height", "width"]
        else:
            dims[-2:] = ["coarse_height", "coarse_width"]
        out[name] = dims
    return out


@lru_cache(maxsize=8)
def bundle_inputs(k: int) -> dict[str, list]:
    """``{field name: dims}`` of the bundles the warp makes for a model with ``k`` slots
    (symbolic dims as names). An exported graph has the fields its model reads."""
    return _dims(example_bundle(k, 32, 40))


# ---------------------------------------------------------------------------- export
class _GraphModule(torch.nn.Module):
    """``FrameModel`` with the bundle's fields as positional tensors (what ONNX sees)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *fields):
        from worldfm_ros.learned.warp import WarpBundle

        return self.model(WarpBundle(*fields))


def export_onnx(model, out_path, *, height: int = 240, width: int = 320,
                checkpoint_path=None, batch: int = 2) -> Path:
    """Write ``model`` (a :class:`FrameModel` in eval mode on the CPU) to ``out_path`` as ONNX,
    traced at ``height x width`` with dynamic batch and size; atomic (temp file + rename).

    ``checkpoint_path``: the file the model was loaded from; its SHA-256, the checkpoint
    version and the model's config are written into the file's metadata and checked when it
    is loaded."""
    from worldfm_ros.learned.model import CHECKPOINT_VERSION

    import onnx

    out_path = Path(out_path)
    bundle = example_bundle(model.k, height, width, batch)
    dims = _dims(bundle)
    names = input_names()
    dynamic_axes = {n: {i: d for i, d in enumerate(dims[n]) if isinstance(d, str)} for n in names}
    dynamic_axes[OUTPUT_NAME] = {0: "batch", 2: "height", 3: "width"}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    graph = _GraphModule(copy.deepcopy(model).cpu().eval()).eval()  # a copy: the caller's may live on CUDA
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The tracer's notes (strided Slice not constant-folded, Python ints from sizes) are
        # expected: the sizes are traced as shape operations on purpose.
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, tuple(getattr(bundle, n) for n in names), str(tmp), dynamo=False,
                          opset_version=OPSET, input_names=list(names), output_names=[OUTPUT_NAME],
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    proto = onnx.load(str(tmp))
    meta = {
        "format": ONNX_FORMAT,
        "checkpoint_version": str(CHECKPOINT_VERSION),
        "model_config": json.dumps(dataclasses.asdict(model.config), sort_keys=True),
        "inputs": json.dumps(dims),
        "traced_size": f"{width}x{height}",
        "export_revision": str(EXPORT_REVISION),
        "torch": torch.__version__,
    }
    if checkpoint_path is not None:
        meta["checkpoint_sha256"] = file_sha256(checkpoint_path)
        meta["checkpoint_file"] = Path(checkpoint_path).name
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_PREFIX + key, value
    proto.doc_string = ("worldfm_ros frame model: WarpBundle fields -> rgb [B, 3, H, W] in [0, 1]; "
                        "see worldfm_ros/learned/onnx_export.py")
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(tmp))
    os.replace(tmp, out_path)
    return out_path


# ---------------------------------------------------------------------------- checks
def read_metadata(path) -> dict[str, str]:
    """``{key: value}`` of the file's ``worldfm.*`` metadata (prefix dropped); raises
    :class:`ModelLoadError` naming the file when it is not a readable, valid ONNX model."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"ONNX file {path} does not exist", str(path))
    try:
        proto = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(proto)
    except Exception as exc:  # protobuf DecodeError, onnx ValidationError, ...
        raise ModelLoadError(f"ONNX file {path} is not a valid ONNX model (corrupt or truncated?): "
                             f"{type(exc).__name__}: {str(exc)[:300]}", str(path)) from exc
    return {p.key[len(META_PREFIX):]: p.value for p in proto.metadata_props if p.key.startswith(META_PREFIX)}


def graph_inputs(path) -> dict[str, list]:
    """``{input name: dims}`` of the file's graph (symbolic dims as their names)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    out = {}
    for value in proto.graph.input:
        dims = [d.dim_param if d.dim_param else int(d.dim_value) for d in value.type.tensor_type.shape.dim]
        out[value.name] = dims
    return out


def check_onnx_file(path, model, checkpoint_path=None) -> dict[str, str]:
    """Raise :class:`ModelLoadError` naming ``path`` unless it is a valid ONNX export of a
    model with ``model``'s inputs (names, fixed dims) and checkpoint version and, when both
    are known, of the same checkpoint file. Returns the file's metadata."""
    from worldfm_ros.learned.model import CHECKPOINT_VERSION

    path = Path(path)
    meta = read_metadata(path)
    if meta.get("format") != ONNX_FORMAT:
        raise ModelLoadError(f"ONNX file {path} is not a worldfm_ros frame-model export "
                             f"(no '{META_PREFIX}format: {ONNX_FORMAT}' metadata); export one with worldfm-export --onnx",
                             str(path))
    if meta.get("checkpoint_version") != str(CHECKPOINT_VERSION):
        raise ModelLoadError(f"ONNX file {path} was exported from a version-{meta.get('checkpoint_version')} "
                             f"checkpoint; this code reads version {CHECKPOINT_VERSION}", str(path))
    differs = _config_differences(meta.get("model_config"), model.config)
    if differs:
        raise ModelLoadError(f"ONNX file {path} was exported from a model with config {differs}; "
                             f"the checkpoint's model differs there", str(path))
    expected = bundle_inputs(model.k)
    found = graph_inputs(path)
    wrong = {n: d for n, d in found.items() if expected.get(n) != d}
    if wrong or not found:
        raise ModelLoadError(f"ONNX file {path} does not match the checkpoint's model: its inputs "
                             f"{wrong or found} are not the warp's {expected}", str(path))
    if checkpoint_path is not None and meta.get("checkpoint_sha256"):
        sha = file_sha256(checkpoint_path)
        if sha != meta["checkpoint_sha256"]:
            raise ModelLoadError(f"ONNX file {path} was exported from another checkpoint "
                                 f"({meta.get('checkpoint_file', '?')} sha256 {meta['checkpoint_sha256'][:12]}) "
                                 f"than {checkpoint_path} (sha256 {sha[:12]}); re-export it", str(path))
    return meta


def _config_differences(exported: Optional[str], config) -> dict:
    """``{field: value in the file}`` where the file's model config differs from ``config``.
    A field the file lacks (written before the field existed) counts as the field's default,
    as :func:`~worldfm_ros.learned.model.load_checkpoint` reads old checkpoints."""
    try:
        theirs = json.loads(exported) if exported else None
    except ValueError:
        theirs = None
    if not isinstance(theirs, dict):
        return {"model_config": exported}
    ours = json.loads(json.dumps(dataclasses.asdict(config)))
    defaults = {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}
    defaults = json.loads(json.dumps(defaults))
    out = {}
    for key in sorted(set(ours) | set(theirs)):
        value = theirs.get(key, defaults.get(key))
        if value != ours.get(key, defaults.get(key)):
            out[key] = value
    return out


def compare_with_torch(path, model, bundle, threads: Optional[int] = None) -> dict:
    """ONNX Runtime (CPU) against torch on ``bundle``: max abs difference and the fraction of
    pixels (all channels) whose 8-bit values differ by at most one level."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {i.name: getattr(bundle, i.name).cpu().numpy() for i in session.get_inputs()}
    ours = session.run([OUTPUT_NAME], feed)[0]
    with torch.inference_mode():
        theirs = copy.deepcopy(model).cpu()(bundle.to("cpu")).numpy()
    a = np.round(ours * 255.0).astype(np.int16)
    b = np.round(theirs * 255.0).astype(np.int16)
    within = (np.abs(a - b).max(axis=1) <= 1).mean()
    return {"max_abs_diff": float(np.abs(ours - theirs).max()), "pixels_within_1_255": float(within),
            "shape": list(ours.shape)}


# ---------------------------------------------------------------------------- TensorRT
def build_tensorrt_engine(onnx_path, engine_path, *, fp16: bool = False, height: int = 240, width: int = 320,
                          max_batch: int = 16, workspace_gib: float = 2.0) -> dict:
    """Build a serialized TensorRT engine from an exported ONNX file (on the target GPU: an
    engine runs only on the GPU model and TensorRT version that built it).

    The optimisation profile: batch 1 .. ``max_batch`` (optimum ``max_batch``), image size
    fixed at ``height x width`` (TensorRT picks its fastest kernels for one size). Needs the
    optional ``tensorrt`` package (``pip install .[tensorrt]``); raises ``ImportError`` with
    that hint when it is missing and :class:`ModelLoadError` naming the file when the parser
    or the builder fails."""
    import time

    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ImportError("worldfm-export --tensorrt needs the 'tensorrt' Python package, which is not "
                          "importable here: pip install '.[tensorrt]' (x86_64 with CUDA 12) or use the one "
                          f"JetPack ships (python3-libnvinfer) ({exc})") from exc
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    dims = {n: d for n, d in graph_inputs(onnx_path).items()}
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # TensorRT < 10 needs the flag
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelLoadError(f"TensorRT cannot parse ONNX file {onnx_path}: {errors}", str(onnx_path))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    h, w = -(-height // 4), -(-width // 4)
    sizes = {"height": height, "width": width, "coarse_height": h, "coarse_width": w}
    for name, d in dims.items():
        shape = [sizes.get(x, x) if isinstance(x, str) and x != "batch" else x for x in d]
        lo = [1 if x == "batch" else x for x in shape]
        hi = [max_batch if x == "batch" else x for x in shape]
        profile.set_shape(name, lo, hi, hi)
    config.add_optimization_profile(profile)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelLoadError(f"TensorRT could not build an engine from {onnx_path} (see its log above)",
                             str(onnx_path))
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(bytes(serialized))
    return {"seconds": time.perf_counter() - t0, "bytes": engine_path.stat().st_size, "fp16": fp16,
            "tensorrt": trt.__version__, "size": f"{width}x{height}", "max_batch": max_batch}
