"""``worldfm-eval``: the contract's leave-out protocol, several backends side by side.

Example::

    worldfm-eval --data ../shared/data/redkitchen_a --format 7scenes --backend geometric nearest \
        --json out/eval.json --sheet out/eval_sheet.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from worldfm_ros.core.colour_registration import register_frame, resolve_colour_focal_ratio
from worldfm_ros.core.contact_sheet import contact_sheet, save_png
from worldfm_ros.core.errors import WorldFMError
from worldfm_ros.core.evaluation import evaluate, markdown_table, split_leave_out
from worldfm_ros.core.memory import INSERTION_POLICIES, RETRIEVAL_MODES, MemoryConfig
from worldfm_ros.core.renderers import BACKENDS, make_renderer
from worldfm_ros.core.world_service import WorldService, WorldServiceConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="worldfm-eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="dataset folder (or world file with --format world)")
    p.add_argument("--format", required=True, choices=("7scenes", "tum", "world"), help="dataset layout")
    p.add_argument("--backend", nargs="+", default=["geometric", "nearest"], choices=BACKENDS,
                   help="backends to score side by side (default: geometric nearest)")
    p.add_argument("--json", type=Path, help="write the figures as JSON to this path")
    p.add_argument("--sheet", type=Path, help="write a contact sheet PNG (truth | each backend)")
    p.add_argument("--sheet-rows", type=int, default=6, help="targets shown on the contact sheet")
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
    p.add_argument("--max-frames", type=int, help="use only the first N frames (quick checks)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on a shared 2-core machine more threads stall each other)")
    p.add_argument("--colour-focal-ratio", default="1", metavar="R|auto",
                   help="colour camera focal length / the dataset's reported one (default 1: registered RGB-D, "
                        "the contract's protocol); 'auto' estimates it from the memory frames (never the targets), "
                        "e.g. about 0.89 on 7-Scenes; every backend then gets the registered frames")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from worldfm_ros.core.datasets import open_dataset

    torch.set_num_threads(max(1, args.threads))

    try:
        frames = list(open_dataset(args.data, args.format, scale=args.scale))
        if args.max_frames:
            frames = frames[: args.max_frames]
        ratio, estimate = resolve_colour_focal_ratio(args.colour_focal_ratio, split_leave_out(frames)[0])
        if estimate is not None:
            print(f"colour focal ratio: {ratio:.4f} (estimated from {len(estimate.pairs)} pairs of memory frames)")
        if ratio != 1.0:
            frames = [register_frame(f, ratio) for f in frames]
        config = MemoryConfig(insertion=args.insertion, max_parallax=args.max_parallax,
                              min_translation=args.min_translation, min_rotation_deg=args.min_rotation_deg,
                              retrieval_k=args.k, retrieval=args.retrieval)
        backends = {}
        for name in args.backend:
            options = {"model_path": args.model} if (name == "learned" and args.model) else {}
            backends[name] = make_renderer(name, args.device, **options)
        # The node's own world service: same insertion policy, downscaling and retrieval.
        width, height = frames[0].intrinsics.size
        world = WorldService(
            WorldServiceConfig(backend=args.backend[0], device=args.device, memory=config,
                               keyframe_width=width, keyframe_height=height),
            renderer=backends[args.backend[0]],
        )
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
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({n: s.as_json() for n, s in run.scores.items()}, indent=2))
    if args.sheet and run.sheet_rows:
        save_png(args.sheet, contact_sheet(run.sheet_rows, ["truth"] + run.backends))
        print(f"contact sheet: {args.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
