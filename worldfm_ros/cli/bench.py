"""``worldfm-bench``: speed and size figures of the core, printed side by side.

Prints, for a built-in synthetic world (or ``--data`` 7-Scenes/TUM frames):

* ms/view p50 and p95 at 320x240 and 640x480 with K = 4 references, per backend
  (``nearest`` is the floor every other backend is compared with, as a ratio);
* ingest rate: frames/s through the node's insertion path (downscale + policy + anchors);
* retrieval time at 100, 1,000 and 10,000 keyframes (constant keyframe density, so the
  explored area grows with the count, as it does on a robot);
* bytes per keyframe in memory and in a world file.

Timings are wall-clock on whatever else the machine is doing: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.memory import KeyframeMemory, MemoryConfig
from worldfm_ros.core.renderers import BACKENDS, make_renderer
from worldfm_ros.core.world_service import WorldService, WorldServiceConfig

#: Full-resolution camera of the built-in world (a Kinect-like 640x480 RGB-D camera).
DEFAULT_CAMERA = Intrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=640, height=480)


def _percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def synthetic_frames(seed: int, n_frames: int, intrinsics: Intrinsics) -> list[Keyframe]:
    """Posed RGB-D frames along a loop through a procedural world (exact colour + depth)."""
    from worldfm_ros.core.synthetic import SyntheticWorld
    from worldfm_ros.core.synthetic.trajectory import plan_loop

    world = SyntheticWorld.generate(seed)
    traj = plan_loop(world, seed, n_frames)
    frames = []
    for T, stamp in zip(traj.T_world_cam, traj.stamps):
        colour, depth = world.render(T, intrinsics)
        frames.append(Keyframe(colour, depth, intrinsics, T, float(stamp)))
    return frames


def dataset_frames(path: Path, fmt: str, limit: int) -> list[Keyframe]:
    from worldfm_ros.core.datasets import open_dataset

    frames = []
    for i, f in enumerate(open_dataset(path, fmt)):
        if i >= limit:
            break
        frames.append(f.to_keyframe())
    return frames


def bench_ingest(frames: list[Keyframe]) -> tuple[WorldService, float]:
    """Feed every frame through the world service; returns it and frames/s."""
    world = WorldService(WorldServiceConfig(backend="nearest"))
    t0 = time.perf_counter()
    for f in frames:
        world.ingest(f)
    return world, len(frames) / (time.perf_counter() - t0)


def bench_render(world: WorldService, targets: list[np.ndarray], camera: Intrinsics, backends: list[str],
                 sizes: list[tuple[int, int]], repeats: int, device: str, runtimes: tuple = ("torch",),
                 models: tuple = (None,)) -> dict:
    """ms/view (retrieval + render, one view per call) per backend and size. The learned
    backend is measured once per runtime and checkpoint (``learned[onnxruntime]``,
    ``learned[learned_v4]``, ...; plain ``learned`` for torch and the shipped model alone).
    Renderers take turns pass by pass (each renders all targets, then the next), so load
    from other jobs hits them alike while each runs as it would alone: turns view by view
    made a renderer pay for the one before it (PyTorch's OpenMP threads still spinning, the
    other runtime's caches): geometric took 9.7 ms a 320x240 view in turns with the learned
    backend and 5.3-5.9 ms alone (docs/learned.md, session 9)."""
    out: dict = {}
    for width, height in sizes:
        K = camera.resized(width, height)
        entries = []  # (label, renderer, references per view)
        for name in backends:
            variants = [(r, m) for r in runtimes for m in models] if name == "learned" else [(None, None)]
            for runtime, model in variants:
                options = {"runtime": runtime, "fallback": False} if runtime else {}
                tags = [runtime] if runtime and tuple(runtimes) != ("torch",) else []
                if model:
                    options["model_path"] = str(model)
                    tags.append(Path(model).stem)
                label = f"{name}[{', '.join(tags)}]" if tags else name
                renderer = make_renderer(name, device, **options)
                entries.append((label, renderer, world.references_per_view(renderer)))
        for _, renderer, k in entries:
            renderer.render(world.retrieve(targets[0], K, k), targets[0][None], K)  # warm-up (allocations, caches)
        ms = {label: [] for label, _, _ in entries}
        cpu_ms = {label: [] for label, _, _ in entries}
        for _ in range(repeats):
            for label, renderer, k in entries:
                for T in targets:
                    t0, c0 = time.perf_counter(), time.process_time()
                    refs = world.retrieve(T, K, k)
                    renderer.render(refs, T[None], K)
                    ms[label].append((time.perf_counter() - t0) * 1e3)
                    cpu_ms[label].append((time.process_time() - c0) * 1e3)
        for label, _, _ in entries:
            p50, p95 = _percentiles(ms[label])
            out[f"{label}@{width}x{height}"] = {"p50_ms": p50, "p95_ms": p95,
                                                "cpu_p50_ms": float(np.median(cpu_ms[label])), "views": len(ms[label])}
    return out


def _tiny_keyframe(T: np.ndarray, rng: np.random.Generator) -> Keyframe:
    K = Intrinsics(fx=40.0, fy=40.0, cx=31.5, cy=23.5, width=64, height=48)
    depth = rng.uniform(0.5, 4.0, (48, 64)).astype(np.float32)
    return Keyframe(np.zeros((48, 64, 3), np.uint8), depth, K, T)


def _random_camera(rng: np.random.Generator, extent: float) -> np.ndarray:
    yaw = rng.uniform(-math.pi, math.pi)
    fwd = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    T = np.eye(4)
    T[:3, 0] = [math.sin(yaw), -math.cos(yaw), 0.0]
    T[:3, 1] = [0.0, 0.0, -1.0]
    T[:3, 2] = fwd
    T[:3, 3] = [rng.uniform(0, extent), rng.uniform(0, extent), 0.5]
    return T


def bench_retrieval(counts: list[int], queries: int, seed: int = 0, density_per_m2: float = 4.0) -> dict:
    """Median retrieval time [ms] at each keyframe count, coverage ranking and pose baseline."""
    out = {}
    query_K = DEFAULT_CAMERA.resized(320, 240)
    for n in counts:
        rng = np.random.default_rng(seed)
        extent = math.sqrt(n / density_per_m2)
        memory = KeyframeMemory(MemoryConfig(max_keyframes=max(n, 1)))
        for _ in range(n):
            memory.add(_tiny_keyframe(_random_camera(rng, extent), rng))
        poses = [_random_camera(rng, extent) for _ in range(queries)]
        row = {}
        for mode in ("coverage", "pose"):
            memory.config = MemoryConfig(max_keyframes=max(n, 1), retrieval=mode)
            ms = []
            for T in poses:
                t0 = time.perf_counter()
                memory.retrieve(T, query_K)
                ms.append((time.perf_counter() - t0) * 1e3)
            row[f"{mode}_p50_ms"], row[f"{mode}_p95_ms"] = _percentiles(ms)
        out[n] = row
    return out


def bench_bytes(world: WorldService) -> dict:
    frames = world.keyframes()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.world")
        world.save(path)
        disk = os.path.getsize(path)
    return {
        "keyframes": len(frames),
        "memory_bytes_per_keyframe": world.memory_bytes / max(1, len(frames)),
        "disk_bytes_per_keyframe": disk / max(1, len(frames)),
        "keyframe_size": f"{frames[0].intrinsics.width}x{frames[0].intrinsics.height}" if frames else "-",
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="worldfm-bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", nargs="+", default=["nearest", "geometric"], choices=BACKENDS)
    p.add_argument("--data", type=Path, help="use these frames instead of the built-in synthetic world")
    p.add_argument("--format", default="7scenes", choices=("7scenes", "tum", "world"))
    p.add_argument("--frames", type=int, default=150, help="frames fed to the memory")
    p.add_argument("--targets", type=int, default=20, help="render targets per size")
    p.add_argument("--repeats", type=int, default=3, help="passes over the targets per size")
    p.add_argument("--retrieval-counts", type=int, nargs="+", default=[100, 1000, 10000])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--runtime", nargs="+", default=["torch"], choices=("torch", "onnxruntime"),
                   help="runtimes of the learned backend, measured side by side (docs/deployment.md)")
    p.add_argument("--model", nargs="+", type=Path, default=[None],
                   help="checkpoints of the learned backend, measured side by side (default: the shipped one)")
    p.add_argument("--sizes", nargs="+", default=["320x240", "640x480"], help="render sizes WxH")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on a shared 2-core machine more threads stall each other)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.data:
        frames = dataset_frames(args.data, args.format, args.frames)
        source = f"{args.data} ({args.format})"
    else:
        frames = synthetic_frames(args.seed, args.frames, DEFAULT_CAMERA)
        source = f"synthetic world seed {args.seed}"
    camera = frames[0].intrinsics
    print(f"source: {source}, {len(frames)} frames at {camera.width}x{camera.height}, "
          f"{os.cpu_count()} CPUs visible", flush=True)

    world, ingest_fps = bench_ingest(frames)
    print(f"ingest: {ingest_fps:.1f} frames/s through the insertion path "
          f"({len(world)} keyframes kept of {len(frames)})", flush=True)

    # Targets halfway between consecutive memory frames: never exactly a keyframe's pose.
    targets = []
    for a, b in zip(frames[::max(1, len(frames) // args.targets)], frames[1::max(1, len(frames) // args.targets)]):
        from worldfm_ros.core.pose import interpolate_pose

        targets.append(interpolate_pose(a.T_world_cam, b.T_world_cam, 0.5))
    targets = targets[: args.targets]
    sizes = [tuple(int(v) for v in size.lower().split("x")) for size in args.sizes]
    render = bench_render(world, targets, camera, args.backend, sizes, args.repeats, args.device, tuple(args.runtime),
                          tuple(args.model))
    print(f"\nload average while rendering: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(CPU ms: all threads of this process, a proxy that other jobs disturb less)")
    print("| backend @ size | p50 ms/view | p95 ms/view | p50 CPU ms/view | x nearest (p50) | x geometric (p50) |\n"
          "|---|---|---|---|---|---|")
    for key, row in render.items():
        name, size = key.split("@")
        ratios = []
        for base in ("nearest", "geometric"):  # measured in this run, views interleaved
            floor = render.get(f"{base}@{size}")
            ratios.append(f"{row['p50_ms'] / floor['p50_ms']:.2f}x" if floor else "-")
        print(f"| {key} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | {row['cpu_p50_ms']:.2f} | {' | '.join(ratios)} |")

    retrieval = bench_retrieval(args.retrieval_counts, queries=50, seed=args.seed)
    print("\n| keyframes | retrieval p50 ms (coverage) | p95 | retrieval p50 ms (pose) | p95 |\n|---|---|---|---|---|")
    for n, row in retrieval.items():
        print(f"| {n} | {row['coverage_p50_ms']:.2f} | {row['coverage_p95_ms']:.2f} "
              f"| {row['pose_p50_ms']:.2f} | {row['pose_p95_ms']:.2f} |")

    size = bench_bytes(world)
    print(f"\nbytes per keyframe ({size['keyframe_size']}): {size['memory_bytes_per_keyframe']:.0f} in memory, "
          f"{size['disk_bytes_per_keyframe']:.0f} on disk ({size['keyframes']} keyframes)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "source": source, "ingest_fps": ingest_fps, "render": render,
            "retrieval": {str(k): v for k, v in retrieval.items()}, "bytes": size,
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
