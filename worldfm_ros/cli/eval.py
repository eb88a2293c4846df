"""``worldfm-eval``: the contract's leave-out and off-trajectory protocols, several backends side by side.

Examples::

    worldfm-eval --data ../shared/data/redkitchen_a --format 7scenes --backend geometric nearest \
        --json out/eval.json --sheet out/eval_sheet.png
    worldfm-eval --protocol offtrajectory --data ../shared/data/redkitchen_a --format 7scenes --split half \
        --backend learned geometric --json out/off.json --sheet out/off_sheet.png
    worldfm-eval --protocol offtrajectory --memory DIR_A --targets DIR_B --format 7scenes
    worldfm-eval --protocol offtrajectory --data synthetic:3 --backend learned geometric
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from tqdm import tqdm

from worldfm_ros.core.colour_registration import register_frame, resolve_colour_focal_ratio
from worldfm_ros.core.contact_sheet import contact_sheet, save_png
from worldfm_ros.core.errors import WorldFMError
from worldfm_ros.core.evaluation import evaluate, markdown_table, split_leave_out
from worldfm_ros.core.memory import INSERTION_POLICIES, RETRIEVAL_MODES, MemoryConfig
from worldfm_ros.core.offtrajectory import (DEFAULT_STRIDE, DISTANCE_BINS, distance_label, evaluate_offtrajectory,
                                            markdown_bins, split_half, strided)
from worldfm_ros.core.renderers import BACKENDS, make_renderer
from worldfm_ros.core.world_service import WorldService, WorldServiceConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="worldfm-eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="dataset folder (or world file with --format world); with --protocol "
                                  "offtrajectory also synthetic:SEED (an exact procedural world)")
    p.add_argument("--format", choices=("7scenes", "tum", "world"), help="dataset layout (not for synthetic:SEED)")
    p.add_argument("--protocol", default="leaveout", choices=("leaveout", "offtrajectory"),
                   help="leaveout (default): every 10th frame is a target; offtrajectory: a memory recording "
                        "and target views elsewhere, scored per distance / angle bin")
    p.add_argument("--memory", type=Path, help="offtrajectory: the memory recording's folder")
    p.add_argument("--targets", type=Path, help="offtrajectory: the target recording's folder")
    p.add_argument("--split", choices=("half",), help="offtrajectory with --data DIR: first half memory, second half targets")
    p.add_argument("--stride", type=int, default=DEFAULT_STRIDE,
                   help=f"offtrajectory: render every N-th target frame (default {DEFAULT_STRIDE}; "
                        "synthetic targets are all rendered)")
    p.add_argument("--synthetic-targets", type=int, default=40,
                   help="offtrajectory with synthetic:SEED: target views, spread over the distance bins")
    p.add_argument("--backend", nargs="+", default=["geometric", "nearest"], choices=BACKENDS,
                   help="backends to score side by side (default: geometric nearest)")
    p.add_argument("--json", type=Path, help="write the figures as JSON to this path")
    p.add_argument("--sheet", type=Path, help="write a contact sheet PNG (truth | each backend); offtrajectory: "
                                              "one per distance bin, named <stem>_<bin>.png")
    p.add_argument("--sheet-rows", type=int, default=6, help="targets shown on the contact sheet (per bin)")
    p.add_argument("--scale", type=float, default=0.5, help="image scale of the protocol (0.5: 640x480 -> 320x240)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--k", type=int, default=4, help="references per view (retrieval.k; a learned model with more slots gets as many as it has)")
    p.add_argument("--retrieval", default="coverage", choices=RETRIEVAL_MODES, help="reference ranking")
    p.add_argument("--insertion", default="parallax", choices=INSERTION_POLICIES, help="keyframe insertion policy")
    p.add_argument("--max-parallax", type=float, default=0.01,
                   help="parallax policy threshold, fraction of the image width")
    p.add_argument("--min-translation", type=float, default=0.05, help="pose policy threshold [m]")
    p.add_argument("--min-rotation-deg", type=float, default=5.0, help="pose policy threshold [deg]")
    p.add_argument("--model", type=Path, help="checkpoint for the learned backend (default: shipped model)")
    p.add_argument("--smooth-unseen", nargs="?", const="all", default=None, choices=("off", "disocclusion", "all"),
                   help="learned: blend pixels no reference sees towards a blur of the view: all of them, "
                        "only the gaps beside foreground edges, or none (LearnedRenderer smooth_unseen; "
                        "default: the renderer's default; the flag alone = all)")
    p.add_argument("--runtime", default="torch", choices=("torch", "onnxruntime"),
                   help="runtime of the learned backend's network (docs/deployment.md)")
    p.add_argument("--onnx", type=Path, help="ONNX export for --runtime onnxruntime (default: export the checkpoint "
                                             "into ~/.cache/worldfm_ros on first use)")
    p.add_argument("--max-frames", type=int, help="use only the first N frames (quick checks)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on a shared 2-core machine more threads stall each other)")
    p.add_argument("--colour-focal-ratio", default="1", metavar="R|auto",
                   help="colour camera focal length / the dataset's reported one (default 1: registered RGB-D, "
                        "the contract's protocol); 'auto' estimates it from the memory frames (never the targets), "
                        "e.g. about 0.89 on 7-Scenes; every backend then gets the registered frames")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def json_safe(value):
    """``value`` with every non-finite float replaced by ``None``: JSON has no NaN or Infinity
    (``json.dumps`` would write the invalid tokens ``NaN`` / ``Infinity``)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(data), indent=2, allow_nan=False))


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads))
    if args.protocol == "offtrajectory":
        return _offtrajectory(args, parser)
    if args.data is None or args.format is None:
        parser.error("the leave-out protocol needs --data DIR and --format")
    if args.memory or args.targets or args.split:
        parser.error("--memory, --targets and --split belong to --protocol offtrajectory")
    from worldfm_ros.core.datasets import open_dataset

    args.data = Path(args.data)

    try:
        frames = list(open_dataset(args.data, args.format, scale=args.scale))
        if args.max_frames:
            frames = frames[: args.max_frames]
        ratio, estimate = resolve_colour_focal_ratio(args.colour_focal_ratio, split_leave_out(frames)[0])
        if estimate is not None:
            print(f"colour focal ratio: {ratio:.4f} (estimated from {len(estimate.pairs)} pairs of memory frames)")
        if ratio != 1.0:
            frames = [register_frame(f, ratio) for f in frames]
        world, backends = _world_and_backends(args, frames[0].intrinsics.size)
        run = evaluate(
            frames, backends,
            ingest=world.ingest,
            retrieve=world.retrieve,
            keyframe_count=lambda: len(world),
            retrieval_k=args.k,
            sheet_targets=args.sheet_rows if args.sheet else 0,
            progress=(lambda it, **kw: it) if args.quiet else (lambda it, **kw: tqdm(it, file=sys.stderr, **kw)),
        )
    except (WorldFMError, ValueError, OSError) as exc:
        print(f"worldfm-eval: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.data} ({args.format}): {len(frames)} frames, "
          f"{run.scores[args.backend[0]].views} targets, insertion={args.insertion}, "
          f"retrieval={args.retrieval}, k={args.k}, colour focal ratio={ratio:g}")
    print(markdown_table(run.scores))
    if args.json:
        write_json(args.json, {n: s.as_json() for n, s in run.scores.items()})
    if args.sheet and run.sheet_rows:
        save_png(args.sheet, contact_sheet(run.sheet_rows, ["truth"] + run.backends))
        print(f"contact sheet: {args.sheet}")
    return 0


