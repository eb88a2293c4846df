"""Write a synthetic robot sequence as a 7-Scenes folder, so ``worldfm-eval`` scores any backend
on worlds with exact ground truth under the contract's leave-out protocol::

    python -m worldfm_ros.learned.export_synthetic --seed 3 --out /tmp/synth3
    worldfm-eval --data /tmp/synth3 --format 7scenes --backend learned geometric nearest

Frames: the default robot loop of world ``seed`` (:func:`plan_loop`: camera 0.6 m high,
0.3 m/s at 15 Hz), one loop at most (so no target pose repeats a memory pose), rendered
exactly at 640x480 (fx = fy = 525) with ``supersample`` samples per pixel; colour as PNG, depth
as uint16 millimetres, ``pose.txt`` = ``T_world_cam``. Seeds below
:data:`worldfm_ros.learned.data.TRAIN_SEED_BASE` are never used for training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from worldfm_ros.core.camera import Intrinsics

#: The Kinect-like camera of the exported sequences (640x480).
CAMERA = Intrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=640, height=480)


def export_sequence(seed: int, out: Path, n_frames: int = 250, supersample: int = 1) -> int:
    """Write the sequence; returns the number of frames written."""
    from worldfm_ros.core.synthetic.generate import generate_world
    from worldfm_ros.core.synthetic.trajectory import plan_loop

    world = generate_world(int(seed))
    traj = plan_loop(world, int(seed), n_frames)
    n = min(n_frames, traj.period)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.savetxt(out / "camera-intrinsics.txt", CAMERA.matrix, fmt="%.6f")
    for i in range(n):
        T = traj.T_world_cam[i]
        colour, depth = world.render(T, CAMERA, supersample=supersample)
        stem = out / f"frame-{i:06d}"
        cv2.imwrite(str(stem) + ".color.png", colour[..., ::-1])
        mm = np.clip(np.round(depth * 1000.0), 0, 65534).astype(np.uint16)
        cv2.imwrite(str(stem) + ".depth.png", mm)
        np.savetxt(str(stem) + ".pose.txt", T, fmt="%.9f")
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m worldfm_ros.learned.export_synthetic", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, required=True, help="world seed (< 900000 = never trained on)")
    p.add_argument("--out", type=Path, required=True, help="output folder (7-Scenes layout)")
    p.add_argument("--frames", type=int, default=250, help="frames (capped at one loop)")
    p.add_argument("--supersample", type=int, default=1, help="samples per pixel side")
    args = p.parse_args(argv)
    n = export_sequence(args.seed, args.out, args.frames, args.supersample)
    print(f"wrote {n} frames of synthetic world {args.seed} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
