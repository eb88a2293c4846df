"""Runtimes of the frame model: the same network through PyTorch, ONNX Runtime or TensorRT.

A runtime is called with a :class:`~worldfm_ros.learned.warp.WarpBundle` and returns
``rgb [B, 3, H, W]`` in [0, 1] as a torch tensor on the bundle's device.

* ``torch`` - the checkpoint's :class:`~worldfm_ros.learned.model.FrameModel` (the default
  and the reference every other runtime is checked against).
* ``onnxruntime`` - the ONNX export (:mod:`worldfm_ros.learned.onnx_export`) in an ONNX
  Runtime session. Execution providers by ``device``: ``cpu`` -> CPU; ``cuda`` ->
  TensorRT (fp16 when ``precision="fp16"``, engines cached in ``cache_dir``), then CUDA,
  then CPU, each used when the installed onnxruntime has it (``onnxruntime-gpu``); a
  missing one is reported as a warning. Without ``onnx_path`` the checkpoint is exported
  into ``cache_dir`` once (keyed by its SHA-256) and reused.
* ``tensorrt`` - a serialized TensorRT engine (``worldfm-export --tensorrt``) run directly
  on CUDA tensors; needs the optional ``tensorrt`` package.

:func:`make_runtime` builds one; when the requested runtime cannot be set up it falls back to
``torch`` with a warning (``fallback=True``, the node's ``backend_fallback``) or raises
:class:`~worldfm_ros.core.errors.ModelLoadError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from worldfm_ros.core.errors import InvalidSizeError, ModelLoadError

#: Runtime names (``learned.runtime`` parameter, ``--runtime`` options).
RUNTIMES = ("torch", "onnxruntime", "tensorrt")
#: Precisions of the TensorRT paths (ONNX Runtime's TensorRT provider, TensorRT engines).
PRECISIONS = ("fp32", "fp16")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/worldfm_ros`` (``~/.cache/worldfm_ros``): exported ONNX files and engines."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "worldfm_ros"


class TorchRuntime:
    """The checkpoint's model in PyTorch."""

    name = "torch"

    def __init__(self, model):
        self.model = model
        self.providers: list[str] = []

    def __call__(self, bundle) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(bundle)


def cached_onnx(model, model_path, cache_dir) -> Path:
    """The ONNX export of the checkpoint ``model_path`` in ``cache_dir``, written on first use
    (``<stem>-<sha256[:16]>-opset<N>-r<export revision>.onnx``: a changed export gets a new
    name); a cached file that fails the checks is rewritten."""
    from worldfm_ros.learned.onnx_export import EXPORT_REVISION, OPSET, check_onnx_file, export_onnx, file_sha256

    model_path = Path(model_path)
    path = Path(cache_dir) / f"{model_path.stem}-{file_sha256(model_path)[:16]}-opset{OPSET}-r{EXPORT_REVISION}.onnx"
    if path.is_file():
        try:
            check_onnx_file(path, model, model_path)
            return path
        except ModelLoadError:
            pass  # damaged or stale cache entry: export again
    return export_onnx(model, path, checkpoint_path=model_path)


