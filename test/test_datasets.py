"""Dataset readers: 7-Scenes (real data + synthetic edge cases), TUM RGB-D, world files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import transforms3d.axangles as taa
import transforms3d.quaternions as tq

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.datasets import (
    DatasetError,
    Frame,
    SevenScenesDataset,
    TumDataset,
    associate,
    open_dataset,
)
from worldfm_ros.core.errors import InvalidSizeError
from worldfm_ros.core.image_ops import downscale_rgbd
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.pose import pose_from_vector, validate_pose_matrix
from worldfm_ros.core.world_file import write_world

@pytest.fixture(scope="module")
def redkitchen(shared_data) -> Path:
    """Real 7-Scenes frames in ``../shared/data`` (licence: referenced, never copied in)."""
    folder = shared_data / "redkitchen_a"
    if not (folder / "frame-000000.color.jpg").exists():
        pytest.skip(f"7-Scenes redkitchen_a data not found at {folder}")
    return folder


# ---------------------------------------------------------------------------- 7-Scenes, real
def test_seven_scenes_real_frame_matches_the_files(redkitchen):
    ds = open_dataset(redkitchen, "7scenes")
    assert len(ds) == 250 and ds.skipped == {"invalid_pose": 0}
    assert ds.indices == list(range(0, 500, 2))
    f = ds[3]  # frame-000006
    assert f.index == 6 and f.stamp == pytest.approx(6 / 30.0)
    bgr = cv2.imread(str(redkitchen / "frame-000006.color.jpg"))
    assert f.colour.dtype == np.uint8 and np.array_equal(f.colour, bgr[:, :, ::-1])
    raw = cv2.imread(str(redkitchen / "frame-000006.depth.png"), cv2.IMREAD_UNCHANGED)
    assert f.depth.dtype == np.float32 and f.depth.shape == (480, 640)
    valid = (raw > 0) & (raw < 65535)
    assert np.array_equal(f.depth > 0, valid)
    np.testing.assert_allclose(f.depth[valid], raw[valid] / 1000.0, rtol=1e-6)
    assert f.intrinsics == Intrinsics(585.0, 585.0, 320.0, 240.0, 640, 480)
    stored = np.loadtxt(redkitchen / "frame-000006.pose.txt")
    # The stored rotation is ~1e-4 from orthonormal; the reader returns the nearest rotation.
    np.testing.assert_allclose(f.T_world_cam, stored, atol=5e-4)
    np.testing.assert_array_equal(f.T_world_cam[:3, 3], stored[:3, 3])
    validate_pose_matrix(f.T_world_cam, tolerance=1e-12)
    assert ds[-1].index == 498 and ds[-1].stamp == pytest.approx(498 / 30.0)


def test_seven_scenes_real_downscaled_for_the_protocol(redkitchen):
    full = open_dataset(redkitchen, "7scenes")[10]
    half = open_dataset(redkitchen, "7scenes", scale=0.5)[10]
    assert half.colour.shape == (240, 320, 3) and half.depth.shape == (240, 320)
    # Pixel-centre rule: fx' = fx / 2, cx' = (cx + 0.5) / 2 - 0.5.
    assert half.intrinsics == Intrinsics(292.5, 292.5, 159.75, 119.75, 320, 240)
    assert np.array_equal(half.colour, cv2.resize(full.colour, (320, 240), interpolation=cv2.INTER_AREA))
    _, depth, _ = downscale_rgbd(full.colour, full.depth, full.intrinsics, 320, 240)
    assert np.array_equal(half.depth, depth)
    assert np.array_equal(half.T_world_cam, full.T_world_cam) and half.index == full.index


# ---------------------------------------------------------------------------- 7-Scenes, synthetic
def _write_seven_scenes_frame(folder: Path, number: int, T: np.ndarray, depth_mm: np.ndarray, ext="png") -> None:
    h, w = depth_mm.shape
    colour = np.zeros((h, w, 3), np.uint8)
    colour[..., 0] = number  # red channel (RGB) carries the frame number
    colour[..., 2] = 200
    cv2.imwrite(str(folder / f"frame-{number:06d}.color.{ext}"), colour[:, :, ::-1])
    cv2.imwrite(str(folder / f"frame-{number:06d}.depth.png"), depth_mm.astype(np.uint16))
    np.savetxt(folder / f"frame-{number:06d}.pose.txt", T)


def test_seven_scenes_synthetic_defaults_invalid_depth_and_poses(tmp_path):
    depth = np.full((6, 8), 1234, np.uint16)
    depth[0, 0] = 0
    depth[1, 1] = 65535
    T = pose_from_vector([1.0, 2.0, 3.0, 0.1, 0.2, 0.3, 0.9])
    slightly_off = T.copy()
    slightly_off[:3, :3] *= 1.0001  # the kind of error the real files have
    bad = T.copy()
    bad[0, 0] = -np.inf  # lost tracking
    for number, pose in ((12, T), (5, slightly_off), (7, bad)):
        _write_seven_scenes_frame(tmp_path, number, pose, depth)
    ds = SevenScenesDataset(tmp_path)  # no camera-intrinsics.txt: the 7-Scenes default
    assert ds.indices == [5, 12] and ds.skipped == {"invalid_pose": 1}
    frames = list(ds)
    assert [f.index for f in frames] == [5, 12]
    assert [f.colour[0, 0, 0] for f in frames] == [5, 12]  # RGB order kept
    assert frames[1].stamp == pytest.approx(12 / 30.0)
    assert frames[0].intrinsics == Intrinsics(585.0, 585.0, 320.0, 240.0, 8, 6)
    assert frames[0].depth[0, 0] == 0.0 and frames[0].depth[1, 1] == 0.0
    assert frames[0].depth[2, 2] == np.float32(1.234)
    np.testing.assert_allclose(frames[0].T_world_cam, T, atol=1e-12)
    np.testing.assert_allclose(frames[1].T_world_cam, T, atol=1e-14)
    override = SevenScenesDataset(tmp_path, intrinsics=[[10, 0, 4], [0, 11, 3], [0, 0, 1]])[0]
    assert override.intrinsics == Intrinsics(10.0, 11.0, 4.0, 3.0, 8, 6)
    kf = frames[0].to_keyframe()
    assert isinstance(kf, Keyframe) and kf.id == -1 and np.array_equal(kf.depth, frames[0].depth)


def test_seven_scenes_errors_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as info:
        open_dataset(tmp_path / "absent", "7scenes")
    assert str(tmp_path / "absent") in str(info.value)
    with pytest.raises(DatasetError, match="no 7-Scenes frames"):
        open_dataset(tmp_path, "7scenes")
    _write_seven_scenes_frame(tmp_path, 0, np.eye(4), np.ones((4, 4)))
    _write_seven_scenes_frame(tmp_path, 1, np.eye(4), np.ones((4, 4)), ext="jpg")
    (tmp_path / "frame-000001.color.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    ds = open_dataset(tmp_path, "7scenes")
    assert ds[0].index == 0
    with pytest.raises(DatasetError, match="frame-000001.color.jpg"):
        ds[1]
    (tmp_path / "frame-000000.depth.png").unlink()
    with pytest.raises(DatasetError, match="frame-000000.depth.png"):
        open_dataset(tmp_path, "7scenes")


def test_open_dataset_rejects_bad_arguments(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset format"):
        open_dataset(tmp_path, "kitti")
    _write_seven_scenes_frame(tmp_path, 0, np.eye(4), np.ones((4, 4)))
    for scale in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(InvalidSizeError):
            open_dataset(tmp_path, "7scenes", scale=scale)


# ---------------------------------------------------------------------------- TUM RGB-D
_AXIS = np.array([1.0, 2.0, 3.0]) / np.linalg.norm([1.0, 2.0, 3.0])


def _true_pose(t: float) -> np.ndarray:
    """Constant velocity and constant angular velocity about a fixed axis: linear position
    and slerp rotation reproduce it exactly between any two samples."""
    T = np.eye(4)
    T[:3, :3] = taa.axangle2mat(_AXIS, 0.8 * t)
    T[:3, 3] = [0.5 + 0.3 * t, -1.0 + 0.1 * t, 2.0 - 0.2 * t]
    return T


def _write_list(path: Path, header: str, rows) -> None:
    path.write_text(f"# {header}\n# file: 'synthetic'\n# timestamp filename\n"
                    + "".join(" ".join(str(v) for v in row) + "\n" for row in rows))


@pytest.fixture
def tum_folder(tmp_path) -> Path:
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    # rgb stamp -> depth stamp (None: no depth image near it)
    rgb_stamps = [0.95, 1.033, 1.30, 1.315, 1.5, 1.777, 1.90, 2.05]
    depth_stamps = [0.951, 1.04, 1.31, 1.33, 1.49, 1.777, 1.93, 2.06]
    rgb_rows, depth_rows = [], []
    for k, t in enumerate(rgb_stamps):
        colour = np.full((48, 64, 3), k * 20, np.uint8)
        colour[..., 1] = 7
        cv2.imwrite(str(tmp_path / "rgb" / f"{t:.6f}.png"), colour[:, :, ::-1])
        rgb_rows.append((f"{t:.6f}", f"rgb/{t:.6f}.png"))
    for k, t in enumerate(depth_stamps):
        depth = np.full((48, 64), 5000 * (k + 1), np.uint16)  # k + 1 metres
        depth[0, :5] = 0
        depth[1, 0] = 12345
        cv2.imwrite(str(tmp_path / "depth" / f"{t:.6f}.png"), depth)
        depth_rows.append((f"{t:.6f}", f"depth/{t:.6f}.png"))
    _write_list(tmp_path / "rgb.txt", "color images", rgb_rows)
    _write_list(tmp_path / "depth.txt", "depth maps", depth_rows)
    gt_rows = []
    for t in np.arange(1.0, 2.0001, 0.1):
        T = _true_pose(t)
        w, x, y, z = tq.mat2quat(T[:3, :3])
        gt_rows.append([f"{t:.4f}"] + [repr(float(v)) for v in (*T[:3, 3], x, y, z, w)])
    _write_list(tmp_path / "groundtruth.txt", "ground truth trajectory", gt_rows)
    return tmp_path


def test_tum_association_depth_scale_and_pose_interpolation(tum_folder):
    ds = open_dataset(tum_folder, "tum")
    # 0.95 and 2.05: outside the ground truth [1.0, 2.0]; 1.90: nearest depth 0.03 s away;
    # 1.30: its nearest depth (1.31) is closer to 1.315, which takes it (one-to-one).
    assert ds.skipped == {"no_depth": 2, "no_pose": 2}
    assert ds.indices == [1, 3, 4, 5]
    frames = list(ds)
    assert [f.stamp for f in frames] == [1.033, 1.315, 1.5, 1.777]
    # Depth image k holds k + 1 metres: rgb 1.033 -> depth 1.04 (k=1), 1.315 -> 1.31 (k=2),
    # 1.5 -> 1.49 (k=4), 1.777 -> 1.777 (k=5).
    assert [float(f.depth[10, 10]) for f in frames] == [2.0, 3.0, 5.0, 6.0]
    assert frames[0].depth.dtype == np.float32
    assert (frames[0].depth[0, :5] == 0).all()
    assert frames[0].depth[1, 0] == np.float32(12345 / 5000.0)
    assert [int(f.colour[0, 0, 0]) for f in frames] == [20, 60, 80, 100]  # colour image k
    assert int(frames[0].colour[0, 0, 1]) == 7  # RGB order
    for f in frames:
        np.testing.assert_allclose(f.T_world_cam, _true_pose(f.stamp), atol=1e-9)
        validate_pose_matrix(f.T_world_cam, tolerance=1e-9)
    assert frames[0].intrinsics == Intrinsics(525.0, 525.0, 319.5, 239.5, 64, 48)


def test_tum_pose_exactly_at_a_ground_truth_stamp(tum_folder):
    (tum_folder / "rgb.txt").write_text("1.5 rgb/1.500000.png\n")
    ds = TumDataset(tum_folder)
    np.testing.assert_allclose(ds[0].T_world_cam, _true_pose(1.5), atol=1e-12)


def test_tum_options(tum_folder):
    assert TumDataset(tum_folder, intrinsics="fr1")[0].intrinsics == Intrinsics(517.3, 516.5, 318.6, 255.3, 64, 48)
    K = Intrinsics(50.0, 51.0, 31.5, 23.5, 64, 48)
    assert TumDataset(tum_folder, intrinsics=K)[0].intrinsics == K
    wide = TumDataset(tum_folder, max_difference=0.05)
    assert wide.skipped["no_depth"] == 0  # 1.90 now pairs with 1.93, 1.30 with 1.33
    assert TumDataset(tum_folder, depth_scale=1000.0)[0].depth[10, 10] == np.float32(10.0)
    half = open_dataset(tum_folder, "tum", scale=0.5)[0]
    assert half.colour.shape == (24, 32, 3)
    assert half.intrinsics == Intrinsics(262.5, 262.5, 159.5, 119.5, 32, 24)


def test_tum_errors(tum_folder):
    (tum_folder / "rgb" / "1.500000.png").write_bytes(b"garbage")
    ds = TumDataset(tum_folder)
    with pytest.raises(DatasetError, match="1.500000.png"):
        ds[2]
    (tum_folder / "groundtruth.txt").unlink()
    with pytest.raises(DatasetError, match="groundtruth.txt"):
        TumDataset(tum_folder)


def test_associate_is_greedy_one_to_one():
    # 1.30 and 1.315 both want depth 1.31; the closer one wins, 1.30 falls to nothing.
    assert associate([1.30, 1.315], [1.31, 1.33], 0.02) == [(1, 0)]
    assert associate([1.30, 1.315], [1.31, 1.33], 0.05) == [(0, 1), (1, 0)]
    assert associate([], [1.0], 0.02) == []


# ---------------------------------------------------------------------------- world files
def test_world_file_as_a_dataset(tmp_path):
    rng = np.random.default_rng(3)
    K = Intrinsics(60.0, 60.0, 31.5, 23.5, 64, 48)
    keyframes = [
        Keyframe(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
                 rng.uniform(0.5, 4.0, (48, 64)).astype(np.float32), K,
                 pose_from_vector([k, 0, 0, 0, 0, 0, 1]), stamp=10.0 + k, id=kid)
        for k, kid in enumerate((4, 1, 9))
    ]
    write_world(tmp_path / "w", keyframes)
    ds = open_dataset(tmp_path / "w", "world")
    frames = list(ds)
    assert [f.index for f in frames] == [1, 4, 9] == ds.indices
    by_id = {kf.id: kf for kf in keyframes}
    for f in frames:
        assert isinstance(f, Frame)
        kf = by_id[f.index]
        assert np.array_equal(f.colour, kf.colour) and np.array_equal(f.depth, kf.depth)
        assert np.array_equal(f.T_world_cam, kf.T_world_cam) and f.stamp == kf.stamp
    assert ds[2].index == 9
    half = open_dataset(tmp_path / "w", "world", scale=0.5)[0]
    assert half.colour.shape == (24, 32, 3) and half.intrinsics == K.scaled(0.5)
    write_world(tmp_path / "empty", [])
    with pytest.raises(DatasetError, match="no keyframes"):
        open_dataset(tmp_path / "empty", "world")
