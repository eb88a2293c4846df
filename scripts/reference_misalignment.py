"""How much worse a single reference's warp gets with its pose distance to the target.

For targets of the leave-out protocol (a 7-Scenes/TUM folder) or frames of a simulated
sequence (``learned.data.synthetic_scene``), each of the 8 references the node would retrieve
is warped alone into the target (bicubic, through the target depth splatted from all of them),
and compared with the target: PSNR over the target pixels it reaches (occlusions included), and the median DIS optical
flow from the warp to the target (a global misplacement in pixels). Printed per bucket of the
memory's pose score (metres / 0.3 + degrees / 20, scaled by 0.1 as in ``pose_score``).

``--colour-focal-ratio R`` (folders only) warps as if the colour camera's focal length were
``R`` times the reported (depth) one, the depth still looked up in the depth camera's grid:
7-Scenes reports the depth camera's 585 px, Kinect v1's colour camera has about 525 px (0.897).

    python scripts/reference_misalignment.py --data ../shared/data/redkitchen_a
    python scripts/reference_misalignment.py --data ../shared/data/redkitchen_a --colour-focal-ratio 0.897
    python scripts/reference_misalignment.py --synthetic 1000123 --strength 1 --unregistered-share 1
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from worldfm_ros.core.evaluation import psnr
from worldfm_ros.learned.warp import fill_depth, pose_score, target_depth

BUCKETS = ((0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.5), (0.5, 1.0), (1.0, 9.0))


def warp_one(ref, target, depth: np.ndarray, focal_ratio: float = 1.0):
    """``(colour [H, W, 3], mask [H, W])``: ``ref``'s colour at the target's pixels."""
    intr = target.intrinsics
    uu, vv = np.meshgrid(np.arange(intr.width, dtype=np.float32), np.arange(intr.height, dtype=np.float32))
    if focal_ratio != 1.0:  # target pixel = colour pixel; its depth from the (narrower) depth grid
        ud = (intr.cx + (uu - intr.cx) / focal_ratio).astype(np.float32)
        vd = (intr.cy + (vv - intr.cy) / focal_ratio).astype(np.float32)
        depth = cv2.remap(depth.astype(np.float32), ud, vd, cv2.INTER_NEAREST, borderValue=0)
    rays = np.stack([(uu - intr.cx) / (intr.fx * focal_ratio), (vv - intr.cy) / (intr.fy * focal_ratio),
                     np.ones_like(uu)], -1)
    K = ref.intrinsics.matrix.copy()
    K[:2, :2] *= focal_ratio
    P = K @ (np.linalg.inv(ref.T_world_cam) @ target.T_world_cam)[:3]
    proj = (rays * depth[..., None]) @ P[:, :3].T + P[:, 3]
    z = np.maximum(proj[..., 2], 1e-3)
    u, v = (proj[..., 0] / z).astype(np.float32), (proj[..., 1] / z).astype(np.float32)
    colour = cv2.remap(ref.colour, u, v, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    # The same mask for every focal ratio: target depth known and the sample inside the reference.
    mask = (depth > 0) & (u > 2) & (v > 2) & (u < intr.width - 3) & (v < intr.height - 3)
    return colour, mask


def measure(pairs, focal_ratio: float = 1.0) -> np.ndarray:
    """Rows ``(pose score, median flow [px], PSNR [dB])`` for ``(target, references)`` pairs."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    rows = []
    for target, refs in pairs:
        depth = fill_depth(target_depth(refs, target.T_world_cam, target.intrinsics)).numpy()
        grey = cv2.cvtColor(target.colour, cv2.COLOR_RGB2GRAY)
        for ref in refs:
            colour, mask = warp_one(ref, target, depth, focal_ratio)
            if mask.mean() < 0.3:
                continue
            flow = dis.calc(cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY), grey, None)
            inner = cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
            shift = float(np.linalg.norm(np.median(flow[inner], 0)))
            rows.append((pose_score(ref.T_world_cam, target.T_world_cam), shift,
                         psnr(np.where(mask[..., None], colour, target.colour), target.colour)))
    return np.array(rows)


def folder_pairs(path: str, fmt: str, every: int):
    from worldfm_ros.core.datasets import open_dataset
    from worldfm_ros.core.evaluation import frame_to_keyframe, split_leave_out
    from worldfm_ros.core.memory import MemoryConfig
    from worldfm_ros.core.renderers import make_renderer
    from worldfm_ros.core.world_service import WorldService, WorldServiceConfig
    from worldfm_ros.learned.warp import select_references

    frames = list(open_dataset(path, fmt, scale=0.5))
    memory, targets = split_leave_out(frames)
    W, H = frames[0].intrinsics.size
    service = WorldService(WorldServiceConfig(backend="geometric", memory=MemoryConfig(retrieval_k=8),
                                              keyframe_width=W, keyframe_height=H),
                           renderer=make_renderer("geometric", "cpu"))
    for frame in memory:
        service.ingest(frame_to_keyframe(frame))
    for t in targets[::every]:
        yield t, select_references(service.retrieve(t.T_world_cam, t.intrinsics), t.T_world_cam, 8)


def synthetic_pairs(seed: int, strength: float, share: float, every: int):
    from worldfm_ros.learned.data import synthetic_scene

    scene = synthetic_scene(seed, sensor_strength=strength, realism={"unregistered_share": share})
    for i in range(0, len(scene.frames), every):
        yield scene.frames[i], scene.references(i, 8)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="7-Scenes or TUM folder")
    src.add_argument("--synthetic", type=int, metavar="SEED", help="a simulated training sequence")
    p.add_argument("--format", default="7scenes")
    p.add_argument("--colour-focal-ratio", type=float, default=1.0)
    p.add_argument("--strength", type=float, default=1.0, help="simulated sensor strength")
    p.add_argument("--unregistered-share", type=float, default=0.5, help="chance of an unregistered rig")
    p.add_argument("--every", type=int, default=4, help="use every n-th target")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    if args.data:
        pairs = folder_pairs(args.data, args.format, args.every)
    else:
        if args.colour_focal_ratio != 1.0:
            p.error("--colour-focal-ratio applies to --data only")
        pairs = synthetic_pairs(args.synthetic, args.strength, args.unregistered_share, args.every)
    rows = measure(pairs, args.colour_focal_ratio)
    print("| pose score | pairs | median shift [px] | PSNR [dB] |\n|---|---|---|---|")
    for lo, hi in BUCKETS:
        sel = rows[(rows[:, 0] >= lo) & (rows[:, 0] < hi)] if len(rows) else rows
        if len(sel):
            print(f"| {lo:.1f}-{hi:.1f} | {len(sel)} | {sel[:, 1].mean():.2f} | {sel[:, 2].mean():.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
