"""Where a backend's SSIM comes from: SSIM maps of the leave-out targets split by coverage.

Runs the contract's leave-out protocol like ``worldfm-eval`` (same memory, same retrieval),
keeps each target's per-pixel SSIM map (scikit-image, 7x7 window, averaged over channels) and
reports its mean over the pixels the *geometric* renderer covers and over the rest, for the
learned and the geometric backend. The whole-image means equal ``worldfm-eval``'s SSIM. Also
the PSNR over the image's central 60 % x 60 % (pixels every colour-registration setting
renders from references: see ``--colour-focal-ratio``).

    python scripts/ssim_by_coverage.py --data ../shared/data/redkitchen_a --format 7scenes [--model M] [--colour-focal-ratio auto]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity

from worldfm_ros.core.colour_registration import register_frame, resolve_colour_focal_ratio
from worldfm_ros.core.datasets import open_dataset
from worldfm_ros.core.evaluation import frame_to_keyframe, psnr, split_leave_out
from worldfm_ros.core.memory import MemoryConfig
from worldfm_ros.core.renderers import make_renderer
from worldfm_ros.core.world_service import WorldService, WorldServiceConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--format", choices=("7scenes", "tum", "world"), required=True)
    p.add_argument("--scale", type=float, default=0.5)
    p.add_argument("--model", help="learned checkpoint (default: the shipped one)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--colour-focal-ratio", default="1", help="as worldfm-eval's (a number or 'auto')")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    frames = list(open_dataset(args.data, args.format, scale=args.scale))
    ratio, _ = resolve_colour_focal_ratio(args.colour_focal_ratio, split_leave_out(frames)[0])
    frames = [register_frame(f, ratio) for f in frames]
    width, height = frames[0].intrinsics.size
    backends = {"learned": make_renderer("learned", "cpu", **({"model_path": args.model} if args.model else {})),
                "geometric": make_renderer("geometric", "cpu")}
    config = MemoryConfig()
    world = WorldService(WorldServiceConfig(backend="learned", memory=config, keyframe_width=width,
                                            keyframe_height=height), renderer=backends["learned"])
    memory_frames, targets = split_leave_out(frames)
    for f in memory_frames:
        world.ingest(frame_to_keyframe(f))

    whole = {name: [] for name in backends}
    covered_ssim = {name: [] for name in backends}
    hole_ssim = {name: [] for name in backends}
    centre_psnr = {name: [] for name in backends}
    hole_share = []
    centre = np.zeros((height, width), bool)  # the central 60 % x 60 % of the image
    centre[height // 5:height - height // 5, width // 5:width - width // 5] = True
    for target in targets:
        maps, covered = {}, None
        for name, renderer in backends.items():
            k = renderer.references_per_view if name == "learned" else config.retrieval_k
            result = renderer.render(world.retrieve(target.T_world_cam, target.intrinsics, k),
                                     target.T_world_cam[None], target.intrinsics)
            score, ssim_map = structural_similarity(target.colour, result.rgb[0], channel_axis=2, data_range=255,
                                                    full=True)
            whole[name].append(score)
            centre_psnr[name].append(psnr(result.rgb[0], target.colour, centre))
            maps[name] = ssim_map.mean(axis=2)
            if name == "geometric":
                covered = result.covered[0]
        hole_share.append(1.0 - covered.mean())
        for name, ssim_map in maps.items():
            covered_ssim[name].append(ssim_map[covered].mean())
            if (~covered).any():
                hole_ssim[name].append(ssim_map[~covered].mean())

    share = float(np.mean(hole_share))
    print(f"{args.data}: {len(targets)} targets, pixels the geometric renderer does not cover: {100 * share:.1f} %")
    print("| backend | SSIM (whole image) | covered pixels | not covered | PSNR of the central 60 % x 60 % [dB] |")
    print("|---|---|---|---|---|")
    for name in backends:
        print(f"| {name} | {np.mean(whole[name]):.4f} | {np.mean(covered_ssim[name]):.4f} | "
              f"{np.mean(hole_ssim[name]) if hole_ssim[name] else float('nan'):.4f} | "
              f"{np.mean(centre_psnr[name]):.2f} |")
    deltas = np.array(whole["learned"]) - np.array(whole["geometric"])
    print(f"per-target SSIM learned - geometric: min {deltas.min():+.3f}, median {np.median(deltas):+.3f}, "
          f"max {deltas.max():+.3f}")


if __name__ == "__main__":
    main()
