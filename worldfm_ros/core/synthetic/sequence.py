"""Synthetic RGB-D sequences shaped like the dataset readers' frames."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.synthetic.scene import SyntheticWorld
from worldfm_ros.core.synthetic.trajectory import plan_loop


def default_intrinsics(width: int = 320, height: int = 240, hfov_deg: float = 57.4) -> Intrinsics:
    """Square-pixel pinhole intrinsics with the principal point at the image centre.

    The default field of view matches the 7-Scenes Kinect (fx = 585 at 640 px).
    """
    fx = (width / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
    return Intrinsics(fx=float(fx), fy=float(fx), cx=(width - 1) / 2.0, cy=(height - 1) / 2.0,
                      width=int(width), height=int(height))


def synthetic_sequence(
    seed: int,
    n_frames: int,
    intrinsics: Intrinsics | None = None,
    *,
    world: SyntheticWorld | None = None,
    supersample: int = 1,
    **loop_options,
) -> Iterator[tuple[np.ndarray, np.ndarray, Intrinsics, np.ndarray, float]]:
    """Frames of a robot driving a closed loop through the world of ``seed``.

    Yields ``(colour uint8 [H, W, 3] RGB, depth float32 [H, W] z-depth [m], intrinsics,
    T_world_cam float64 [4, 4], stamp [s])`` — the dataset readers' tuple — rendered lazily,
    one frame per iteration. ``world`` defaults to ``SyntheticWorld.generate(seed)``;
    ``intrinsics`` to :func:`default_intrinsics`; ``loop_options`` go to :func:`plan_loop`
    (``camera_height``, ``speed``, ``rate_hz``, ``yaw_wobble``, ...).
    """
    world = SyntheticWorld.generate(seed) if world is None else world
    intrinsics = default_intrinsics() if intrinsics is None else intrinsics
    loop = plan_loop(world, seed, n_frames, **loop_options)  # bad options fail here, not lazily

    def frames():
        for T, stamp in zip(loop.T_world_cam, loop.stamps):
            colour, depth = world.render(T, intrinsics, supersample=supersample)
            yield colour, depth, intrinsics, T.copy(), float(stamp)

    return frames()
