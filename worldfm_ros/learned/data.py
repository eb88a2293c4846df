"""Training data for the frame model: scenes of posed RGB-D frames, memories built from them
by the package's own insertion policy, and (target, references) samples warped for the model.

Two kinds of scene:

* :func:`synthetic_scene` - a procedural world of :mod:`worldfm_ros.core.synthetic` driven
  along a random robot loop (random camera height, pitch, roll, field of view, speed and
  look-around), rendered exactly and passed through a random :class:`SensorModel`
  (misregistration, depth noise and holes, exposure, blur, JPEG) with slow drifts of pose
  (a tracker's error: the frame is rendered at the true pose but stored with the drifted
  one) and exposure, so references close in time agree better than distant ones, as on a
  real robot. Ground truth is exact.
* :func:`dataset_scene` - any posed RGB-D source :func:`worldfm_ros.core.datasets.open_dataset`
  reads (7-Scenes / TUM folders, world files): self-supervised leave-one-out, i.e. a frame is
  rendered from the *other* frames' keyframes and compared with itself. With
  ``exclude_eval_targets`` the frames the leave-out protocol scores (positions ``i % 10 == 5``,
  :func:`worldfm_ros.core.evaluation.split_leave_out`) are dropped entirely.

A sample's references come from the same retrieval the node uses
(:meth:`KeyframeMemory.retrieve`, coverage-greedy, ``k`` references), minus the target itself.

*Off-trajectory* targets (``synthetic_scene(..., offtrack=N)``): views where the robot did not
drive, as the simulator renders them: a path frame's robot base moved 0-0.8 m (drawn evenly
over the protocol's distance bins, :data:`OFFTRACK_DISTANCE_BINS`), turned by up to 60 deg
and its camera raised or lowered by up to 0.2 m, in free space. They are rendered like the
path frames (same rig, sensor and drifts) but never enter the memories; their references are
what the node would retrieve at that pose, far and disagreeing ones included.

Seeds: training worlds use :data:`TRAIN_SEED_BASE` + n, validation worlds
:data:`VALIDATION_SEED_BASE` + n; seeds below :data:`TRAIN_SEED_BASE` (e.g. the demo and test
worlds 0-99) are never trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.evaluation import is_target
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.memory import KeyframeMemory, MemoryConfig
from worldfm_ros.learned.sensor import SensorModel, smooth_drift
from worldfm_ros.learned.warp import WarpBundle, warp_references

#: First world seed used for training (seeds below it are never trained on).
TRAIN_SEED_BASE = 1_000_000
#: First world seed of the validation worlds.
VALIDATION_SEED_BASE = 900_000
#: Memory policies training samples are drawn from: the node's default and a sparser one.
MEMORY_CONFIGS = (MemoryConfig(), MemoryConfig(min_translation=0.12, min_rotation_deg=12.0))


@dataclass
class Sample:
    """One training example: the model input and the true target colour."""

    bundle: WarpBundle  # B = 1
    target: torch.Tensor  # [1, 3, H, W] in [0, 1]

    @staticmethod
    def stack(samples: Sequence["Sample"]) -> "Sample":
        return Sample(WarpBundle.stack([s.bundle for s in samples]), torch.cat([s.target for s in samples]))

    def crop(self, y0: int, x0: int, h: int, w: int) -> "Sample":
        return Sample(self.bundle.crop(y0, x0, h, w), self.target[..., y0:y0 + h, x0:x0 + w])


@dataclass
class Scene:
    """Index-ordered frames of one sequence and memories built from them.

    Attributes:
        frames: the sequence; ``frames[i].extras["index"] == i``.
        name: for logs.
        memories: one per memory policy, fed in order through the insertion policy with every
            frame except ``held_out``.
        held_out: frame positions kept out of the memories (validation targets).
    """

    frames: list
    name: str
    memories: list = field(default_factory=list)
    held_out: frozenset = frozenset()
    offtrack: frozenset = frozenset()  # off-trajectory targets (also in held_out)

    @staticmethod
    def build(frames: Sequence[Keyframe], name: str, held_out=(), configs=MEMORY_CONFIGS, offtrack=()) -> "Scene":
        frames = list(frames)
        for i, f in enumerate(frames):
            f.extras["index"] = i
        offtrack = frozenset(offtrack)
        held = frozenset(held_out) | offtrack
        memories = []
        for config in configs:
            memory = KeyframeMemory(config)
            for i, f in enumerate(frames):
                if i not in held:  # each memory holds its own Keyframe objects (ids are per memory)
                    memory.consider(Keyframe(f.colour, f.depth, f.intrinsics, f.T_world_cam, f.stamp,
                                             extras={"index": i}))
            memories.append(memory)
        return Scene(frames, name, memories, held, offtrack)

    def references(self, index: int, k: int, memory: int = 0) -> list[Keyframe]:
        """The ``k`` references the node would retrieve for frame ``index``, itself excluded."""
        target = self.frames[index]
        if index in self.held_out:  # not in the memories: exactly the node's retrieval
            return self.memories[memory].retrieve(target.T_world_cam, target.intrinsics, k=k)
        refs = self.memories[memory].retrieve(target.T_world_cam, target.intrinsics, k=k + 1)
        return [r for r in refs if r.extras.get("index") != index][:k]


def _rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    T = np.eye(4)
    T[1:3, 1:3] = [[c, -s], [s, c]]
    return T


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    T = np.eye(4)
    T[:2, :2] = [[c, -s], [s, c]]
    return T


def _small_motion(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """``[4, 4]`` rigid motion: rotation vector [rad] (Rodrigues) and translation [m]."""
    import cv2

    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(np.asarray(rotation, np.float64).reshape(3, 1))[0]
    T[:3, 3] = translation
    return T


#: Upper ends of the slow drifts and the rig's colour-depth baseline at sensor strength 1:
#: pose drift [m] and [deg], exposure drift (log gain), colour camera offset [m], colour focal
#: error (relative), colour principal point error [px], share of unregistered rigs and their
#: colour focal deficit (relative, centre of a +-50 % range).
#: Distance bins [m] off-trajectory targets are drawn from (evenly per bin), by the distance
#: of the camera centre from the nearest path camera.
OFFTRACK_DISTANCE_BINS = ((0.0, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, 0.8))
#: Largest heading change [deg] and camera height change [m] of an off-trajectory target.
OFFTRACK_MAX_TURN_DEG = 60.0
OFFTRACK_MAX_HEIGHT = 0.2


def offtrack_poses(world, T_world_base: np.ndarray, camera_to_base: np.ndarray, n: int,
                   rng: np.random.Generator, margin: float = 0.25) -> list[tuple[np.ndarray, int]]:
    """``n`` off-trajectory camera poses ``(T_world_cam [4, 4], index of the path frame it
    left)`` around a path of base poses ``T_world_base [N, 4, 4]`` (see the module docstring);
    fewer when free space is scarce."""
    from worldfm_ros.core.synthetic.trajectory import base_pose

    cams = T_world_base @ camera_to_base
    centres = cams[:, :3, 3]
    lo, hi = world.bounds
    out = []
    for t in range(n):
        b_lo, b_hi = OFFTRACK_DISTANCE_BINS[int(rng.integers(len(OFFTRACK_DISTANCE_BINS)))]
        for _ in range(100):
            i = int(rng.integers(len(T_world_base)))
            r = float(rng.uniform(b_lo, b_hi))
            phi = float(rng.uniform(-math.pi, math.pi))
            turn = math.radians(rng.uniform(-OFFTRACK_MAX_TURN_DEG, OFFTRACK_MAX_TURN_DEG))
            if rng.random() < 0.25:  # small turns are common on a robot: draw them more often
                turn *= 0.3
            T = T_world_base[i] @ base_pose(r * math.cos(phi), r * math.sin(phi), turn)
            T[2, 3] += float(rng.uniform(-OFFTRACK_MAX_HEIGHT, OFFTRACK_MAX_HEIGHT)) * min(1.0, r / 0.1)
            T = T @ camera_to_base
            d = float(np.min(np.linalg.norm(centres - T[:3, 3], axis=1)))
            if (b_lo <= d < b_hi and lo[2] + 0.1 < T[2, 3] < hi[2] - 0.1
                    and bool(world.is_free(T[None, :2, 3], margin=margin)[0])):
                out.append((T, i))
                break
    return out


REALISM = {"drift_t": 0.04, "drift_r_deg": 1.5, "drift_exposure": 0.12, "colour_baseline": 0.035,
           "colour_focal": 0.03, "colour_centre": 2.0, "unregistered_share": 0.5, "unregistered_focal": 0.1}


def synthetic_scene(seed: int, *, width: int = 320, height: int = 240, n_frames: int = 100,
                    sensor_strength: Optional[float] = None, supersample: int = 2, held_out=(),
                    realism: Optional[dict] = None, exact_fraction: float = 0.25, offtrack: int = 0) -> Scene:
    """A random robot sequence through procedural world ``seed`` (see the module docstring).

    Frames are rendered with ``supersample`` x ``supersample`` samples per pixel: a real camera
    integrates over the pixel, point-sampled textures alias.

    ``sensor_strength``: 0 = exact frames, 1 = Kinect-like; ``None`` draws it (a share
    ``exact_fraction`` of the scenes exact, the others between 0.3 and 1.2). ``offtrack``:
    off-trajectory targets appended after the path frames (see the module docstring; drawn
    from their own generator, so the path frames are the same bytes with or without them).
    Raises ``ValueError`` when no loop fits the world.
    """
    from worldfm_ros.core.synthetic.generate import generate_world
    from worldfm_ros.core.synthetic.trajectory import DEFAULT_CAMERA_TO_BASE, plan_loop

    rng = np.random.default_rng([int(seed), 0x7EA1])
    world = generate_world(int(seed))
    f = rng.uniform(0.8, 1.05) * width
    K = Intrinsics(f, f, (width - 1) / 2 + rng.normal(0, 2), (height - 1) / 2 + rng.normal(0, 2), width, height)
    # One or two passes through the world on different loops (camera height, pitch, speed,
    # look-around): the second pass revisits places seen from elsewhere, so retrieval mixes
    # near and far references as on a robot that comes back.
    passes = 1 if rng.random() < 0.4 else 2
    poses, stamps, clock = [], [], []  # clock: frame time of the drifts (a gap between passes)
    bases, rigs = [], []  # per path frame: base pose and camera_to_base (off-trajectory targets)
    for p in range(passes):
        camera_to_base = DEFAULT_CAMERA_TO_BASE @ _rot_x(-rng.uniform(-0.15, 0.45)) @ _rot_z(rng.normal(0, 0.05))
        try:
            traj = plan_loop(world, int(seed) + 7919 * p, 400, camera_height=float(rng.uniform(0.35, 1.5)),
                             speed=float(rng.uniform(0.15, 0.45)), camera_to_base=camera_to_base,
                             yaw_wobble=float(rng.uniform(0.0, 0.5)))
        except ValueError:
            traj = plan_loop(world, int(seed) + 7919 * p, 400)
        stride = int(rng.integers(1, 3))  # 1-2 loop frames per stored frame: 1-6 cm apart
        span = min(traj.period, len(traj.T_world_cam))
        m = min(n_frames // passes, span // stride)  # one loop at most: no repeated pose
        if span == traj.period:  # a whole loop: start anywhere, wrap around
            index = (int(rng.integers(span)) + stride * np.arange(m)) % span
        else:
            index = int(rng.integers(span - stride * (m - 1))) + stride * np.arange(m)
        poses += list(traj.T_world_cam[index])
        bases += list(traj.T_world_base[index])
        rigs += [traj.camera_to_base] * len(index)
        offset = stamps[-1] + 1.0 if stamps else 0.0
        stamps += list(offset + np.arange(m) * stride / 15.0)
        clock += list(p * (n_frames + 150) + np.arange(m))
    n = len(poses)
    n_path = n
    if offtrack:
        off_rng = np.random.default_rng([int(seed), 0x0FF7, 1])
        bases_a = np.stack(bases)
        for T, i in offtrack_poses(world, bases_a, rigs[0], int(offtrack), off_rng):
            # Keep the path frame's rig: re-attach with its own camera_to_base.
            T = T @ np.linalg.inv(rigs[0]) @ rigs[i]
            poses.append(T)
            stamps.append(stamps[i])
            clock.append(clock[i])
        n = len(poses)
    if sensor_strength is None:
        sensor_strength = 0.0 if rng.random() < exact_fraction else float(rng.uniform(0.3, 1.2))
    sensor = SensorModel.draw(rng, sensor_strength)
    # Slow drifts (strength-scaled): pose error as a tracker's, auto-exposure.
    s = float(sensor_strength)
    r = dict(REALISM, **(realism or {}))
    span = max(clock) + 1  # off-trajectory targets reuse their path frame's clock
    drift_t = smooth_drift(rng, span, 3, rng.uniform(0.0, r["drift_t"]) * s)[clock]  # [m]
    drift_r = smooth_drift(rng, span, 3, math.radians(rng.uniform(0.0, r["drift_r_deg"])) * s)[clock]  # [rad]
    drift_exposure = smooth_drift(rng, span, 1, rng.uniform(0.0, r["drift_exposure"]) * s)[clock]
    # Kinect-like rig: the colour camera sits a few cm beside the depth camera whose pose is
    # reported, so colour and depth disagree by a depth-dependent parallax.
    direction = rng.normal(0, 1, 3) * (1.0, 0.3, 0.3)
    colour_offset = _small_motion(rng.normal(0, math.radians(0.3) * s, 3),
                                  direction / np.linalg.norm(direction) * rng.uniform(0.0, r["colour_baseline"]) * s)
    # ... and has its own calibration, while the depth camera's is the one reported. Half the
    # rigs are unregistered Kinect-v1-like ones whose colour camera is wider than the depth
    # camera (Kinect v1: colour 525 px, depth 585 px; 7-Scenes reports only the depth's): a
    # warp then misplaces colour by about the focal difference times the rotation, so the
    # nearest references are much better than the others.
    if rng.random() < r["unregistered_share"]:
        f_c = f * (1.0 - rng.uniform(0.5, 1.5) * r["unregistered_focal"] * s)
    else:
        f_c = f * (1.0 + rng.uniform(-1, 1) * r["colour_focal"] * s)
    K_colour = Intrinsics(f_c, f_c * (1.0 + rng.normal(0, 0.003 * s)), K.cx + rng.normal(0, r["colour_centre"] * s),
                          K.cy + rng.normal(0, r["colour_centre"] * s), width, height)
    frames = []
    for i in range(n):
        T = poses[i]
        colour, depth = world.render(T @ colour_offset, K_colour, supersample=supersample)
        if s > 0:
            depth = world.cast(T, K).depth
            colour = sensor.colour(colour, rng, drift_exposure[i, 0])
            depth = sensor.depth(depth, rng)
            T = T @ _small_motion(drift_r[i], drift_t[i])  # the pose the tracker reports
        frames.append(Keyframe(colour, depth, K, T, float(stamps[i])))
    return Scene.build(frames, f"synthetic:{seed}", held_out, offtrack=range(n_path, n))


def dataset_scene(path, format: str, *, scale: float = 0.5, exclude_eval_targets: bool = True,
                  max_frames: Optional[int] = None, colour_focal_ratio=1.0) -> Scene:
    """A posed RGB-D source as a scene (frames at ``scale``; 0.5 = the protocol's 320x240).

    With ``exclude_eval_targets`` the leave-out protocol's targets (positions ``i % 10 == 5``
    of the index-sorted frames) are dropped before anything else, so they are never seen.
    ``colour_focal_ratio`` (a number, or ``"auto"``: estimated from the scene's frames)
    registers the frames' depth to their colour camera
    (:mod:`worldfm_ros.core.colour_registration`); 1 leaves them as read.
    """
    from worldfm_ros.core.colour_registration import register_frame, resolve_colour_focal_ratio

    from worldfm_ros.core.datasets import open_dataset

    data = open_dataset(path, format, scale=scale)
    frames = []
    for position, frame in enumerate(data):
        if max_frames is not None and position >= max_frames:
            break
        if exclude_eval_targets and is_target(position):
            continue
        frames.append(Keyframe(frame.colour, frame.depth, frame.intrinsics, frame.T_world_cam, frame.stamp))
    ratio, _ = resolve_colour_focal_ratio(colour_focal_ratio, frames)
    name = f"{format}:{path}"
    if ratio != 1.0:
        frames = [register_frame(f, ratio) for f in frames]
        name += f" (colour focal ratio {ratio:.4f})"
    return Scene.build(frames, name)


def make_sample(scene: Scene, index: int, k: int, *, memory: int = 0, drop: int = 0,
                rng: Optional[np.random.Generator] = None, device="cpu") -> Sample:
    """Frame ``index`` of ``scene`` rendered from its references (``drop`` of them removed at random)."""
    refs = scene.references(index, k, memory)
    if drop and len(refs) > 1 and rng is not None:
        keep = sorted(rng.choice(len(refs), size=max(1, len(refs) - drop), replace=False).tolist())
        refs = [refs[i] for i in keep]
    target = scene.frames[index]
    bundle = warp_references(refs, target.T_world_cam, target.intrinsics, k, device)
    rgb = torch.from_numpy(target.colour).to(device).permute(2, 0, 1).float().div_(255.0)[None]
    return Sample(bundle, rgb)


def random_sample(scene: Scene, rng: np.random.Generator, k: int, device="cpu",
                  offtrack_fraction: float = 0.0) -> Sample:
    """A random training sample: random target (not held out; with probability
    ``offtrack_fraction`` one of the scene's off-trajectory targets), random memory policy,
    and sometimes fewer references (so hole filling is learned)."""
    if scene.offtrack and rng.random() < offtrack_fraction:
        candidates = sorted(scene.offtrack)
    else:
        candidates = [i for i in range(len(scene.frames)) if i not in scene.held_out]
    index = int(candidates[int(rng.integers(len(candidates)))])
    memory = int(rng.integers(len(scene.memories)))
    r = rng.random()
    drop = 0 if r < 0.75 else (1 if r < 0.92 else 2)
    return make_sample(scene, index, k, memory=memory, drop=drop, rng=rng, device=device)


def protocol_samples(scene: Scene, k: int, device="cpu", memories=(0,)) -> list[Sample]:
    """The leave-out protocol's samples of a scene built with ``held_out`` = its targets,
    rendered from each memory policy in ``memories``."""
    return [make_sample(scene, i, k, memory=m, device=device) for m in memories for i in sorted(scene.held_out)]


class SyntheticPool:
    """A rolling pool of synthetic scenes; :meth:`refresh` replaces the oldest by a new world.

    World seeds are ``TRAIN_SEED_BASE + stream * 100_000 + counter`` so runs with different
    ``stream`` (the training seed) draw different worlds, and a resumed run continues the
    sequence from ``counter``.
    """

    def __init__(self, size: int, stream: int, counter: int = 0, **scene_options):
        self.size = size
        self.stream = int(stream)
        self.counter = int(counter)
        self.scene_options = scene_options
        self.scenes: list[Scene] = []
        while len(self.scenes) < size:
            self._add()

    def _add(self) -> None:
        while True:
            seed = TRAIN_SEED_BASE + self.stream * 100_000 + self.counter
            self.counter += 1
            try:
                scene = synthetic_scene(seed, **self.scene_options)
            except ValueError:
                continue  # no drivable loop in this world
            if len(scene.frames) >= 12:
                self.scenes.append(scene)
                return

    def refresh(self) -> None:
        self.scenes.pop(0)
        self._add()
