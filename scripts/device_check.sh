#!/usr/bin/env bash
# The GPU checks of docs/deployment.md in one go, ready to run on an NVIDIA machine (and on a
# CPU-only one, where the GPU rows read "n/a: <reason>").
#
#   bash scripts/device_check.sh            # uses .venv (scripts/setup.sh) or the python on PATH
#   QUICK=1 bash scripts/device_check.sh    # fewer views per row (a smoke run)
#
# 1. Installs what the GPU rows need when an NVIDIA GPU is present: the CUDA build of torch
#    2.13.0 if the environment has the CPU one, onnxruntime-gpu (CUDA + TensorRT providers)
#    and tensorrt (optional extra). Set DEVICE_CHECK_INSTALL=0 to skip installing.
# 2. Runs the CUDA / ONNX Runtime GPU / TensorRT tests (test/test_edge_runtime.py; they skip
#    with the reason where something is missing).
# 3. Benchmarks the learned renderer end to end (warp + network, views from a synthetic
#    world) at 320x240 and 640x480, K = 8, batch 1 and 16: torch-CPU, ORT-CPU, torch-CUDA,
#    ORT-CUDA, ORT-TensorRT and a TensorRT engine, and prints one markdown table
#    (out/device_check/table.md, JSON beside it).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUT=${OUT_DIR:-out/device_check}
mkdir -p "$OUT"
log() { echo "[device_check] $*"; }

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  GPU=1
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/[device_check] GPU: /'
else
  GPU=0
  log "no NVIDIA GPU (nvidia-smi absent or failing): GPU rows will read n/a"
fi

