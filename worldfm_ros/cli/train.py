"""``worldfm-train``: train the learned renderer's frame model, or fine-tune it on a site's logs.

From scratch on synthetic worlds generated on the fly (how the shipped model was made)::

    worldfm-train --out runs/synth --minutes 50 --seed 0

Per-site fine-tuning from a robot's own posed RGB-D logs (world file or 7-Scenes/TUM folder;
the leave-out protocol's targets are excluded unless --include-eval-targets)::

    worldfm-train --init worldfm_ros/models/learned_v2.pt --data site.world --format world \
        --minutes 30 --out runs/site --export site_model.pt

Writes ``OUT/last.pt`` (resumable; rerunning the same command continues), ``best.pt``,
``model.pt``, ``log.csv`` and ``learning_curve.png``. See docs/learned.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from worldfm_ros.core.errors import WorldFMError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="worldfm-train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/train"), help="output folder (checkpoints, logs)")
    p.add_argument("--steps", type=int, default=100_000, help="optimisation steps")
    p.add_argument("--minutes", type=float, help="wall-time budget [min] (stops at steps or minutes)")
    p.add_argument("--batch", type=int, default=4, help="samples per step")
    p.add_argument("--crop", type=int, nargs=2, default=(128, 160), metavar=("H", "W"),
                   help="training crop [px]; 0 0 = whole frames")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--seed", type=int, default=0, help="seeds worlds, samples and weights")
    p.add_argument("--data", type=Path, nargs="*", default=[], help="posed RGB-D sources (folders or world files)")
    p.add_argument("--format", choices=("7scenes", "tum", "world"), help="layout of every --data source")
    p.add_argument("--scale", type=float,
                   help="image scale of --data (default: 0.5 for 7scenes/tum, i.e. 640x480 -> the protocol's "
                        "320x240; 1 for world files, whose keyframes are stored at the node's size)")
    p.add_argument("--colour-focal-ratio", default="1", metavar="R|auto",
                   help="colour camera focal / the sources' reported one (1: registered RGB-D; 'auto': estimated "
                        "per source from its frames, e.g. about 0.89 on 7-Scenes); see worldfm-eval")
    p.add_argument("--include-eval-targets", action="store_true",
                   help="also train on the leave-out protocol's targets (positions i %% 10 == 5)")
    p.add_argument("--synthetic", choices=("auto", "on", "off"), default="auto",
                   help="synthetic worlds: auto = on unless --data is given")
    p.add_argument("--synthetic-fraction", type=float, default=0.5, help="share of synthetic samples with --data")
    p.add_argument("--pool-size", type=int, default=6, help="synthetic scenes held at once")
    p.add_argument("--exact-fraction", type=float, default=0.25,
                   help="share of synthetic scenes without the simulated sensor")
    p.add_argument("--loss", choices=("mse", "log-mse"), default="mse",
                   help="mse: 20 MSE over the batch; log-mse: mean over samples of 0.02 ln(MSE), i.e. mean PSNR "
                        "(both plus --ssim-weight (1 - SSIM))")
    p.add_argument("--ssim-weight", type=float, default=0.1, help="weight of 1 - SSIM in the loss")
    p.add_argument("--refresh-every", type=int, default=50, help="steps between new synthetic worlds")
    p.add_argument("--val-every", type=int, default=200, help="steps between validations")
    p.add_argument("--ckpt-every", type=int, default=100, help="steps between resumable checkpoints")
    p.add_argument("--val-scenes", type=int, default=2, help="synthetic validation worlds")
    p.add_argument("--init", type=Path, help="start from this checkpoint (fine-tuning)")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT/last.pt exists")
    p.add_argument("--export", type=Path, help="copy the final weights (OUT/model.pt) here")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--k", type=int, default=8, help="reference slots of a fresh model")
    p.add_argument("--ref-channels", type=int, default=16, help="per-reference feature width of a fresh model")
    p.add_argument("--widths", type=int, nargs=4, default=(16, 24, 32, 48), help="U-Net widths of a fresh model")
    p.add_argument("--refine-channels", type=int, default=12,
                   help="full-resolution refinement width of a fresh model (0 = none)")
    p.add_argument("--global-context", action="store_true",
                   help="a fresh model's U-Net adds its deepest features' image mean back (image-level context)")
    p.add_argument("--misalignment-input", action="store_true",
                   help="a fresh model gets the view's estimated reference misalignment as an input")
    p.add_argument("--offtrack", type=int, default=0,
                   help="off-trajectory targets per synthetic world (0-0.8 m off the path, turned up to 60 deg)")
    p.add_argument("--offtrack-fraction", type=float, default=0.6,
                   help="share of synthetic samples with an off-trajectory target (with --offtrack)")
    p.add_argument("--pushpull-fill", action="store_true",
                   help="holes get the references' push-pull continuation plus a learned correction (a fresh "
                        "model, or added to an --init model that lacks it)")
    p.add_argument("--pushpull-full-resolution", action="store_true",
                   help="with --pushpull-fill: the continuation at full resolution, not on the working samples")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from worldfm_ros.learned.model import ModelConfig
    from worldfm_ros.learned.training import TrainConfig, train

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data and not args.format:
        print("worldfm-train: error: --data needs --format", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("worldfm-train: error: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    synthetic = args.synthetic == "on" or (args.synthetic == "auto" and not args.data)
    crop = None if tuple(args.crop) == (0, 0) else tuple(args.crop)
    scale = args.scale if args.scale is not None else (1.0 if args.format == "world" else 0.5)
    try:
        config = TrainConfig(
            out_dir=args.out, steps=args.steps, minutes=args.minutes, batch=args.batch, crop=crop, lr=args.lr,
            seed=args.seed, synthetic=synthetic, data=[(p, args.format) for p in args.data],
            data_scale=scale, exclude_eval_targets=not args.include_eval_targets,
            colour_focal_ratio=args.colour_focal_ratio,
            synthetic_fraction=args.synthetic_fraction, pool_size=args.pool_size, exact_fraction=args.exact_fraction,
            loss=args.loss, ssim_weight=args.ssim_weight,
            refresh_every=args.refresh_every, val_every=args.val_every, ckpt_every=args.ckpt_every,
            val_scenes=args.val_scenes, init=args.init, resume=not args.no_resume, device=args.device,
            model=ModelConfig(k=args.k, ref_channels=args.ref_channels, widths=tuple(args.widths),
                              refine_channels=args.refine_channels, global_context=args.global_context,
                              misalignment_input=args.misalignment_input, pushpull_fill=args.pushpull_fill,
                              pushpull_full_resolution=args.pushpull_full_resolution),
            offtrack=args.offtrack, offtrack_fraction=args.offtrack_fraction, pushpull_fill=args.pushpull_fill,
            pushpull_full_resolution=args.pushpull_full_resolution,
        )
        result = train(config, progress=not args.quiet, log=lambda m: print(m, file=sys.stderr, flush=True))
    except (WorldFMError, ValueError, OSError) as exc:
        print(f"worldfm-train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"worldfm-train: interrupted; rerun the same command to resume from {args.out / 'last.pt'}",
              file=sys.stderr)
        return 130
    f = result["figures"]
    print(f"steps {result['steps']}, {result['elapsed_s'] / 60:.1f} min; validation PSNR {f['val_psnr']:.2f} dB "
          f"(blend {f['val_blend_psnr']:.2f}), SSIM {f['val_ssim']:.4f} (blend {f['val_blend_ssim']:.4f})")
    if args.export:
        args.export.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result["model"], args.export)
        print(f"exported {args.export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
