"""worldfm-build-world: a synthetic recorded run (rosbag2 written with rosbags) -> world file.

The oracle is the synthetic world: exact camera poses at the image stamps (the trajectory is
sampled at 60 Hz; odometry gets the even samples at 30 Hz, images every 6th odd sample at
10 Hz, i.e. half-way between two odometry samples) and the exact rendered colour and depth.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags writes and reads the test bags")

from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from worldfm_ros.cli.build_world import default_output, main  # noqa: E402
from worldfm_ros.core.pose import pose_from_vector, position_quaternion_from_pose, rotation_angle_deg  # noqa: E402
from worldfm_ros.core.synthetic import SyntheticWorld, default_intrinsics, plan_loop  # noqa: E402
from worldfm_ros.core.undistort import Undistorter  # noqa: E402
from worldfm_ros.core.world_file import WorldFile, read_world  # noqa: E402
from worldfm_ros.ros.bag_reader import BagTopics, resolve_topic  # noqa: E402

TS = get_typestore(Stores.ROS2_KILTED)
T_ = TS.types
N_IMAGES = 16
SUB = 6  # trajectory samples (60 Hz) per image (10 Hz)
INTRINSICS = default_intrinsics(160, 120)
#: A camera 0.2 m ahead of and 0.1 m above the base, pitched 15 deg down (not the default).
CUSTOM_CAMERA_TO_BASE = [0.2, 0.0, 0.1, -0.5609855, 0.5609855, -0.4304593, 0.4304593]
IMAGE_LATENCY = 0.005  # bag (receive) time after the stamp [s]
#: Odometry is logged later than sync.max_extrapolation (0.1 s) after its stamp (a filter's
#: delay): a live node would find no pose for any frame; the bag reader waits for it.
ODOM_LATENCY = 0.150
DEPTH_OFFSET = 0.003  # depth stamp after the colour stamp [s] (within sync.max_gap)


@dataclass
class Recording:
    """Rendered frames of one drive: what a bag is written from, and the oracle."""

    stamps: np.ndarray  # [N] image stamps [s]
    colour: np.ndarray  # [N, H, W, 3] uint8 RGB
    depth: np.ndarray  # [N, H, W] float32 metres
    T_world_cam: np.ndarray  # [N, 4, 4] exact camera poses at the image stamps
    odom_stamps: np.ndarray  # [M]
    T_world_base: np.ndarray  # [M, 4, 4]


def _record(camera_to_base, n_images: int = N_IMAGES, intrinsics=INTRINSICS) -> Recording:
    world = SyntheticWorld.generate(3)
    loop = plan_loop(world, 3, SUB * n_images + 4, rate_hz=60.0, camera_to_base=pose_from_vector(camera_to_base))
    # Stamps start at 100 s (a zero stamp is what an unset header looks like).
    stamps60 = 100.0 + loop.stamps
    image_index = SUB * np.arange(n_images) + 3
    colour, depth = world.render(loop.T_world_cam[image_index], intrinsics)
    odom_index = np.arange(0, len(stamps60), 2)
    return Recording(stamps60[image_index], colour, depth, loop.T_world_cam[image_index],
                     stamps60[odom_index], loop.T_world_base[odom_index])


@pytest.fixture(scope="module")
def default_drive() -> Recording:
    return _record([0, 0, 0, -0.5, 0.5, -0.5, 0.5])


@pytest.fixture(scope="module")
def custom_drive() -> Recording:
    return _record(CUSTOM_CAMERA_TO_BASE)


# ---------------------------------------------------------------------- bag writing
def _header(stamp: float, frame_id: str = ""):
    ns = int(round(stamp * 1e9))
    return T_["std_msgs/msg/Header"](stamp=T_["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                     frame_id=frame_id)


def _image(stamp: float, pixels: np.ndarray, encoding: str):
    h, w = pixels.shape[:2]
    data = np.ascontiguousarray(pixels).reshape(-1).view(np.uint8)
    return T_["sensor_msgs/msg/Image"](header=_header(stamp, "camera_optical"), height=h, width=w, encoding=encoding,
                                       is_bigendian=0, step=data.size // h, data=data.copy())


def _camera_info(stamp: float, d=(), K=INTRINSICS):
    return T_["sensor_msgs/msg/CameraInfo"](
        header=_header(stamp, "camera_optical"), height=K.height, width=K.width,
        distortion_model="plumb_bob", d=np.asarray(d, dtype=np.float64),
        k=K.matrix.reshape(-1).astype(np.float64), r=np.eye(3).reshape(-1),
        p=np.hstack([K.matrix, np.zeros((3, 1))]).reshape(-1), binning_x=0, binning_y=0,
        roi=T_["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def _odometry(stamp: float, T: np.ndarray):
    p, q = position_quaternion_from_pose(T)
    pose = T_["geometry_msgs/msg/Pose"](
        position=T_["geometry_msgs/msg/Point"](x=p[0], y=p[1], z=p[2]),
        orientation=T_["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]))
    zero = T_["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)
    return T_["nav_msgs/msg/Odometry"](
        header=_header(stamp, "odom"), child_frame_id="base_link",
        pose=T_["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        twist=T_["geometry_msgs/msg/TwistWithCovariance"](
            twist=T_["geometry_msgs/msg/Twist"](linear=zero, angular=zero), covariance=np.zeros(36)))


def _encode_colour(rgb: np.ndarray, encoding: str) -> np.ndarray:
    return rgb[:, :, ::-1] if encoding == "bgr8" else rgb


def _encode_depth(depth: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "16UC1":
        return np.round(depth * 1000.0).astype("<u2")
    return depth.astype("<f4")


def _expected_depth(depth: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "16UC1":
        return np.round(depth * 1000.0).astype(np.uint16).astype(np.float32) / np.float32(1000.0)
    return depth.astype(np.float32)


def write_bag(path: Path, rec: Recording, *, storage: str = "sqlite3", colour_encoding: str = "rgb8",
              depth_encoding: str = "16UC1", namespace: str = "", skip_topics=(), distortion=(),
              corrupt: dict | None = None, nan_odometry: int | None = None, intrinsics=INTRINSICS) -> Path:
    """A rosbag2 of ``rec``; ``corrupt`` maps an image index to ``short``, ``encoding`` or ``cdr``."""
    corrupt = corrupt or {}
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    topics = BagTopics.resolved(namespace)
    entries = []  # (log time [ns], topic, message or raw bytes)

    def add(log_time: float, topic: str, msg) -> None:
        if topic not in skip_topics:
            entries.append((int(round(log_time * 1e9)), topic, msg))

    for stamp, T in zip(rec.odom_stamps, rec.T_world_base):
        add(stamp + ODOM_LATENCY, topics.odom, _odometry(stamp, T))
    if nan_odometry is not None:
        bad = _odometry(rec.odom_stamps[nan_odometry] + 0.001, np.eye(4))
        bad.pose.pose.position.x = float("nan")
        add(rec.odom_stamps[nan_odometry] + 0.001 + ODOM_LATENCY, topics.odom, bad)
    for i, stamp in enumerate(rec.stamps):
        colour = _image(stamp, _encode_colour(rec.colour[i], colour_encoding), colour_encoding)
        kind = corrupt.get(i)
        if kind == "short":
            colour.data = colour.data[: colour.data.size // 2]
        elif kind == "encoding":
            colour.encoding = "yuv422_yuy2"
        add(stamp + IMAGE_LATENCY, topics.image, b"\x00\x01\x00\x00garbage" if kind == "cdr" else colour)
        add(stamp + IMAGE_LATENCY, topics.info, _camera_info(stamp, distortion, intrinsics))
        depth = _image(stamp + DEPTH_OFFSET, _encode_depth(rec.depth[i], depth_encoding), depth_encoding)
        add(stamp + DEPTH_OFFSET + IMAGE_LATENCY, topics.depth, depth)
    entries.sort(key=lambda e: e[0])
    types = {topics.image: "sensor_msgs/msg/Image", topics.depth: "sensor_msgs/msg/Image",
             topics.info: "sensor_msgs/msg/CameraInfo", topics.odom: "nav_msgs/msg/Odometry"}
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connections = {topic: writer.add_connection(topic, msgtype, typestore=TS)
                       for topic, msgtype in types.items() if topic not in skip_topics}
        for log_time, topic, msg in entries:
            raw = msg if isinstance(msg, bytes) else TS.serialize_cdr(msg, types[topic])
            writer.write(connections[topic], log_time, raw)
    return path


def _run(argv, tmp_path: Path) -> tuple[int, dict]:
    summary_path = tmp_path / "summary.json"
    rc = main([*map(str, argv), "--quiet", "--json", str(summary_path)])
    return rc, (json.loads(summary_path.read_text()) if summary_path.exists() else {})


def _check_world(world_path: Path, rec: Recording, depth_encoding: str, expected_indices) -> None:
    keyframes = read_world(world_path)
    assert len(keyframes) == len(expected_indices)
    for keyframe, i in zip(keyframes, expected_indices):
        assert keyframe.stamp == pytest.approx(rec.stamps[i], abs=1e-9)
        T_true = rec.T_world_cam[i]
        # Interpolation between odometry samples 1/30 s apart on a smooth path: micrometres.
        assert np.linalg.norm(keyframe.T_world_cam[:3, 3] - T_true[:3, 3]) < 1e-3
        assert rotation_angle_deg(keyframe.T_world_cam[:3, :3], T_true[:3, :3]) < 0.05
        assert keyframe.intrinsics == INTRINSICS
        np.testing.assert_array_equal(keyframe.colour, rec.colour[i])
        np.testing.assert_array_equal(keyframe.depth, _expected_depth(rec.depth[i], depth_encoding))


# ---------------------------------------------------------------------- tests
@pytest.mark.parametrize(
    "storage, colour_encoding, depth_encoding, camera",
    [("sqlite3", "rgb8", "16UC1", "default"), ("mcap", "bgr8", "32FC1", "custom")],
)
def test_bag_becomes_world_with_exact_poses_and_images(tmp_path, default_drive, custom_drive, storage,
                                                        colour_encoding, depth_encoding, camera):
    rec = default_drive if camera == "default" else custom_drive
    bag = write_bag(tmp_path / "run", rec, storage=storage, colour_encoding=colour_encoding,
                    depth_encoding=depth_encoding)
    argv = ["--bag", bag, "--output", tmp_path / "run.world", "--insertion", "pose", "--min-translation", "0.01"]
    if camera == "custom":
        params = tmp_path / "params.yaml"
        params.write_text("worldfm_node:\n  ros__parameters:\n    camera_to_base: "
                          f"{CUSTOM_CAMERA_TO_BASE}\n    sync:\n      max_gap: 0.01\n")
        argv += ["--params-file", params]
    rc, summary = _run(argv, tmp_path)
    assert rc == 0
    assert summary["messages"] == {"/camera/image_raw": N_IMAGES, "/camera/depth/image_raw": N_IMAGES,
                                   "/camera/camera_info": N_IMAGES, "/odom": len(rec.odom_stamps)}
    assert summary["pairs"] == summary["frames"] == N_IMAGES
    assert summary["bad_messages"] == {} and summary["dropped"] == {}
    # Images are 3 cm apart, more than --min-translation: every frame is a keyframe.
    assert summary["keyframes_written"] == summary["keyframes_accepted"] == N_IMAGES
    _check_world(tmp_path / "run.world", rec, depth_encoding, range(N_IMAGES))
    with WorldFile.open(tmp_path / "run.world", read_only=True) as world:
        assert world.metadata["source_topics"]["odom"] == "/odom"


def test_wrong_camera_to_base_moves_every_pose(tmp_path, custom_drive):
    """The check above can fail: the default camera_to_base on the custom rig is 0.2 m off."""
    bag = write_bag(tmp_path / "run", custom_drive)
    rc, _ = _run(["--bag", bag, "--output", tmp_path / "w.world", "--insertion", "pose", "--min-translation", "0.01"], tmp_path)
    assert rc == 0
    keyframes = read_world(tmp_path / "w.world")
    errors = [np.linalg.norm(k.T_world_cam[:3, 3] - custom_drive.T_world_cam[i][:3, 3]) for i, k in enumerate(keyframes)]
    assert min(errors) > 0.2


def test_storage_file_namespace_and_default_insertion_policy(tmp_path, default_drive):
    """A single .mcap file as --bag, topics under a namespace, the pose policy's default
    thresholds (5 cm: every second 3-cm-apart frame is stored), output next to the bag."""
    bag = write_bag(tmp_path / "run", default_drive, storage="mcap", namespace="robot1")
    mcap = next(bag.glob("*.mcap"))
    rc, summary = _run(["--bag", mcap, "--namespace", "robot1", "--insertion", "pose"], tmp_path)
    assert rc == 0
    assert summary["topics"]["image"] == "/robot1/camera/image_raw"
    output = default_output(mcap)
    assert output == mcap.with_suffix(".world") and output.is_file()
    assert summary["frames"] == N_IMAGES
    _check_world(output, default_drive, "16UC1", range(0, N_IMAGES, 2))


def test_distorted_camera_is_undistorted(tmp_path, default_drive):
    d = [0.08, -0.05, 0.001, -0.001, 0.0]
    bag = write_bag(tmp_path / "run", default_drive, distortion=d)
    rc, summary = _run(["--bag", bag, "--output", tmp_path / "w.world", "--insertion", "pose", "--min-translation", "0.01"], tmp_path)
    assert rc == 0 and summary["frames"] == N_IMAGES
    keyframes = read_world(tmp_path / "w.world")
    undistort = Undistorter()
    colour, depth = undistort(default_drive.colour[0], _expected_depth(default_drive.depth[0], "16UC1"),
                              INTRINSICS, np.asarray(d))
    assert not np.array_equal(colour, default_drive.colour[0])
    np.testing.assert_array_equal(keyframes[0].colour, colour)
    np.testing.assert_array_equal(keyframes[0].depth, depth)


def test_missing_depth_topic_is_a_clear_error(tmp_path, default_drive, capsys):
    bag = write_bag(tmp_path / "run", default_drive, skip_topics=("/camera/depth/image_raw",))
    rc = main(["--bag", str(bag), "--output", str(tmp_path / "w.world"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "missing topic(s): /camera/depth/image_raw" in err
    for present in ("/camera/image_raw [sensor_msgs/msg/Image]", "/odom [nav_msgs/msg/Odometry]",
                    "/camera/camera_info [sensor_msgs/msg/CameraInfo]"):
        assert present in err
    assert not (tmp_path / "w.world").exists()


def test_bad_messages_are_skipped_and_counted(tmp_path, default_drive, capsys):
    bag = write_bag(tmp_path / "run", default_drive, corrupt={3: "short", 5: "encoding", 7: "cdr"}, nan_odometry=4)
    rc, summary = _run(["--bag", bag, "--output", tmp_path / "w.world", "--insertion", "pose", "--min-translation", "0.01"], tmp_path)
    assert rc == 0
    assert summary["bad_messages"] == {
        "colour: malformed image": 1,
        "colour: unsupported encoding 'yuv422_yuy2'": 1,
        "/camera/image_raw: undecodable": 1,
        "/odom: invalid pose": 1,
    }
    # The undecodable image never reached the sync, so its depth image had no partner.
    assert summary["dropped"] == {"bad image": 2, "sync: depth_unpaired": 1}
    good = [i for i in range(N_IMAGES) if i not in (3, 5, 7)]
    assert summary["frames"] == len(good) and summary["keyframes_written"] == len(good)
    _check_world(tmp_path / "w.world", default_drive, "16UC1", good)
    err = capsys.readouterr().err
    assert err.count("unsupported encoding") == 1  # one warning per reason


def test_existing_output_needs_overwrite(tmp_path, default_drive, capsys):
    bag = write_bag(tmp_path / "run", default_drive)
    output = tmp_path / "w.world"
    output.write_bytes(b"precious")
    assert main(["--bag", str(bag), "--output", str(output), "--quiet"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert output.read_bytes() == b"precious"
    rc, summary = _run(["--bag", bag, "--output", output, "--overwrite"], tmp_path)
    assert rc == 0 and len(read_world(output)) == summary["keyframes_written"] > 0


def test_without_waiting_frames_get_no_pose(tmp_path, default_drive):
    """With --lookahead 0 a frame is resolved when it is paired, as a live node must: the
    odometry logged 0.15 s late is then beyond sync.max_extrapolation for every frame."""
    bag = write_bag(tmp_path / "run", default_drive)
    rc, summary = _run(["--bag", bag, "--output", tmp_path / "w.world", "--lookahead", "0"], tmp_path)
    assert rc == 0
    misses = {k: v for k, v in summary["dropped"].items() if k.startswith("no pose")}
    assert sum(misses.values()) == N_IMAGES and summary["frames"] == 0
    assert summary["keyframes_written"] == 0


def test_runs_without_ros_installed(tmp_path, default_drive):
    """rosbags is not ROS: the conversion must work with rclpy and every ROS message package
    unimportable (a laptop with a bag and no ROS)."""
    bag = write_bag(tmp_path / "run", default_drive, storage="mcap")
    script = textwrap.dedent(f"""
        import importlib.abc, re, sys
        FORBIDDEN = re.compile(r"^(rclpy|rosidl_.*|rmw.*|std_srvs|[a-z_]+_msgs|builtin_interfaces)(\\.|$)")
        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if FORBIDDEN.match(name):
                    raise ImportError("blocked ROS module " + name)
        sys.meta_path.insert(0, Blocker())
        from worldfm_ros.cli.build_world import main
        sys.exit(main(["--bag", {str(bag)!r}, "--output", {str(tmp_path / "w.world")!r}, "--quiet",
                       "--insertion", "pose"]))
    """)
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(read_world(tmp_path / "w.world")) == N_IMAGES // 2


def test_topic_resolution():
    assert resolve_topic("odom") == "/odom"
    assert resolve_topic("camera/image_raw", "/robot1/") == "/robot1/camera/image_raw"
    assert resolve_topic("/abs/odom", "robot1") == "/abs/odom"
    with pytest.raises(ValueError):
        resolve_topic("~/odom")


if __name__ == "__main__":
    # Writes a bigger synthetic bag for measuring the conversion speed, e.g.
    #   python test/test_build_world.py /tmp/bag640 --images 200 --width 640 --height 480 --storage mcap
    import argparse

    parser = argparse.ArgumentParser(description="write a synthetic rosbag2 (10 Hz RGB-D, 30 Hz odometry)")
    parser.add_argument("path", type=Path)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default="mcap")
    cli = parser.parse_args()
    camera = default_intrinsics(cli.width, cli.height)
    drive = _record([0, 0, 0, -0.5, 0.5, -0.5, 0.5], cli.images, camera)
    write_bag(cli.path, drive, storage=cli.storage, intrinsics=camera)
    print(f"wrote {cli.path}: {cli.images} RGB-D frames at {cli.width}x{cli.height}, {len(drive.odom_stamps)} odometry")
