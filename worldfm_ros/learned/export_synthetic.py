"""Write a synthetic robot sequence as a 7-Scenes folder, so ``worldfm-eval`` scores any backend
on worlds with exact ground truth under the contract's leave-out protocol::

    python -m worldfm_ros.learned.export_synthetic --seed 3 --out /tmp/synth3
    worldfm-eval --data /tmp/synth3 --format 7scenes --backend learned geometric nearest

Frames: the default robot loop of world ``seed`` (:func:`plan_loop`: camera 0.6 m high,
0.3 m/s at 15 Hz), one loop at most (so no target pose repeats a memory pose), rendered
exactly at 640x480 (fx = fy = 525) with ``supersample`` samples per pixel; colour as PNG, depth
as uint16 millimetres, ``pose.txt`` = ``T_world_cam``. Seeds below
:data:`worldfm_ros.learned.data.TRAIN_SEED_BASE` are never used for training.

``--sensor-strength S`` (> 0) instead writes the training generator's kind of sequence for
that seed (:func:`worldfm_ros.learned.data.synthetic_scene` at 640x480: random loops, a
simulated Kinect-like sensor of strength ``S``, drifting poses), i.e. an unseen world seen
through an imperfect sensor.
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


def export_sequence(seed: int, out: Path, n_frames: int = 250, supersample: int = 1,
                    sensor_strength: float = 0.0) -> int:
    """Write the sequence; returns the number of frames written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if sensor_strength > 0:
        from worldfm_ros.learned.data import synthetic_scene

        scene = synthetic_scene(int(seed), width=CAMERA.width, height=CAMERA.height, n_frames=n_frames,
                                sensor_strength=float(sensor_strength), supersample=supersample)
        views = [(f.colour, f.depth, f.T_world_cam) for f in scene.frames]
        np.savetxt(out / "camera-intrinsics.txt", scene.frames[0].intrinsics.matrix, fmt="%.6f")
    else:
        from worldfm_ros.core.synthetic.generate import generate_world
        from worldfm_ros.core.synthetic.trajectory import plan_loop

        world = generate_world(int(seed))
        traj = plan_loop(world, int(seed), n_frames)
        poses = traj.T_world_cam[: min(n_frames, traj.period)]
        views = ((*world.render(T, CAMERA, supersample=supersample), T) for T in poses)
        np.savetxt(out / "camera-intrinsics.txt", CAMERA.matrix, fmt="%.6f")
    n = 0
    for i, (colour, depth, T) in enumerate(views):
        n += 1
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
    p.add_argument("--sensor-strength", type=float, default=0.0,
                   help="> 0: the training generator's sequence with a simulated sensor of this strength")
    args = p.parse_args(argv)
    n = export_sequence(args.seed, args.out, args.frames, args.supersample, args.sensor_strength)
    print(f"wrote {n} frames of synthetic world {args.seed} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
