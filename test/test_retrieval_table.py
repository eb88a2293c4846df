"""The flat retrieval table and its compiled coverage loop (worldfm_ros.core.retrieval_table)."""

import numpy as np
import pytest

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.retrieval_table import KeyframeTable, coverage_cells


def test_rows_grow_are_reused_and_forgotten():
    table = KeyframeTable(anchors_per_keyframe=5, capacity=2)
    for kid in range(5):  # grows past its capacity twice
        table.add(kid, np.full(3, kid, float), np.array([0, 0, 1.0]), np.full((kid, 3), kid, np.float32))
    assert len(table) == 5
    rows = table.rows(np.arange(5))
    assert len(set(rows.tolist())) == 5
    np.testing.assert_array_equal(table.positions[rows][:, 0], np.arange(5))
    np.testing.assert_array_equal(table.counts[rows], np.arange(5))
    assert table.nbytes == sum(range(5)) * 12
    freed = int(table.rows([3])[0])
    table.remove(3)
    table.remove(99)  # unknown: ignored
    table.add(7, np.zeros(3), np.array([0, 0, 1.0]), np.ones((2, 3), np.float32))
    assert int(table.rows([7])[0]) == freed  # the freed row is reused
    with pytest.raises(KeyError):
        table.rows([3])
    with pytest.raises(ValueError, match="at most 5 anchors, got 6"):
        table.add(8, np.zeros(3), np.array([0, 0, 1.0]), np.ones((6, 3), np.float32))
    table.clear()
    assert len(table) == 0 and table.nbytes == 0


def _numpy_cover(points, R_cw, t_cw, K: Intrinsics, gw, gh):
    """The numpy expression retrieval used before the compiled loop (the oracle)."""
    pc = np.einsum("nj,ij->ni", points, R_cw.astype(np.float32)) + t_cw.astype(np.float32)
    z = pc[:, 2]
    front = z > 1e-3
    zf = np.where(front, z, 1.0)
    u = K.fx * pc[:, 0] / zf + K.cx
    v = K.fy * pc[:, 1] / zf + K.cy
    inside = front & (u >= -0.5) & (u < K.width - 0.5) & (v >= -0.5) & (v < K.height - 0.5)
    cu = ((u[inside] + 0.5) * gw / K.width).astype(np.int64).clip(0, gw - 1)
    cv = ((v[inside] + 0.5) * gh / K.height).astype(np.int64).clip(0, gh - 1)
    cover = np.zeros(gw * gh)
    cover[cv * gw + cu] = 1.0
    return cover


def test_coverage_cells_match_the_numpy_expression():
    rng = np.random.default_rng(4)
    K = Intrinsics(fx=105.0, fy=105.0, cx=63.5, cy=47.5, width=128, height=96)
    table = KeyframeTable(anchors_per_keyframe=400)
    clouds = []
    for kid in range(6):
        pts = (rng.normal(0, 1.5, (300 + 10 * kid, 3)) + [0, 0, 1.0]).astype(np.float32)
        clouds.append(pts)
        table.add(kid, np.zeros(3), np.array([0, 0, 1.0]), pts)
    angle = 0.3
    R_cw = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    t_cw = np.array([0.1, -0.2, 0.05])
    ids = np.array([4, 0, 2, 5])
    cover = np.zeros((len(ids), 16 * 12))
    coverage_cells(table.anchors, table.counts, table.rows(ids), R_cw.astype(np.float32), t_cw.astype(np.float32),
                   K.fx, K.fy, K.cx, K.cy, K.width, K.height, 16, 12, cover)
    for i, kid in enumerate(ids):
        expected = _numpy_cover(clouds[kid], R_cw, t_cw, K, 16, 12)
        assert 0 < expected.sum() < len(expected)  # some cells marked, some not: a real check
        np.testing.assert_array_equal(cover[i], expected)