def _world_and_backends(args, keyframe_size: tuple[int, int]) -> tuple[WorldService, dict]:
    """The renderers named by ``--backend`` and the node's own world service around the first
    (same insertion policy, downscaling and retrieval), keyframes kept at ``keyframe_size``."""
    config = MemoryConfig(insertion=args.insertion, max_parallax=args.max_parallax,
                          min_translation=args.min_translation, min_rotation_deg=args.min_rotation_deg,
                          retrieval_k=args.k, retrieval=args.retrieval)
    backends = {}
    for name in args.backend:
        options = {"model_path": args.model} if (name == "learned" and args.model) else {}
        if name == "learned":  # a measurement never falls back silently: a bad runtime is an error
            options.update(runtime=args.runtime, onnx_path=args.onnx, fallback=False)
            if args.smooth_unseen is not None:
                options["smooth_unseen"] = args.smooth_unseen
        backends[name] = make_renderer(name, args.device, **options)
    width, height = keyframe_size
    world = WorldService(
        WorldServiceConfig(backend=args.backend[0], device=args.device, memory=config,
                           keyframe_width=width, keyframe_height=height),
        renderer=backends[args.backend[0]],
    )
    return world, backends


def _load_offtrajectory(args, parser):
    """``(memory frames, targets, description)`` of the off-trajectory arguments."""
    from worldfm_ros.core.datasets import open_dataset

    if args.data is not None and str(args.data).startswith("synthetic:"):
        if args.memory or args.targets or args.split:
            parser.error("synthetic:SEED makes its own memory and targets: no --memory, --targets or --split")
        try:
            seed = int(str(args.data).split(":", 1)[1])
        except ValueError:
            parser.error(f"--data {args.data}: expected synthetic:SEED with an integer seed")
        from worldfm_ros.core.synthetic.offtrajectory import offtrajectory_benchmark

        bench = offtrajectory_benchmark(seed, n_targets=args.synthetic_targets)
        return bench.memory, bench.targets, f"synthetic:{seed} ({bench.world.layout})"
    if args.format is None:
        parser.error("--format is needed for dataset folders")
    if args.data is not None:
        if args.memory or args.targets:
            parser.error("give either --data DIR --split half or --memory DIR --targets DIR")
        if args.split != "half":
            parser.error("--protocol offtrajectory with --data DIR needs --split half")
        frames = list(open_dataset(Path(args.data), args.format, scale=args.scale))
        if args.max_frames:
            frames = frames[: args.max_frames]
        memory, targets = split_half(frames)
        desc = f"{args.data} ({args.format}, split half)"
    else:
        if not (args.memory and args.targets):
            parser.error("--protocol offtrajectory needs --memory DIR --targets DIR, --data DIR --split half "
                         "or --data synthetic:SEED")
        memory = list(open_dataset(args.memory, args.format, scale=args.scale))
        targets = list(open_dataset(args.targets, args.format, scale=args.scale))
        if args.max_frames:
            memory, targets = memory[: args.max_frames], targets[: args.max_frames]
        desc = f"memory {args.memory}, targets {args.targets} ({args.format})"
    return memory, strided(targets, args.stride), desc + f", stride {args.stride}"


