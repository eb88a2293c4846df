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
        reference_ids: ids of the keyframes used (all views together, first use order).
        reference_ids_per_view: for a :meth:`Renderer.render_batch` result, the ids each view
            was rendered from (``B`` lists); None for :meth:`Renderer.render`.
    """

    rgb: np.ndarray
    depth: np.ndarray
    covered: np.ndarray
    coverage: np.ndarray
    reference_ids: list[int]
    reference_ids_per_view: Optional[list[list[int]]] = None


class Renderer(Protocol):
    """Render ``B`` target views from reference keyframes.

    A renderer may also set ``references_per_view`` (int): the number of references per view
    it is built for (the learned model's slots); see :func:`references_per_view`.

    A renderer may also offer a batched path with the signature of :func:`render_batch`
    minus its first argument::

        def render_batch(self, references_per_view: Sequence[Sequence[Keyframe]],
                         T_world_cam: np.ndarray,  # [B, 4, 4]
                         intrinsics: Intrinsics) -> RenderResult: ...

    view ``b`` rendered from ``references_per_view[b]`` only, all ``B`` views in one call
    (the geometric renderer splats them in parallel, the learned one runs one network
    batch). Its result must equal :func:`render_views_one_by_one` (the reference
    implementation and test oracle); renderers without one get that loop.
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


def _check_batch(references_per_view: Sequence[Sequence[Keyframe]], T_world_cam: np.ndarray) -> np.ndarray:
    """``T_world_cam`` as float64 ``[B, 4, 4]`` with one reference list per view; raises
    ``ValueError`` (typed, from the core's errors) for mismatched or empty inputs."""
    from worldfm_ros.core.errors import EmptyMemoryError, InvalidPoseError

    T = np.asarray(T_world_cam, dtype=np.float64)
    if T.ndim != 3 or T.shape[1:] != (4, 4) or T.shape[0] == 0:
        raise InvalidPoseError(f"target poses must be [B, 4, 4] with B >= 1, got shape {T.shape}", T.shape)
    if len(references_per_view) != len(T):
        raise InvalidPoseError(f"{len(T)} poses but {len(references_per_view)} reference lists", len(T))
    for b, refs in enumerate(references_per_view):
        if len(refs) == 0:
            raise EmptyMemoryError(f"view {b} has no reference keyframe to render from", b)
    return T


def render_views_one_by_one(
    renderer: Renderer,
    references_per_view: Sequence[Sequence[Keyframe]],  # B lists of references
    T_world_cam: np.ndarray,  # [B, 4, 4] target camera optical poses
    intrinsics: Intrinsics,  # shared by all targets; gives the output size
) -> RenderResult:
    """Reference implementation of ``render_batch``: ``renderer.render`` once per view, view
    ``b`` from ``references_per_view[b]``; the results stacked in order."""
    T = _check_batch(references_per_view, T_world_cam)
    results = [renderer.render(list(refs), T[b : b + 1], intrinsics) for b, refs in enumerate(references_per_view)]
    return stack_results(results)


def stack_results(results: Sequence[RenderResult]) -> RenderResult:
    """Single-view results (``B = 1`` each) -> one ``B``-view result, in order."""
    used: dict[int, None] = {}
    per_view = []
    for result in results:
        per_view.append([int(i) for i in result.reference_ids])
        for i in per_view[-1]:
            used.setdefault(i, None)
    return RenderResult(
        rgb=np.concatenate([r.rgb for r in results]),
        depth=np.concatenate([r.depth for r in results]),
        covered=np.concatenate([r.covered for r in results]),
        coverage=np.concatenate([np.asarray(r.coverage, np.float32) for r in results]),
        reference_ids=list(used),
        reference_ids_per_view=per_view,
    )


def render_batch(
    renderer: Renderer,
    references_per_view: Sequence[Sequence[Keyframe]],  # B lists of references
    T_world_cam: np.ndarray,  # [B, 4, 4] target camera optical poses
    intrinsics: Intrinsics,  # shared by all targets; gives the output size
) -> RenderResult:
    """Render ``B`` views in one call: the renderer's own ``render_batch`` when it has one,
    else :func:`render_views_one_by_one`."""
    batched = getattr(renderer, "render_batch", None)
    if batched is None:
        return render_views_one_by_one(renderer, references_per_view, T_world_cam, intrinsics)
    return batched(references_per_view, T_world_cam, intrinsics)