if [ "$GPU" = 1 ] && [ "${DEVICE_CHECK_INSTALL:-1}" = 1 ]; then
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    log "installing the CUDA build of torch==2.13.0"
    "$PY" -m pip install -q "torch==2.13.0" --index-url "${TORCH_INDEX:-https://download.pytorch.org/whl/cu128}" \
      || log "could not install CUDA torch (offline?): torch-CUDA rows will read n/a"
  fi
  if ! "$PY" -c "import onnxruntime as o, sys; sys.exit(0 if 'CUDAExecutionProvider' in o.get_available_providers() else 1)" 2>/dev/null; then
    # Downloaded first: the CPU onnxruntime is removed only once the GPU wheel is at hand
    # (both install the same module, so they cannot sit side by side).
    rm -rf "$OUT/wheels"
    if "$PY" -m pip download -q --no-deps -d "$OUT/wheels" onnxruntime-gpu; then
      log "installing onnxruntime-gpu (replaces the CPU onnxruntime)"
      "$PY" -m pip uninstall -q -y onnxruntime >/dev/null 2>&1
      "$PY" -m pip install -q "$OUT"/wheels/onnxruntime_gpu-*.whl
    else
      log "onnxruntime-gpu not downloadable here (offline?): ORT GPU rows will read n/a"
    fi
  fi
  if ! "$PY" -c "import tensorrt" 2>/dev/null; then
    log "installing tensorrt (optional extra)"
    "$PY" -m pip install -q "tensorrt>=10" || log "tensorrt not installable here: TensorRT rows will read n/a"
  fi
  # onnxruntime-gpu finds the CUDA / cuDNN / TensorRT libraries of the pip wheels through these paths.
  SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  for d in "$SITE"/nvidia/*/lib "$SITE"/tensorrt_libs "$SITE"/tensorrt; do
    [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
  done
  export LD_LIBRARY_PATH
fi

if ! "$PY" -c "import torch, onnx, onnxruntime, worldfm_ros.learned.runtime" 2>/dev/null; then
  log "cannot import torch / onnx / onnxruntime / worldfm_ros with $PY: run scripts/setup.sh first (or set PYTHON=)"
  exit 1
fi

log "environment:"
"$PY" - <<'EOF'
import torch
try:
    import onnxruntime as ort
    providers = ort.get_available_providers()
    version = ort.__version__
except ImportError:
    version, providers = "missing", []
try:
    import tensorrt
    trt = tensorrt.__version__
except ImportError:
    trt = "not importable"
print(f"  torch {torch.__version__} (CUDA available: {torch.cuda.is_available()}), onnxruntime {version} "
      f"{providers}, tensorrt {trt}")
EOF

log "tests (CUDA, ONNX Runtime GPU, TensorRT; skips print their reason):"
"$PY" -m pytest -q -rs test/test_edge_runtime.py 2>&1 | tail -n 25

log "benchmark:"
"$PY" - "$OUT" <<'EOF'
"""Rows: runtime x device; columns: size x batch; cells: ms per view (p50 of repeated batches)."""
import json
import os
import sys
import time
import traceback

import numpy as np
import torch

from worldfm_ros.cli.bench import DEFAULT_CAMERA, synthetic_frames
from worldfm_ros.core.pose import interpolate_pose
from worldfm_ros.core.renderers.learned import DEFAULT_MODEL_PATH, LearnedRenderer
from worldfm_ros.learned.model import load_checkpoint
from worldfm_ros.learned.onnx_export import build_tensorrt_engine, export_onnx

out_dir = sys.argv[1]
quick = os.environ.get("QUICK") == "1"
repeats = 3 if quick else 10
cpu_threads = int(os.environ.get("CPU_THREADS", "2"))
torch.set_num_threads(cpu_threads)
SIZES = [(320, 240), (640, 480)]
BATCHES = [1, 16]
gpu = torch.cuda.is_available()
try:
    import onnxruntime as ort
    providers = ort.get_available_providers()
except ImportError:
    providers = []
try:
    import tensorrt  # noqa: F401
    trt_reason = None
except ImportError as exc:
    trt_reason = f"tensorrt not importable ({exc.name})"

frames = synthetic_frames(0, 40, DEFAULT_CAMERA.resized(320, 240))  # keyframes as the node stores them
for i, f in enumerate(frames):
    f.id = i
poses = [interpolate_pose(a.T_world_cam, b.T_world_cam, 0.5) for a, b in zip(frames, frames[1:])]
cache = os.path.join(out_dir, "cache")
model, _ = load_checkpoint(DEFAULT_MODEL_PATH)
onnx_path = os.path.join(out_dir, "learned.onnx")
export_onnx(model, onnx_path, checkpoint_path=DEFAULT_MODEL_PATH)


def rows():
    no_gpu = "n/a: no CUDA GPU" if not gpu else None
    no_ort_gpu = None if "CUDAExecutionProvider" in providers else "n/a: onnxruntime has no CUDA provider"
    no_ort_trt = None if "TensorrtExecutionProvider" in providers else "n/a: onnxruntime has no TensorRT provider"
    yield "torch-CPU", dict(device="cpu", runtime="torch"), None
    yield "ORT-CPU", dict(device="cpu", runtime="onnxruntime", onnx_path=onnx_path), None
    yield "torch-CUDA", dict(device="cuda", runtime="torch"), no_gpu
    yield "ORT-CUDA", dict(device="cuda", runtime="onnxruntime", onnx_path=onnx_path), no_gpu or no_ort_gpu
    yield "ORT-TensorRT (fp16)", dict(device="cuda", runtime="onnxruntime", onnx_path=onnx_path, precision="fp16"), \
        no_gpu or no_ort_trt
    yield "TensorRT engine (fp16)", dict(device="cuda", runtime="tensorrt"), no_gpu or (
        f"n/a: {trt_reason}" if trt_reason else None)


def time_cell(renderer, width, height, batch):
    K = DEFAULT_CAMERA.resized(width, height)
    refs = [frames[max(0, i - 4):i + 5] for i in range(len(poses))]
    views = [i % len(poses) for i in range(batch)]
    render = lambda: renderer.render_batch([refs[i] for i in views], np.stack([poses[i] for i in views]), K)  # noqa: E731
    render()  # warm-up: allocations, ORT/TensorRT engine builds
    ms = []
    for r in range(repeats):
        views = [(r * batch + i) % len(poses) for i in range(batch)]
        if gpu:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        render()
        if gpu:
            torch.cuda.synchronize()
        ms.append((time.perf_counter() - t0) * 1e3 / batch)
    return float(np.median(ms))


results = {}
cols = [(w, h, b) for (w, h) in SIZES for b in BATCHES]
for label, options, reason in rows():
    row = {}
    if reason:
        row = {f"{w}x{h} b{b}": reason for (w, h, b) in cols}
    else:
        engines = {}
        for (w, h, b) in cols:
            key = f"{w}x{h} b{b}"
            try:
                opts = dict(options)
                if opts["runtime"] == "tensorrt":
                    engine = os.path.join(out_dir, f"learned_{w}x{h}_fp16.engine")
                    if engine not in engines:
                        t0 = time.perf_counter()
                        engines[engine] = build_tensorrt_engine(onnx_path, engine, fp16=True, height=h, width=w,
                                                                max_batch=max(BATCHES))
                        print(f"  TensorRT engine {w}x{h} built in {time.perf_counter() - t0:.0f} s", flush=True)
                    opts["engine_path"] = engine
                renderer = LearnedRenderer(cache_dir=cache, fallback=False, **opts)
                row[key] = time_cell(renderer, w, h, b)
                print(f"  {label} {key}: {row[key]:.2f} ms/view ({renderer.runtime.providers})", flush=True)
            except Exception as exc:  # a row that fails says why and the table goes on
                traceback.print_exc(limit=2)
                row[key] = f"failed: {type(exc).__name__}: {str(exc)[:120]}"
    results[label] = row

device = torch.cuda.get_device_name(0) if gpu else "no GPU"
header = "| runtime | " + " | ".join(f"{w}x{h} batch {b}" for (w, h, b) in cols) + " |"
lines = [f"learned renderer, ms per view end to end (warp + network), K = 8, {device}, CPU rows on "
         f"{cpu_threads} threads of {os.cpu_count()} CPUs, p50 of {repeats} batches", "", header,
         "|---" * (len(cols) + 1) + "|"]
for label, row in results.items():
    cells = [f"{v:.2f}" if isinstance(v, float) else v for v in (row[f"{w}x{h} b{b}"] for (w, h, b) in cols)]
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
table = "\n".join(lines)
print(table)
open(os.path.join(out_dir, "table.md"), "w").write(table + "\n")
json.dump({"device": device, "results": results}, open(os.path.join(out_dir, "table.json"), "w"), indent=2)
EOF
