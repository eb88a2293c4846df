"""The geometric renderer written plainly in numpy: the test oracle of the fast one.

Same algorithm as :mod:`worldfm_ros.core.renderers.geometric` (bilinear forward splat, a
z-buffer with a relative depth tolerance, view-weighted blending, push-pull fill), with
float64 arithmetic and ``np.minimum.at`` / ``np.add.at`` instead of tensor scatters. Slow;
meant for small images in tests.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.pose import invert_pose
from worldfm_ros.core.renderers.base import RenderResult
from worldfm_ros.core.renderers.geometric import GeometricConfig, validate_render_inputs
from worldfm_ros.core.renderers.hole_filling import push_pull
from worldfm_ros.core.renderers.splatting import NEAR_PLANE, front_depth, reference_points, view_weights


class ReferenceGeometricRenderer:
    """Plain implementation of :class:`~worldfm_ros.core.renderers.geometric.GeometricRenderer`."""

    name = "geometric-reference"

    def __init__(self, **options):
        self.config = GeometricConfig(**options)

    def render(self, references: Sequence[Keyframe], T_world_cam: np.ndarray, intrinsics: Intrinsics) -> RenderResult:
        poses = validate_render_inputs(references, T_world_cam, intrinsics)
        outputs = [self._render_one(references, T, intrinsics) for T in poses]
        covered = np.stack([o[2] for o in outputs])
        return RenderResult(
            rgb=np.stack([o[0] for o in outputs]),
            depth=np.stack([o[1] for o in outputs]),
            covered=covered,
            coverage=covered.reshape(len(poses), -1).mean(axis=1).astype(np.float32),
            reference_ids=[int(r.id) for r in references],
        )

    def _render_one(self, references, T, K: Intrinsics):
        cfg = self.config
        W, H = K.width, K.height
        T_cam_world = invert_pose(T)
        zbuf = np.full(H * W, np.inf)
        splats = []
        for ref in references:
            points, colours = reference_points(ref, cfg.edge_ratio)
            pc = points.astype(np.float64) @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
            z = pc[:, 2]
            with np.errstate(divide="ignore", invalid="ignore"):
                u = K.fx * pc[:, 0] / z + K.cx
                v = K.fy * pc[:, 1] / z + K.cy
            inside = (z > NEAR_PLANE) & (u >= -0.5) & (u < W - 0.5) & (v >= -0.5) & (v < H - 0.5)
            u, v, z, colours = u[inside], v[inside], z[inside], colours[inside].astype(np.float64)
            nearest = np.floor(v + 0.5).astype(np.int64) * W + np.floor(u + 0.5).astype(np.int64)
            np.minimum.at(zbuf, nearest, z)
            splats.append((ref, u, v, z, colours, nearest))

        acc = np.zeros((H * W, 5))
        weights = view_weights([ref.T_world_cam for ref in references], T, cfg.angle_scale_deg, cfg.distance_scale)
        for weight, (ref, u, v, z, colours, nearest) in zip(weights, splats):
            if cfg.footprint == "point":
                taps = [(nearest, np.ones_like(z), np.ones_like(z, dtype=bool))]
            else:
                u0, v0 = np.floor(u), np.floor(v)
                fu, fv = u - u0, v - v0
                taps = []
                for du, dv, w in ((0, 0, (1 - fu) * (1 - fv)), (1, 0, fu * (1 - fv)),
                                  (0, 1, (1 - fu) * fv), (1, 1, fu * fv)):
                    uu, vv = u0 + du, v0 + dv
                    ok = (uu >= 0) & (uu <= W - 1) & (vv >= 0) & (vv <= H - 1)
                    index = np.where(ok, vv * W + uu, 0).astype(np.int64)
                    taps.append((index, w, ok))
            for index, w, ok in taps:
                front = ok & (z <= zbuf[index] * (1.0 + cfg.depth_tolerance))
                support = w[front]
                w = support * weight
                values = np.concatenate([colours[front] * w[:, None], w[:, None], support[:, None]], axis=1)
                np.add.at(acc, index[front], values)

        total = acc[:, 3]
        covered = (acc[:, 4] >= cfg.min_support) & (total > 0)
        colour = np.where(covered[:, None], acc[:, :3] / np.maximum(total, 1e-30)[:, None], 0.0)
        colour_img = colour.T.reshape(3, H, W)
        covered_img = covered.reshape(H, W)
        depth = front_depth(zbuf.reshape(H, W), covered_img)
        if cfg.fill_holes and covered.any() and not covered.all():
            confidence = np.where(covered, np.minimum(acc[:, 4], 1.0), 0.0).reshape(H, W)
            filled = push_pull(torch.from_numpy(colour_img).float(), torch.from_numpy(confidence).float())
            colour_img = filled.numpy().astype(np.float64)
        rgb = np.clip(np.round(colour_img.transpose(1, 2, 0)), 0, 255).astype(np.uint8)
        return rgb, depth, covered_img