class OnnxRuntime:
    """The ONNX export in an ONNX Runtime session (see the module docstring).

    Args:
        model: the checkpoint's :class:`FrameModel` (its inputs and version are checked
            against the file).
        model_path: the checkpoint file.
        onnx_path: an exported file; ``None`` = export the checkpoint into ``cache_dir``.
        device: ``cpu`` or ``cuda``.
        precision: ``fp32`` or ``fp16`` (TensorRT provider only; fp32 elsewhere, with a warning).
        cache_dir: exported files and TensorRT provider engines; ``None`` = :func:`default_cache_dir`.
        threads: CPU threads of the session; ``None`` = ``torch.get_num_threads()``.

    ``warnings`` lists what was not as requested (a missing provider, fp16 without TensorRT).
    Raises :class:`ModelLoadError` naming the file for a missing, corrupt, truncated or
    mismatched ONNX file, and when ``device="cuda"`` finds no GPU provider and ``strict``.
    """

    name = "onnxruntime"

    def __init__(self, model, model_path, *, onnx_path=None, device: str = "cpu", precision: str = "fp32",
                 cache_dir=None, threads: Optional[int] = None, strict: bool = False):
        import onnxruntime as ort

        from worldfm_ros.learned.onnx_export import check_onnx_file

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.warnings: list[str] = []
        self.device = torch.device(device)
        cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        if onnx_path:
            self.onnx_path = Path(onnx_path)
            check_onnx_file(self.onnx_path, model, model_path)
        else:
            self.onnx_path = cached_onnx(model, model_path, cache_dir)
        available = ort.get_available_providers()
        providers: list = []
        if self.device.type == "cuda":
            engines = cache_dir / "ort_tensorrt"
            if "TensorrtExecutionProvider" in available:
                engines.mkdir(parents=True, exist_ok=True)
                providers.append(("TensorrtExecutionProvider", {
                    "trt_fp16_enable": precision == "fp16",
                    "trt_engine_cache_enable": True, "trt_engine_cache_path": str(engines),
                    "trt_timing_cache_enable": True, "trt_timing_cache_path": str(engines),
                }))
            else:
                self.warnings.append("onnxruntime has no TensorrtExecutionProvider (install onnxruntime-gpu "
                                     f"with TensorRT; available: {', '.join(available)})")
            if "CUDAExecutionProvider" in available:
                providers.append(("CUDAExecutionProvider", {"device_id": self.device.index or 0}))
            else:
                self.warnings.append("onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu; "
                                     f"available: {', '.join(available)})")
            if len(providers) == 0:
                if strict:
                    raise ModelLoadError(f"device 'cuda' with ONNX file {self.onnx_path}: onnxruntime has no GPU "
                                         f"execution provider (available: {', '.join(available)})",
                                         str(self.onnx_path))
                self.warnings.append("onnxruntime runs on the CPU provider: inputs are copied from the GPU")
        if precision == "fp16" and not any(p[0] == "TensorrtExecutionProvider" for p in providers):
            self.warnings.append("precision fp16 needs the TensorRT execution provider: running fp32")
        providers.append("CPUExecutionProvider")
        options = ort.SessionOptions()
        # EXTENDED, not ALL: ALL adds the NCHWc layout transforms, whose reorders around the
        # full-resolution refinement convolutions cost more than they save on this graph
        # (16.96 against 18.13 ms per 320x240 forward, 2 threads, same process; docs/deployment.md).
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        # Idle session threads sleep instead of spinning: the warp's threads share the cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.onnx_path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own types (Fail, InvalidGraph, ...)
            raise ModelLoadError(f"onnxruntime cannot load ONNX file {self.onnx_path}: {type(exc).__name__}: "
                                 f"{str(exc)[:300]}", str(self.onnx_path)) from exc
        self.providers = self.session.get_providers()
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name

    def __call__(self, bundle) -> torch.Tensor:
        device = bundle.colour.device
        if device.type == "cuda" and self.providers[0] != "CPUExecutionProvider":
            return self._run_bound(bundle, device)
        feed = {n: getattr(bundle, n).detach().cpu().contiguous().numpy() for n in self.input_names}
        out = torch.from_numpy(self.session.run([self.output_name], feed)[0])
        return out.to(device)

    def _run_bound(self, bundle, device) -> torch.Tensor:
        """Tensors in, tensor out on ``device`` (CUDA; CPU in the tests), no copies: I/O
        binding to torch's memory."""
        binding = self.session.io_binding()
        kind, index = device.type, device.index or 0
        keep = []
        for n in self.input_names:
            t = getattr(bundle, n).to(device=device, dtype=torch.float32).contiguous()
            keep.append(t)
            binding.bind_input(n, kind, index, np.float32, list(t.shape), t.data_ptr())
        B, _, _, H, W = bundle.colour.shape
        out = torch.empty((B, 3, H, W), dtype=torch.float32, device=device)
        binding.bind_output(self.output_name, kind, index, np.float32, list(out.shape), out.data_ptr())
        if kind == "cuda":
            torch.cuda.current_stream(device).synchronize()  # the warp's kernels have written the inputs
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return out


