"""Speed of WorldFM-v0: a single env and the batched vector env, in one run.

    .venv/bin/python scripts/bench_gym.py                      # built-in synthetic world
    .venv/bin/python scripts/bench_gym.py --world kitchen.world --num-envs 16 --json out/bench_gym.json

Each env steps with random actions (autoreset on collision / truncation) after a warm-up
(numba compilation, caches). Prints steps per second of the single env, env-steps per second
of the batched vector env (all views in one ``WorldService.render_batch`` call), of
Gymnasium's ``SyncVectorEnv`` over as many single envs (one render call per env) and the
ratios; timings on a shared machine are noisy, the ratios less so.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import worldfm_ros.gym  # noqa: F401 - registers WorldFM-v0
from worldfm_ros.gym import WorldFMEnv, WorldFMVectorEnv, build_synthetic_world
from worldfm_ros.gym.robot import load_world


def single_rate(world, steps: int, warmup: int, width: int, height: int) -> float:
    env = gym.make("WorldFM-v0", world=world, width=width, height=height)
    env.reset(seed=0)
    env.action_space.seed(0)
    t0 = 0.0
    for k in range(warmup + steps):
        if k == warmup:
            t0 = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - t0)


def vector_rate(world, num_envs: int, steps: int, warmup: int, width: int, height: int, batched: bool = True) -> float:
    if batched:
        envs = WorldFMVectorEnv(num_envs, world=world, width=width, height=height)
    else:  # Gymnasium's SyncVectorEnv: the envs step (and render) one after another
        envs = gym.vector.SyncVectorEnv([lambda: WorldFMEnv(world=world, width=width, height=height)] * num_envs)
    envs.reset(seed=0)
    envs.action_space.seed(0)
    t0 = 0.0
    for k in range(warmup + steps):
        if k == warmup:
            t0 = time.perf_counter()
        envs.step(envs.action_space.sample())
    return num_envs * steps / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world", help="world file (default: the synthetic world of --seed, built in a temp dir)")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--backend", default="geometric")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--steps", type=int, default=300, help="timed single-env steps (vector: steps / 4 batches)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.world
        if path is None:
            path = str(Path(tmp) / "synthetic.world")
            build_synthetic_world(path, seed=args.seed)
        world = load_world(path, backend=args.backend)
    single = single_rate(world, args.steps, 20, args.width, args.height)
    batches = max(5, args.steps // 4)
    vector = vector_rate(world, args.num_envs, batches, 3, args.width, args.height)
    sync = vector_rate(world, args.num_envs, batches, 3, args.width, args.height, batched=False)
    single_again = single_rate(world, args.steps // 2, 5, args.width, args.height)  # drift check
    result = {"backend": world.backend, "width": args.width, "height": args.height, "keyframes": len(world),
              "single_steps_per_s": single, "single_steps_per_s_after": single_again,
              "num_envs": args.num_envs, "vector_env_steps_per_s": vector,
              "sync_vector_env_steps_per_s": sync, "vector_over_single": vector / single,
              "vector_over_sync": vector / sync}
    print(f"world: {len(world)} keyframes, backend {world.backend}, {args.width}x{args.height}")
    print(f"single env:            {single:8.1f} steps/s (again after the vector run: {single_again:.1f})")
    print(f"batched vector env x{args.num_envs}: {vector:8.1f} env-steps/s  ({vector / single:.2f}x the single env)")
    print(f"SyncVectorEnv x{args.num_envs}:        {sync:8.1f} env-steps/s  (batched / sync: {vector / sync:.2f}x)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
