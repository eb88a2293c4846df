"""Faults found by adversarial probes (issue 10), each reproduced and checked fixed.

1. two writers on one world file; 2. disk full while committing keyframes; 3. decompression
bombs in a world file; 4. temporary files of a killed ``save_world``; 5. invalid depth and
absurd odometry positions; 6. a render request whose K is not a pinhole; 7. parameters a new
user trips over (``~``, namespaced YAML, runtime changes, misspellings, FATAL start-up,
device actually used, ``--help``).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import InvalidPoseError, WorldFileError
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.odometry_buffer import OdometryBuffer
from worldfm_ros.core.pose import pose_from_vector
from worldfm_ros.core.world_file import WorldFile, read_world, remove_stale_temp_files, write_world
from worldfm_ros.core.world_service import WorldService, WorldServiceConfig
from worldfm_ros.ros.config import ConfigError, NodeConfig, unknown_parameter_warnings

ROOT = Path(__file__).resolve().parents[1]
K = Intrinsics(fx=260.0, fy=260.0, cx=159.5, cy=119.5, width=320, height=240)


class NoRenderer:
    """The world service without a renderer (these tests never render)."""

    name = "none"


def frame(x: float, depth_m: float = 2.0, seed: int = 0) -> Keyframe:
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    depth = np.full((240, 320), depth_m, np.float32)
    return Keyframe(colour, depth, K, pose_from_vector([x, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]), stamp=x)


def node_env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


# ------------------------------------------------------------------- 1. one writer per file
def test_a_world_file_has_one_writer(tmp_path):
    path = tmp_path / "lab.world"
    with WorldFile.open(path, create_if_missing=True):
        with pytest.raises(WorldFileError) as error:
            WorldFile.open(path)
        assert str(path) in str(error.value) and f"pid {os.getpid()}" in str(error.value)
        assert read_world(path) == []  # readers are not locked out
    with WorldFile.open(path):  # released on close
        pass


def test_a_second_node_on_the_same_world_file_refuses_at_configure(tmp_path):
    """The second node logs one FATAL line naming the file and the first node, no traceback,
    exits 1; a misspelt parameter given to it is reported before."""
    path = tmp_path / "lab.world"
    cmd = [sys.executable, "-m", "worldfm_ros.ros.node", "--ros-args", "-p", f"world_path:={path}"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=node_env(), cwd=str(ROOT),
                             text=True)
    try:
        deadline = time.monotonic() + 60.0
        lock = Path(str(path) + ".lock")
        while not (lock.exists() and f"pid {first.pid}" in lock.read_text()):
            assert first.poll() is None, first.communicate()[0]
            assert time.monotonic() < deadline, "the first node did not open its world file"
            time.sleep(0.1)
        second = subprocess.run(cmd + ["-p", "sim.enabeld:=true"], capture_output=True, text=True, env=node_env(),
                                cwd=str(ROOT), timeout=60)
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=20)
    output = second.stdout + second.stderr
    assert second.returncode == 1, output
    fatal = [line for line in output.splitlines() if "[FATAL]" in line]
    assert len(fatal) == 1 and str(path) in fatal[0] and f"pid {first.pid}" in fatal[0], output
    assert "Traceback" not in output, output
    assert "'sim.enabeld' is not a parameter" in output and "'sim.enabled'" in output, output
    assert first.returncode == 0


# ------------------------------------------------------------------- 2. disk full
_DISK_FULL_CHILD = textwrap.dedent("""
    import json, resource, signal, sys
    import numpy as np
    sys.path.insert(0, {test_dir!r})
    from test_live_faults import NoRenderer, frame
    from worldfm_ros.core.memory import MemoryConfig
    from worldfm_ros.core.world_service import KeyframeNotCommittedError, WorldService, WorldServiceConfig

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    errors = []
    world = WorldService(WorldServiceConfig(world_path={path!r}, memory=MemoryConfig(insertion="pose")),
                         renderer=NoRenderer(), on_persist_error=errors.append)
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))  # the disk fills up
    announced, refused = [], 0
    for i in range(24):
        try:
            keyframe = world.ingest_keyframe(frame(float(i), seed=i))
        except KeyframeNotCommittedError:
            refused += 1
            continue
        if keyframe is not None:
            announced.append(keyframe.id)
    world.close()
    print(json.dumps(dict(announced=announced, refused=refused, errors=errors[:2],
                          persist_errors=world.persist_errors, in_memory=len(world))))