class TensorRTRuntime:
    """A serialized TensorRT engine (``worldfm-export --tensorrt``) on CUDA tensors.

    Raises ``ImportError`` when ``tensorrt`` is not importable and :class:`ModelLoadError`
    naming the file when it is missing or cannot be deserialized (built for another GPU or
    TensorRT version, or damaged), or its inputs are not the model's."""

    name = "tensorrt"

    def __init__(self, model, engine_path, device: str = "cuda"):
        from worldfm_ros.learned.onnx_export import bundle_inputs

        try:
            import tensorrt as trt
        except ImportError as exc:
            raise ImportError(f"runtime 'tensorrt' needs the 'tensorrt' Python package ({exc}); "
                              "pip install '.[tensorrt]' or use JetPack's") from exc
        self.engine_path = Path(engine_path)
        if torch.device(device).type != "cuda" or not torch.cuda.is_available():
            raise ModelLoadError(f"TensorRT engine {self.engine_path} needs device 'cuda' with a GPU", str(engine_path))
        if not self.engine_path.is_file():
            raise ModelLoadError(f"TensorRT engine {self.engine_path} does not exist", str(engine_path))
        self.device = torch.device(device)
        logger = trt.Logger(trt.Logger.ERROR)
        self._runtime = trt.Runtime(logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            name = torch.cuda.get_device_name(self.device)
            raise ModelLoadError(f"TensorRT engine {self.engine_path} cannot be loaded by TensorRT {trt.__version__} "
                                 f"on {name}: built for another GPU or TensorRT version, or damaged; rebuild it on "
                                 "this machine with worldfm-export --tensorrt", str(engine_path))
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in self.input_names]
        expected = bundle_inputs(model.k)
        wrong = [n for n in self.input_names
                 if n not in expected or len(expected[n]) != len(self.engine.get_tensor_shape(n))]
        if wrong or len(outputs) != 1:
            raise ModelLoadError(f"TensorRT engine {self.engine_path} does not match the checkpoint's model "
                                 f"(inputs {self.input_names}, outputs {outputs})", str(engine_path))
        self.output_name = outputs[0]
        self.context = self.engine.create_execution_context()
        self.providers = [f"TensorRT {trt.__version__}"]
        self.warnings: list[str] = []

    def __call__(self, bundle) -> torch.Tensor:
        stream = torch.cuda.current_stream(self.device)
        keep = []
        for n in self.input_names:
            t = getattr(bundle, n).to(self.device).contiguous()
            keep.append(t)
            if not self.context.set_input_shape(n, tuple(t.shape)):
                profile = self.engine.get_tensor_profile_shape(n, 0)  # (min, opt, max)
                raise InvalidSizeError(f"TensorRT engine {self.engine_path} takes {n} shapes "
                                       f"{tuple(profile[0])} .. {tuple(profile[2])}, got {tuple(t.shape)}; "
                                       "build one for this size with worldfm-export --tensorrt", tuple(t.shape))
            self.context.set_tensor_address(n, t.data_ptr())
        B, _, _, H, W = bundle.colour.shape
        out = torch.empty((B, 3, H, W), dtype=torch.float32, device=self.device)
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT engine {self.engine_path} failed to run on a batch of {B} {W}x{H} views")
        return out


def make_runtime(name: str, model, model_path, *, device: str = "cpu", onnx_path=None, engine_path=None,
                 precision: str = "fp32", cache_dir=None, fallback: bool = True):
    """``(runtime, warnings)`` for ``name`` (one of :data:`RUNTIMES`).

    With ``fallback`` a runtime that cannot be set up (package missing, bad file, no GPU)
    becomes ``torch`` and the reason a warning; without it the error is raised
    (:class:`ModelLoadError` naming the file, ``ImportError``, ``ValueError``)."""
    if name not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {name!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if name == "torch":
        return TorchRuntime(model), []
    try:
        if name == "onnxruntime":
            runtime = OnnxRuntime(model, model_path, onnx_path=onnx_path, device=device, precision=precision,
                                  cache_dir=cache_dir, strict=not fallback)
        else:
            if not engine_path:
                raise ModelLoadError("runtime 'tensorrt' needs an engine file (learned.engine_path / --engine; "
                                     "build one with worldfm-export --tensorrt)", engine_path)
            runtime = TensorRTRuntime(model, engine_path, device)
    except (ModelLoadError, ImportError, OSError, RuntimeError) as error:
        if not fallback:
            raise
        return TorchRuntime(model), [f"runtime {name!r} unavailable ({error}): falling back to 'torch'"]
    return runtime, list(runtime.warnings)
