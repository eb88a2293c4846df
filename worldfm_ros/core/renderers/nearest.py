"""``backend: nearest`` - the floor: the best-ranked reference's image, resized to the target.

No geometry at all: what any smarter renderer must beat. It claims no coverage (its pixels
are not projected to where they belong), so ``covered`` is all False.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.renderers.base import RenderResult
from worldfm_ros.core.renderers.geometric import validate_render_inputs


class NearestRenderer:
    """Copies ``references[0]`` (retrieval ranks references best first)."""

    name = "nearest"

    def render(
        self,
        references: Sequence[Keyframe],
        T_world_cam: np.ndarray,  # [B, 4, 4]
        intrinsics: Intrinsics,
    ) -> RenderResult:
        T = validate_render_inputs(references, T_world_cam, intrinsics)
        ref = references[0]
        size = (intrinsics.width, intrinsics.height)
        if ref.colour.shape[1::-1] == size:
            colour, depth = ref.colour, ref.depth
        else:
            colour = cv2.resize(ref.colour, size, interpolation=cv2.INTER_AREA)
            depth = cv2.resize(ref.depth, size, interpolation=cv2.INTER_NEAREST)
        B = len(T)
        return RenderResult(
            rgb=np.repeat(colour[None], B, axis=0),
            depth=np.zeros((B, intrinsics.height, intrinsics.width), np.float32),
            covered=np.zeros((B, intrinsics.height, intrinsics.width), bool),
            coverage=np.zeros(B, np.float32),
            reference_ids=[int(ref.id)],
        )