def _offtrajectory(args, parser) -> int:
    try:
        memory, targets, desc = _load_offtrajectory(args, parser)
        ratio, estimate = resolve_colour_focal_ratio(args.colour_focal_ratio, memory)
        if estimate is not None:
            print(f"colour focal ratio: {ratio:.4f} (estimated from {len(estimate.pairs)} pairs of memory frames)")
        if ratio != 1.0:
            memory = [register_frame(f, ratio) for f in memory]
            targets = [register_frame(f, ratio) for f in targets]
        world, backends = _world_and_backends(args, memory[0].intrinsics.size)
        run = evaluate_offtrajectory(
            memory, targets, backends,
            ingest=world.ingest,
            retrieve=world.retrieve,
            keyframe_count=lambda: len(world),
            retrieval_k=args.k,
            sheet_per_bin=args.sheet_rows if args.sheet else 0,
            progress=(lambda it, **kw: it) if args.quiet else (lambda it, **kw: tqdm(it, file=sys.stderr, **kw)),
        )
    except (WorldFMError, ValueError, OSError) as exc:
        print(f"worldfm-eval: error: {exc}", file=sys.stderr)
        return 2
    print(f"off-trajectory: {desc}: {len(memory)} memory frames, {len(targets)} targets, "
          f"{run.keyframes} keyframes, insertion={args.insertion}, retrieval={args.retrieval}, k={args.k}")
    print(markdown_bins(run))
    if args.json:
        write_json(args.json, run.as_json())
    if args.sheet:
        labels = ["truth"] + run.backends
        for lo, hi in DISTANCE_BINS:
            rows = run.sheet_rows.get(distance_label(lo, hi))
            if rows:
                path = args.sheet.with_name(f"{args.sheet.stem}_{distance_label(lo, hi)}{args.sheet.suffix or '.png'}")
                save_png(path, contact_sheet(rows, labels))
                print(f"contact sheet: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
