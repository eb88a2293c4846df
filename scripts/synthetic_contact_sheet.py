#!/usr/bin/env python3
"""Save a PNG contact sheet of synthetic worlds (colour and depth along each world's robot
loop) and print the render time per view, to eyeball what the generator produces.

    python scripts/synthetic_contact_sheet.py --seeds 0 1 2 3 --out /tmp/sheet.png
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from worldfm_ros.core.synthetic import SyntheticWorld, default_intrinsics, plan_loop


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--views", type=int, default=4, help="views per world, spread along its loop")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--supersample", type=int, default=1)
    parser.add_argument("--max-depth", type=float, default=6.0, help="depth shown as the brightest colour [m]")
    parser.add_argument("--out", default="synthetic_sheet.png")
    args = parser.parse_args(argv)

    K = default_intrinsics(args.width, args.height)
    rows = []
    for seed in args.seeds:
        world = SyntheticWorld.generate(seed)
        loop = plan_loop(world, seed, 5000)
        poses = loop.T_world_cam[np.linspace(0, loop.period - 1, args.views).astype(int)]
        start = time.perf_counter()
        colour, depth = world.render(poses, K, supersample=args.supersample)
        ms = (time.perf_counter() - start) / len(poses) * 1000
        print(f"seed {seed}: {world.layout}, {len(world.boxes)} boxes, {len(world.cylinders)} cylinders, "
              f"loop {loop.length:.1f} m / {loop.period} frames, {ms:.1f} ms/view")
        rows.append(np.concatenate(list(colour), axis=1))
        scaled = (np.clip(depth / args.max_depth, 0, 1) * 255).astype(np.uint8)
        rows.append(np.concatenate([cv2.applyColorMap(d, cv2.COLORMAP_VIRIDIS)[..., ::-1] for d in scaled], axis=1))
    cv2.imwrite(args.out, np.concatenate(rows, axis=0)[..., ::-1])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
