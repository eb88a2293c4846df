"""A scripted policy that explores a remembered world through the Gymnasium API and avoids
collisions: it looks at the rendered depth, drives towards the most open direction ahead and
turns in place when the way ahead is closer than a safety distance.

    .venv/bin/python examples/explore_gym.py                        # built-in synthetic world
    .venv/bin/python examples/explore_gym.py --world kitchen.world --steps 2000 --map-png out/explore.png

Prints the distance driven, the floor area the robot's camera has covered (cells of the
world's occupancy map seen in the rendered depth) and the collisions (0 is the goal).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np

import worldfm_ros.gym  # noqa: F401 - registers WorldFM-v0
from worldfm_ros.gym import build_synthetic_world

#: Nearest depth [m] ahead (central columns) at which the robot stops going forward and turns.
SAFETY_DISTANCE = 0.6


def open_direction(depth: np.ndarray) -> tuple[float, float]:
    """``(clearance ahead [m], steer in [-1, 1])`` from a rendered depth image ``[H, W]``: the
    robot steers towards the image third (left, centre, right) with the farthest free depth.
    Unknown depth (0) counts as near: the policy does not drive into what it cannot see."""
    h, w = depth.shape
    band = depth[h // 3 : 2 * h // 3]  # rows around the horizon
    near = np.where(band > 0, band, 0.0)
    thirds = [near[:, i * w // 3 : (i + 1) * w // 3] for i in range(3)]
    # 10th percentile: the closest sizeable obstacle in each third.
    reach = [float(np.percentile(t, 10)) for t in thirds]
    centre = near[:, 2 * w // 5 : 3 * w // 5]
    ahead = float(np.percentile(centre, 5))
    steer = (reach[0] - reach[2]) / max(reach[0] + reach[2], 1e-6)  # image left = robot left
    return ahead, steer


def policy(obs: dict, rng: np.random.Generator, turning: list) -> np.ndarray:
    """``[v, w]``: forward while the way ahead is clear, else turn in place (keeping one turn
    direction until clear, so the robot does not dither)."""
    ahead, steer = open_direction(obs["depth"])
    if ahead < SAFETY_DISTANCE:
        if not turning[0]:
            turning[0] = 1.0 if steer >= 0 else -1.0
        return np.array([0.0, 0.8 * turning[0]], np.float32)
    turning[0] = 0.0
    return np.array([min(0.4, 0.3 * ahead), 0.6 * steer + rng.normal(0, 0.1)], np.float32)


def explore(world_path: str, steps: int, seed: int, width: int = 128, height: int = 96) -> dict:
    """Run the policy for ``steps`` steps (new episode after a collision or ``max_steps``)."""
    env = gym.make("WorldFM-v0", world_path=world_path, width=width, height=height, max_steps=steps)
    occupancy = env.unwrapped.world.occupancy_map
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    seen = set()
    trajectory = [info["T_world_base"][:2, 3].copy()]
    collisions, distance, turning = 0, 0.0, [0.0]
    for _ in range(steps):
        obs, _, terminated, truncated, info = env.step(policy(obs, rng, turning))
        xy = info["T_world_base"][:2, 3].copy()
        distance += float(np.linalg.norm(xy - trajectory[-1]))
        trajectory.append(xy)
        seen |= _seen_cells(obs["depth"], info["T_world_base"], env.unwrapped.robot, occupancy.resolution)
        if terminated:
            collisions += 1
        if terminated or truncated:
            obs, info = env.reset()
            trajectory.append(info["T_world_base"][:2, 3].copy())
    env.close()
    return {"steps": steps, "distance_m": distance, "seen_m2": len(seen) * occupancy.resolution**2,
            "collisions": collisions, "trajectory": np.array(trajectory), "occupancy": occupancy}


def _seen_cells(depth: np.ndarray, T_world_base: np.ndarray, robot, resolution: float) -> set:
    """Map cells of the floor plan hit by the observed depth (every 4th pixel)."""
    K = robot.intrinsics
    v, u = np.mgrid[0 : depth.shape[0] : 4, 0 : depth.shape[1] : 4]
    z = depth[v, u]
    ok = z > 0
    cam = np.stack([(u[ok] - K.cx) / K.fx * z[ok], (v[ok] - K.cy) / K.fy * z[ok], z[ok]])
    T = robot.camera_pose(T_world_base)
    xy = (T[:2, :3] @ cam + T[:2, 3:4]).T
    return set(map(tuple, np.floor(xy / resolution).astype(np.int64)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", help="world file (default: build the synthetic world of --seed in a temp dir)")
    p.add_argument("--seed", type=int, default=3, help="synthetic world seed and policy seed")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--map-png", type=Path, help="write the map with the driven trajectory here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        world = args.world
        if world is None:
            world = str(Path(tmp) / "synthetic.world")
            n = build_synthetic_world(world, seed=args.seed)
            print(f"built synthetic world {args.seed}: {n} keyframes")
        result = explore(world, args.steps, args.seed)
    print(f"{result['steps']} steps: drove {result['distance_m']:.1f} m, saw {result['seen_m2']:.1f} m2 of floor "
          f"plan, {result['collisions']} collisions")
    if args.map_png:
        result["occupancy"].save_png(args.map_png, trajectory=result["trajectory"])
        print(f"map: {args.map_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