""")


def test_disk_full_never_announces_a_keyframe_that_is_not_on_disk(tmp_path):
    path = tmp_path / "full.world"
    code = _DISK_FULL_CHILD.format(test_dir=str(Path(__file__).parent), path=str(path), limit=2_000_000)
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=node_env(), timeout=120)
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    with WorldFile.open(path) as world:  # the writer is gone: the file is whole
        on_disk = set(world.ids())
    assert result["refused"] > 0 and result["in_memory"] == 24, result
    assert set(result["announced"]) == on_disk, result  # announced <=> committed
    assert result["persist_errors"] >= result["refused"], result
    assert "could not commit keyframe" in result["errors"][0] and str(path) in result["errors"][0], result


# ------------------------------------------------------------------- 3. decompression bombs
def _one_keyframe_file(tmp_path) -> Path:
    path = tmp_path / "bomb.world"
    keyframe = frame(0.0)
    keyframe.id = 7
    write_world(path, [keyframe])
    return path


def _tamper(path: Path, **columns) -> None:
    with sqlite3.connect(path) as con:
        for name, value in columns.items():
            con.execute(f"UPDATE keyframes SET {name} = ? WHERE id = 7", (value,))


def test_a_depth_blob_that_inflates_far_beyond_its_size_is_refused_without_inflating_it(tmp_path):
    path = _one_keyframe_file(tmp_path)
    packer = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    bomb = b"".join(packer.compress(chunk) for _ in range(100)) + packer.flush()  # 100 MiB of zeros, ~100 KB
    _tamper(path, depth=bomb)
    tracemalloc.start()
    try:
        with pytest.raises(WorldFileError) as error:
            read_world(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(error.value)
    assert str(path) in message and "keyframe 7" in message and "inflates to more than" in message, message
    assert peak < 20 * 2**20, f"decoding allocated {peak / 2**20:.0f} MiB"


def test_a_png_whose_header_declares_a_huge_image_is_refused_before_decoding(tmp_path):
    path = _one_keyframe_file(tmp_path)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b""))
    _tamper(path, colour=png)
    with pytest.raises(WorldFileError) as error:
        read_world(path)
    message = str(error.value)
    assert "keyframe 7" in message and "20000x20000" in message and str(path) in message, message


def test_an_absurd_declared_size_is_refused(tmp_path):
    path = _one_keyframe_file(tmp_path)
    _tamper(path, width=100_000, height=100_000)
    with pytest.raises(WorldFileError, match=r"keyframe 7 is corrupt: declared size 100000x100000"):
        read_world(path)


def test_a_bad_keyframe_fails_the_node_configure_with_the_file_and_id(tmp_path):
    path = _one_keyframe_file(tmp_path)
    _tamper(path, width=100_000)
    with pytest.raises(WorldFileError, match="keyframe 7"):
        WorldService(WorldServiceConfig(world_path=str(path)), renderer=NoRenderer())


# ------------------------------------------------------------------- 4. stale temp files
def test_temp_files_of_killed_writers_are_removed_at_start(tmp_path):
    path = tmp_path / "lab.world"
    write_world(path, [])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = [tmp_path / f".lab.world.tmp-{dead}-0123abcd", tmp_path / f".lab.world.tmp-{dead}-0123abcd-journal"]
    live = tmp_path / f".lab.world.tmp-{os.getppid()}-89abcdef"  # a writer still running
    other = tmp_path / f".other.world.tmp-{dead}-0123abcd"  # another file's
    for p in stale + [live, other]:
        p.write_bytes(b"x")
    with WorldFile.open(path):  # what the node does at start on world_path
        pass
    assert not any(p.exists() for p in stale)
    assert live.exists() and other.exists()
    assert remove_stale_temp_files(tmp_path / "other.world") == [str(other)]


# ------------------------------------------------------------------- 5. invalid depth, poses
def _depth_message(encoding: str, values: np.ndarray):
    from types import SimpleNamespace

    return SimpleNamespace(height=values.shape[0], width=values.shape[1], encoding=encoding, is_bigendian=0,
                           step=values.shape[1] * values.itemsize, data=values.tobytes())


@pytest.mark.parametrize("encoding, value", [("16UC1", np.uint16(65535)), ("32FC1", np.float32(1e30))])
def test_depth_without_a_valid_measurement_never_becomes_a_keyframe(encoding, value):
    from worldfm_ros.ros.image_conversion import image_to_depth

    depth = image_to_depth(_depth_message(encoding, np.full((240, 320), value)))
    colour = np.full((240, 320, 3), 128, np.uint8)
    world = WorldService(renderer=NoRenderer())
    assert world.ingest(Keyframe(colour, depth, K, np.eye(4), 0.0)) is None
    assert len(world) == 0
    assert world.ingest(frame(0.0)) == 0  # a valid frame still is


def test_depth_range_parameters(tmp_path):
    far = frame(0.0, depth_m=12.0)
    assert WorldService(renderer=NoRenderer()).ingest(far) is None  # depth.max_m = 10 by default
    assert WorldService(WorldServiceConfig(depth_max_m=20.0), renderer=NoRenderer()).ingest(far) == 0
    near = frame(0.0, depth_m=0.05)
    assert WorldService(renderer=NoRenderer()).ingest(near) is None  # depth.min_m = 0.1
    config = NodeConfig.from_parameters({"depth.min_m": 0.5, "depth.max_m": 4.0})
    assert (config.world_service_config().depth_min_m, config.world_service_config().depth_max_m) == (0.5, 4.0)
    with pytest.raises(ConfigError, match="depth.max_m"):
        NodeConfig.from_parameters({"depth.min_m": 5.0, "depth.max_m": 4.0})


def test_odometry_positions_are_bounded():
    buffer = OdometryBuffer()
    with pytest.raises(InvalidPoseError, match="beyond the bound"):
        buffer.add(1.0, pose_from_vector([1e300, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]))
    buffer.add(1.0, pose_from_vector([1e5, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]))
    tight = OdometryBuffer(max_position=10.0)
    with pytest.raises(InvalidPoseError):
        tight.add(1.0, pose_from_vector([0.0, 11.0, 0.0, 0.0, 0.0, 0.0, 1.0]))
    assert NodeConfig.from_parameters({"odom.max_position_m": 50.0}).odom_max_position_m == 50.0


# ------------------------------------------------------------------- 7. parameters
def test_world_path_expands_the_home_directory():
    assert NodeConfig(world_path="~/worlds/lab.world").world_path == os.path.expanduser("~/worlds/lab.world")
    assert NodeConfig(world_path="").world_path == ""


def test_misspelt_parameter_names_are_reported_with_the_closest_names():
    (warning,) = unknown_parameter_warnings(["sim.enabeld", "use_sim_time", "render.width"])
    assert "'sim.enabeld'" in warning and "'sim.enabled'" in warning


def test_world_service_reports_the_device_actually_used():
    import torch

    world = WorldService(WorldServiceConfig(device="cuda"))
    assert world.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert WorldService().device == "cpu"


def test_node_help_prints_usage_and_does_not_start():
    result = subprocess.run([sys.executable, "-m", "worldfm_ros.ros.node", "--help"], capture_output=True, text=True,
                            env=node_env(), cwd=str(ROOT), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: worldfm_node") and "depth.max_m" in result.stdout
    assert "[INFO]" not in result.stdout + result.stderr


# --- in-process node: namespaced YAML, read-only parameters, render request K -------------
@pytest.fixture
def make_node(ros_context):
    pytest.importorskip("rclpy")
    from worldfm_ros.ros.node import WorldFMNode

    nodes = []

    def make(**kwargs):
        node = WorldFMNode(context=ros_context, **kwargs)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node._release_all()
        node.destroy_node()


def test_the_shipped_yaml_applies_under_a_namespace(make_node, tmp_path):
    text = (ROOT / "config" / "worldfm.yaml").read_text()
    assert "      width: 320                      # default render_view camera width" in text
    params = tmp_path / "robot.yaml"
    params.write_text(text.replace("      width: 320                      # default render_view camera width",
                                   "      width: 321                      # default render_view camera width"))
    node = make_node(namespace="/robot1", cli_args=["--ros-args", "--params-file", str(params)])
    assert node.get_fully_qualified_name() == "/robot1/worldfm_node"
    assert node.config.render_width == 321


def test_runtime_parameter_changes_are_refused_while_configured(make_node):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    node = make_node()
    assert node.set_parameters([Parameter("render.width", value=400)])[0].successful  # unconfigured: applies
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.config.render_width == 400
    (result,) = node.set_parameters([Parameter("render.width", value=500)])
    assert not result.successful and "read when the node is configured" in result.reason
    assert node.get_parameter("render.width").value == 400
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert node.set_parameters([Parameter("render.width", value=500)])[0].successful


@pytest.mark.parametrize("k", [[500.0, 2.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0],
                               [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 2.0]],
                         ids=["skew", "k8"])
def test_render_requests_with_a_non_pinhole_k_are_refused(make_node, k):
    from sensor_msgs.msg import CameraInfo

    from worldfm_ros.core.errors import InvalidIntrinsicsError

    node = make_node()
    info = CameraInfo(width=640, height=480, k=k)
    with pytest.raises(InvalidIntrinsicsError, match="not a pinhole"):
        node._request_intrinsics(info)
    info.k = [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
    assert node._request_intrinsics(info).fx == 500.0


def test_the_node_announces_only_committed_keyframes_and_counts_failed_writes(make_node, tmp_path):
    """Disk full inside the node: the failed commit goes to the node's log at error level
    and to ~/status.world_file_errors, and the keyframe is not announced on ~/keyframes."""
    import errno

    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from worldfm_ros.core.frame_sync import SyncedPair
    from worldfm_ros.ros.image_conversion import depth_to_image, rgb_to_image
    from worldfm_ros.ros.messages import intrinsics_to_camera_info, make_odometry, seconds_to_time

    node = make_node(parameter_overrides=[Parameter("world_path", value=str(tmp_path / "lab.world")),
                                          Parameter("camera_to_base", value=[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])])
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    announced, statuses, errors = [], [], []
    node._publish_keyframe = announced.append
    node._status_pub.publish = statuses.append

    class Logger:  # the node's logger, recording what is logged at error level
        def error(self, message, **kwargs):
            errors.append(message)

        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    node.get_logger = Logger

    def offer(x: float) -> None:
        f = frame(x, seed=int(x))
        stamp = seconds_to_time(100.0 + x)
        node._on_camera_info(intrinsics_to_camera_info(K, stamp, "camera"))
        node._on_odometry(make_odometry(f.T_world_cam, np.zeros(3), np.zeros(3), stamp, "odom", "camera"))
        node._ingest_pair(SyncedPair(100.0 + x, rgb_to_image(f.colour, stamp=stamp),
                                     depth_to_image(f.depth, stamp=stamp), 0.0))

    offer(0.0)
    assert len(announced) == 1
    world_file = node.world._world_file

    def disk_full(keyframe, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    world_file.append = disk_full
    offer(2.0)
    assert len(announced) == 1 and len(node.world) == 2  # kept in memory, never announced
    assert len(errors) == 1 and "could not commit keyframe 1" in errors[0] and "No space left" in errors[0]
    node._publish_status()
    assert statuses[-1].world_file_errors == 1 and statuses[-1].pairs_offered == 2
