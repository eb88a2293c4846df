"""How much any fill of never-seen pixels could win on the synthetic off-trajectory benchmark.

For every target of ``worldfm-eval --protocol offtrajectory --data synthetic:SEED`` (the same
memory, targets, world service and renderers), the learned render is scored as it is and with
its never-seen pixels (``covered`` false) replaced by *oracles* that know the ground truth:

* ``mean``: the true mean colour of the view's never-seen pixels (the best flat fill);
* ``blur48`` / ``blur16``: the truth blurred with a Gaussian of 48 / 16 px (a fill that knows
  the never-seen content's layout at that scale);
* ``truth``: the true pixels (the seen pixels' error is all that is left).

No renderer can compute these; they bound what a better continuation of the surfaces could
win (issue 12, docs/learned.md "Session 10"). Prints the mean PSNR over the targets and each
row's margin over the geometric renderer::

    .venv/bin/python scripts/unseen_headroom.py 3 7 11 23
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def _psnr(image: np.ndarray, truth: np.ndarray) -> float:
    mse = float(((image.astype(np.float64) - truth.astype(np.float64)) ** 2).mean())
    return 10.0 * np.log10(255.0 ** 2 / max(mse, 1e-10))


def headroom(seed: int, n_targets: int = 40) -> dict[str, float]:
    """Mean PSNR [dB] over the seed's targets of the learned render, the geometric one and the
    learned render with each oracle fill; plus the never-seen fraction."""
    import cv2
    import torch

    from worldfm_ros.cli.eval import _world_and_backends, build_parser
    from worldfm_ros.core.offtrajectory import frame_to_keyframe
    from worldfm_ros.core.renderers.base import references_per_view
    from worldfm_ros.core.synthetic.offtrajectory import offtrajectory_benchmark

    torch.set_num_threads(1)
    args = build_parser().parse_args(["--protocol", "offtrajectory", "--data", f"synthetic:{seed}",
                                      "--backend", "learned", "geometric"])
    bench = offtrajectory_benchmark(seed, n_targets=n_targets)
    world, backends = _world_and_backends(args, bench.memory[0].intrinsics.size)
    for frame in bench.memory:
        world.ingest(frame_to_keyframe(frame))
    learned, geometric = backends["learned"], backends["geometric"]
    rows: dict[str, list[float]] = {}
    for target in bench.targets:
        pose, K, truth = np.asarray(target.T_world_cam), target.intrinsics, target.colour
        # the references each renderer gets in the evaluation
        res = learned.render(world.retrieve(pose, K, references_per_view(learned, args.k)), pose[None], K)
        geo = geometric.render(world.retrieve(pose, K, references_per_view(geometric, args.k)), pose[None], K).rgb[0]
        image, unseen = res.rgb[0].astype(np.float32), ~res.covered[0]
        truth_f = truth.astype(np.float32)
        fills = {"mean": np.broadcast_to(truth_f[unseen].mean(axis=0) if unseen.any() else 0, truth_f.shape),
                 "blur48": cv2.GaussianBlur(truth_f, (0, 0), 48), "blur16": cv2.GaussianBlur(truth_f, (0, 0), 16),
                 "truth": truth_f}
        rows.setdefault("geometric", []).append(_psnr(geo, truth))
        rows.setdefault("learned", []).append(_psnr(image, truth))
        rows.setdefault("never-seen fraction", []).append(float(unseen.mean()))
        for name, fill in fills.items():
            oracle = image.copy()
            oracle[unseen] = fill[unseen]
            rows.setdefault(f"learned + oracle {name}", []).append(_psnr(np.round(oracle), truth))
    return {name: float(np.mean(values)) for name, values in rows.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("seeds", type=int, nargs="+", help="synthetic off-trajectory seeds")
    p.add_argument("--targets", type=int, default=40, help="targets per seed (worldfm-eval's default: 40)")
    args = p.parse_args(argv)
    for seed in args.seeds:
        result = headroom(seed, args.targets)
        base = result["geometric"]
        print(f"\nseed {seed}: never-seen fraction {result.pop('never-seen fraction'):.3f}")
        print("| row | PSNR [dB] | - geometric [dB] |\n|---|---|---|")
        for name, value in result.items():
            print(f"| {name} | {value:.2f} | {value - base:+.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
