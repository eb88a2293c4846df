"""Renderers: a batch of target poses + intrinsics and K reference keyframes -> images."""
