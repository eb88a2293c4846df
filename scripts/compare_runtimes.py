"""The learned backend through two runtimes on the leave-out protocol, pixel by pixel.

Both runtimes render every target of one memory (the node's world service, as worldfm-eval
does) from the same references; prints each one's PSNR / SSIM and how many pixels agree
within one 8-bit level (all channels). The acceptance figure of docs/deployment.md::

    .venv/bin/python scripts/compare_runtimes.py --data ../shared/data/redkitchen_a --format 7scenes \
        --runtime torch onnxruntime --threads 2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


class _Recorder:
    """A renderer that keeps every image it rendered (the evaluation's renderer API)."""

    def __init__(self, renderer):
        self.renderer = renderer
        self.name = renderer.name
        self.references_per_view = renderer.references_per_view
        self.images: list[np.ndarray] = []

    def render(self, references, T_world_cam, intrinsics):
        result = self.renderer.render(references, T_world_cam, intrinsics)
        self.images.append(result.rgb.copy())
        return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--format", default="7scenes", choices=("7scenes", "tum", "world"))
    p.add_argument("--runtime", nargs=2, default=["torch", "onnxruntime"])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--scale", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-frames", type=int)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    import torch

    from worldfm_ros.core.datasets import open_dataset
    from worldfm_ros.core.evaluation import evaluate
    from worldfm_ros.core.memory import MemoryConfig
    from worldfm_ros.core.renderers import make_renderer
    from worldfm_ros.core.world_service import WorldService, WorldServiceConfig

    torch.set_num_threads(max(1, args.threads))
    frames = list(open_dataset(args.data, args.format, scale=args.scale))[: args.max_frames]
    backends = {f"learned[{r}]": _Recorder(make_renderer("learned", args.device, runtime=r, fallback=False))
                for r in args.runtime}
    width, height = frames[0].intrinsics.size
    world = WorldService(WorldServiceConfig(backend="nearest", memory=MemoryConfig(retrieval_k=4),
                                            keyframe_width=width, keyframe_height=height))
    run = evaluate(frames, backends, ingest=world.ingest, retrieve=world.retrieve, keyframe_count=lambda: len(world),
                   retrieval_k=4)
    (name_a, a), (name_b, b) = backends.items()
    ia, ib = np.concatenate(a.images).astype(np.int16), np.concatenate(b.images).astype(np.int16)
    diff = np.abs(ia - ib).max(axis=-1)
    report = {
        "views": int(len(ia)),
        "pixels_within_1_255": float((diff <= 1).mean()),
        "pixels_equal": float((diff == 0).mean()),
        "max_level_difference": int(diff.max()),
        **{name: s.as_json() for name, s in run.scores.items()},
    }
    for name, s in run.scores.items():
        print(f"{name}: PSNR {s.psnr:.3f} dB, SSIM {s.ssim:.4f}, {s.views} views, {s.ms_per_view:.1f} ms/view")
    print(f"{name_b} vs {name_a}: {100 * report['pixels_within_1_255']:.4f} % of pixels within 1/255 "
          f"({100 * report['pixels_equal']:.3f} % equal, largest difference {report['max_level_difference']} levels), "
          f"PSNR difference {run.scores[name_b].psnr - run.scores[name_a].psnr:+.4f} dB")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
