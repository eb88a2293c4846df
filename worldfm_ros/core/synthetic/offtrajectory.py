"""A synthetic off-trajectory benchmark: a memory recording along part of a robot loop, and
target views that leave it, all rendered exactly (ground truth is the world itself).

Targets (``worldfm-eval --data synthetic:SEED --protocol offtrajectory``), each placed
relative to a memory camera by moving its robot base and re-attaching the camera:

* ``turn``: at most 0.1 m beside a memory pose, heading turned by up to 60 deg;
* ``lateral``: 0.1-0.8 m sideways or ahead of a memory pose, heading changed by up to
  60 deg, camera height changed by up to +-0.2 m;
* ``unrecorded``: poses of the part of the loop the memory recording does not contain
  (the robot drives on where the recording stopped: places, and in two-room worlds the
  room beyond the doorway, the memory saw only from elsewhere), heading changed by up to
  30 deg and height by up to +-0.2 m.

Targets are drawn bin by bin (:data:`worldfm_ros.core.offtrajectory.DISTANCE_BINS`, by the
distance to the nearest memory camera centre), so every distance bin gets about the same
number of views; all lie in free space (at least ``margin`` from walls and furniture).
Seeded: the same seed and options give the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.synthetic.generate import generate_world
from worldfm_ros.core.synthetic.scene import SyntheticWorld
from worldfm_ros.core.synthetic.sequence import default_intrinsics
from worldfm_ros.core.synthetic.trajectory import base_pose, plan_loop

#: Distance bins [m] the targets are spread over (the protocol's).
TARGET_DISTANCE_BINS = ((0.0, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, 0.8))
#: Largest heading change of a target [deg].
MAX_TURN_DEG = 60.0
#: Largest camera height change of a target [m].
MAX_HEIGHT_CHANGE = 0.2


@dataclass(eq=False)
class SyntheticFrame:
    """A posed RGB-D frame (the dataset readers' fields) with exact colour and depth."""

    colour: np.ndarray  # uint8 [H, W, 3]
    depth: np.ndarray  # float32 [H, W] z-depth [m]
    intrinsics: Intrinsics
    T_world_cam: np.ndarray  # float64 [4, 4]
    stamp: float
    index: int
    kind: str = "memory"  # memory | turn | lateral | unrecorded


@dataclass
class OffTrajectoryBenchmark:
    """The memory recording and the targets of one world."""

    world: SyntheticWorld
    memory: list  # [SyntheticFrame]
    targets: list  # [SyntheticFrame]
    camera_to_base: np.ndarray


def target_pose(T_world_base: np.ndarray, camera_to_base: np.ndarray, *, forward: float = 0.0,
                left: float = 0.0, turn_deg: float = 0.0, up: float = 0.0) -> np.ndarray:
    """Camera pose ``[4, 4]`` of a robot base moved ``forward`` / ``left`` [m] in its own
    frame, turned by ``turn_deg`` about the vertical, its camera raised by ``up`` [m]."""
    T = T_world_base @ base_pose(forward, left, math.radians(turn_deg))
    T = T.copy()
    T[2, 3] += up
    return T @ camera_to_base


def offtrajectory_benchmark(seed: int, *, n_targets: int = 40, memory_fraction: float = 0.7,
                            memory_step: int = 2, intrinsics: Optional[Intrinsics] = None,
                            supersample: int = 2, margin: float = 0.25,
                            world: Optional[SyntheticWorld] = None) -> OffTrajectoryBenchmark:
    """Memory and targets of world ``seed`` (see the module docstring).

    Args:
        seed: world seed (and the seed of the loop and the targets).
        n_targets: target views, spread evenly over the distance bins.
        memory_fraction: share of one loop the memory recording drives.
        memory_step: loop frames (2 cm apart) per memory frame.
        intrinsics: of every frame; default :func:`default_intrinsics` (320x240).
        supersample: samples per pixel side of the exact renders.
        margin: smallest floor distance of a target camera to walls and furniture [m].
        world: the world of ``seed`` if already generated.

    Raises ``ValueError`` for bad arguments or a world without a loop.
    """
    if not 0.1 <= memory_fraction <= 0.95:
        raise ValueError(f"memory_fraction must be in [0.1, 0.95], got {memory_fraction!r}")
    if isinstance(n_targets, bool) or not isinstance(n_targets, (int, np.integer)) or n_targets < 1:
        raise ValueError(f"n_targets must be a positive integer, got {n_targets!r}")
    if isinstance(memory_step, bool) or not isinstance(memory_step, (int, np.integer)) or memory_step < 1:
        raise ValueError(f"memory_step must be a positive integer, got {memory_step!r}")
    world = generate_world(int(seed)) if world is None else world
    K = default_intrinsics() if intrinsics is None else intrinsics
    loop = plan_loop(world, int(seed), 1)
    loop = plan_loop(world, int(seed), loop.period)  # exactly one loop
    period = loop.period
    n_memory = max(2, int(period * memory_fraction))
    memory_index = np.arange(0, n_memory, memory_step)
    unrecorded = np.arange(n_memory, period)
    memory_cams = loop.T_world_cam[memory_index]
    centres = memory_cams[:, :3, 3]
    lo, hi = world.bounds

    rng = np.random.default_rng([int(seed), 0x0FF7])
    poses, kinds = [], []
    for t in range(int(n_targets)):
        b_lo, b_hi = TARGET_DISTANCE_BINS[t % len(TARGET_DISTANCE_BINS)]
        for _ in range(500):
            turn = float(rng.uniform(-MAX_TURN_DEG, MAX_TURN_DEG))
            up = float(rng.uniform(-MAX_HEIGHT_CHANGE, MAX_HEIGHT_CHANGE))
            if b_hi <= 0.1:
                kind = "turn"
                i = int(memory_index[rng.integers(len(memory_index))])
                r = float(rng.uniform(0.0, 0.1))
                phi = float(rng.uniform(0, 2 * math.pi))
                T = target_pose(loop.T_world_base[i], loop.camera_to_base, forward=r * math.cos(phi),
                                left=r * math.sin(phi), turn_deg=turn, up=up * r / 0.1)
            elif len(unrecorded) and rng.random() < 0.35:
                kind = "unrecorded"
                i = int(unrecorded[rng.integers(len(unrecorded))])
                T = target_pose(loop.T_world_base[i], loop.camera_to_base, turn_deg=turn / 2.0, up=up)
            else:
                kind = "lateral"
                i = int(memory_index[rng.integers(len(memory_index))])
                r = float(rng.uniform(b_lo, b_hi))
                phi = float(rng.uniform(-math.pi, math.pi))  # any direction, mostly sideways below
                T = target_pose(loop.T_world_base[i], loop.camera_to_base, forward=0.5 * r * math.cos(phi),
                                left=r * math.sin(phi), turn_deg=turn, up=up)
            d = float(np.min(np.linalg.norm(centres - T[:3, 3], axis=1)))
            inside = lo[2] + 0.1 < T[2, 3] < hi[2] - 0.1
            if b_lo <= d < b_hi and inside and bool(world.is_free(T[None, :2, 3], margin=margin)[0]):
                poses.append(T)
                kinds.append(kind)
                break
    memory = []
    for j, i in enumerate(memory_index):
        colour, depth = world.render(loop.T_world_cam[i], K, supersample=supersample)
        memory.append(SyntheticFrame(colour, depth, K, loop.T_world_cam[i].copy(), float(loop.stamps[i]), j))
    targets = []
    for j, (T, kind) in enumerate(zip(poses, kinds)):
        colour, depth = world.render(T, K, supersample=supersample)
        targets.append(SyntheticFrame(colour, depth, K, T, float(j), j, kind))
    return OffTrajectoryBenchmark(world, memory, targets, loop.camera_to_base.copy())
