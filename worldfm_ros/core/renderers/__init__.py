"""Renderers: a batch of target poses + intrinsics and K reference keyframes -> images.

All backends implement :class:`worldfm_ros.core.renderers.base.Renderer`; build one by name
with :func:`make_renderer`.
"""

from __future__ import annotations

#: Backend names accepted by :func:`make_renderer` (the node's ``backend`` parameter and
#: ``worldfm-eval --backend``).
BACKENDS = ("geometric", "nearest", "learned")


def make_renderer(backend: str, device: str = "cpu", **options):
    """Build a renderer by name. ``learned`` accepts ``model_path`` (default: the shipped model).

    Raises ``ValueError`` for an unknown backend or device.
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if backend == "geometric":
        from worldfm_ros.core.renderers.geometric import GeometricRenderer

        return GeometricRenderer(device=device, **options)
    if backend == "nearest":
        from worldfm_ros.core.renderers.nearest import NearestRenderer

        return NearestRenderer(**options)
    if backend == "learned":
        from worldfm_ros.core.renderers.learned import LearnedRenderer

        return LearnedRenderer(device=device, **options)
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
