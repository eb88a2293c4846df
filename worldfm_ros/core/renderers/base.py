"""The one small interface every renderer implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, Sequence

import numpy as np

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.keyframe import Keyframe


@dataclass
class RenderResult:
    """Rendered views of a batch of ``B`` targets of one size.

    Attributes:
        rgb: ``uint8 [B, H, W, 3]``.
        depth: ``float32 [B, H, W]`` metres, 0 = unknown.
        covered: ``bool [B, H, W]``: pixel supported by a stored observation (not hole-filled).
        coverage: ``float32 [B]``: fraction of covered pixels.
        reference_ids: ids of the keyframes used.
    """

    rgb: np.ndarray
    depth: np.ndarray
    covered: np.ndarray
    coverage: np.ndarray
    reference_ids: list[int]


class Renderer(Protocol):
    """Render ``B`` target views from reference keyframes.

    A renderer may also set ``references_per_view`` (int): the number of references per view
    it is built for (the learned model's slots); see :func:`references_per_view`.
    """

    name: str

    def render(
        self,
        references: Sequence[Keyframe],
        T_world_cam: np.ndarray,  # [B, 4, 4] target camera optical poses
        intrinsics: Intrinsics,  # shared by all targets; gives the output size
    ) -> RenderResult: ...


def references_per_view(renderer: object, retrieval_k: int) -> int:
    """References to retrieve per view for ``renderer``: the memory's ``retrieval_k``, raised
    to the renderer's ``references_per_view`` when it declares more (a learned model with
    eight slots gets eight references even when the node's ``retrieval.k`` is 4)."""
    wanted: Optional[int] = getattr(renderer, "references_per_view", None)
    return max(int(retrieval_k), int(wanted)) if wanted else int(retrieval_k)
