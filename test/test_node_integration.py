"""worldfm_node end to end over real DDS: the node runs in its own process (as a robot would
run it), this test process is the robot and the client.

One node process serves the whole module (start-up costs seconds); the tests run in file
order and build on each other: empty world -> frames become keyframes -> renders -> simulator
-> bad inputs -> save/restart -> reset. A synthetic world gives exact ground truth colour and
depth for every pose. Every wait has a timeout; the node's log is printed when one expires.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is needed for the node integration tests")

from geometry_msgs.msg import Pose, Twist  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from worldfm_ros.core.camera import Intrinsics  # noqa: E402
from worldfm_ros.core.pose import pose_from_vector  # noqa: E402
from worldfm_ros.core.synthetic.scene import SyntheticWorld  # noqa: E402
from worldfm_ros.core.synthetic.trajectory import base_pose  # noqa: E402
from worldfm_ros.core.world_file import read_world  # noqa: E402
from worldfm_ros.msg import KeyframeInfo, WorldStatus  # noqa: E402
from worldfm_ros.ros.image_conversion import depth_to_image, rgb_to_image  # noqa: E402
from worldfm_ros.ros.messages import (  # noqa: E402
    intrinsics_to_camera_info,
    make_odometry,
    matrix_to_pose,
    pose_to_matrix,
    seconds_to_time,
    time_to_seconds,
)
from worldfm_ros.srv import RenderView, SaveWorld, SetPose  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
K640 = Intrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=640, height=480)
K320 = K640.scaled(0.5)
#: Camera 10 cm ahead of the base and 1 m up, looking forward (exercises the extrinsic).
CAMERA_TO_BASE = [0.1, 0.0, 1.0, -0.5, 0.5, -0.5, 0.5]
T_BASE_CAM = pose_from_vector(CAMERA_TO_BASE)
#: Base poses of the recorded frames: turning on the spot in 45 degree steps.
BASE_XY = (0.2, -0.1)
YAWS = [i * math.pi / 4 for i in range(8)]
STAMP0 = 1000.0
WAIT = 20.0  # default timeout of a wait [s]


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    diff = a[mask].astype(np.float64) - b[mask].astype(np.float64)
    mse = float(np.mean(diff**2)) / 255.0**2
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def decode_rgb(msg: Image) -> np.ndarray:
    assert msg.encoding == "rgb8" and msg.step == msg.width * 3
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)


def decode_depth(msg: Image) -> np.ndarray:
    assert msg.encoding == "32FC1" and msg.step == msg.width * 4
    return np.frombuffer(bytes(msg.data), np.float32).reshape(msg.height, msg.width)


# ---------------------------------------------------------------------- processes and client
class NodeProcess:
    """``python -m worldfm_ros.ros.node`` with the given parameters; logs to a file."""

    def __init__(self, log_path: Path, *params: str):
        self.log_path = log_path
        args = [sys.executable, "-m", "worldfm_ros.ros.node", "--ros-args",
                "--params-file", str(ROOT / "config" / "worldfm.yaml")]
        for p in params:
            args += ["-p", p]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        env["PYTHONUNBUFFERED"] = "1"
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()[-4000:]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        return self.process.returncode


class Client:
    """The robot side: publishes sensor streams, listens to the node, calls its services."""

    def __init__(self, context):
        self.node = rclpy.create_node("worldfm_test_client", context=context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        n = self.node
        self.colour_pub = n.create_publisher(Image, "camera/image_raw", QoSProfile(depth=5))
        self.depth_pub = n.create_publisher(Image, "camera/depth/image_raw", QoSProfile(depth=5))
        self.info_pub = n.create_publisher(CameraInfo, "camera/camera_info", reliable)
        self.odom_pub = n.create_publisher(Odometry, "odom", reliable)
        self.cmd_pub = n.create_publisher(Twist, "sim/cmd_vel", reliable)
        self.keyframes: list[KeyframeInfo] = []
        self.status: list[WorldStatus] = []
        self.sim = {"image": [], "depth": [], "info": [], "odom": []}
        n.create_subscription(KeyframeInfo, "/worldfm_node/keyframes", self.keyframes.append,
                              QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        n.create_subscription(WorldStatus, "/worldfm_node/status", self.status.append, reliable)
        for key, kind, topic in (("image", Image, "sim/camera/image_raw"), ("depth", Image, "sim/camera/depth/image_raw"),
                                 ("info", CameraInfo, "sim/camera/camera_info"), ("odom", Odometry, "sim/odom")):
            n.create_subscription(kind, topic, self.sim[key].append, QoSProfile(depth=50))
        self.render = n.create_client(RenderView, "/worldfm_node/render_view")
        self.save = n.create_client(SaveWorld, "/worldfm_node/save_world")
        self.reset = n.create_client(Trigger, "/worldfm_node/reset_world")
        self.set_pose = n.create_client(SetPose, "sim/set_pose")

    def spin_until(self, predicate, timeout: float = WAIT, what: str = "", node: NodeProcess | None = None) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                log = node.log() if node is not None else ""
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n--- node log ---\n{log}")
            self.executor.spin_once(timeout_sec=0.02)

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)

    def call(self, client, request, timeout: float = WAIT):
        assert client.wait_for_service(timeout_sec=timeout), f"service {client.srv_name} not available"
        future = client.call_async(request)
        self.spin_until(future.done, timeout, f"reply of {client.srv_name}")
        return future.result()

    def latest_status(self, node: NodeProcess) -> WorldStatus:
        """The first status published from now on."""
        count = len(self.status)
        self.spin_until(lambda: len(self.status) > count, 5.0, "a status message", node)
        return self.status[-1]

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()


def render_request(T_world_cam: np.ndarray, intrinsics: Intrinsics | None, want_depth: bool = True) -> RenderView.Request:
    request = RenderView.Request()
    request.pose = matrix_to_pose(T_world_cam)
    if intrinsics is not None:
        request.camera_info = intrinsics_to_camera_info(intrinsics, seconds_to_time(0.0), "render")
    request.want_depth = want_depth
    return request


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return SyntheticWorld.generate(1, layout="single", size=(5.0, 5.0))


@pytest.fixture(scope="module")
def recorded(world):
    """The robot's recording: base poses, camera poses, 640x480 colour and depth."""
    frames = []
    for i, yaw in enumerate(YAWS):
        T_world_base = base_pose(*BASE_XY, yaw)
        T_world_cam = T_world_base @ T_BASE_CAM
        colour, depth = world.render(T_world_cam, K640)
        frames.append((STAMP0 + i, T_world_base, T_world_cam, colour, depth))
    return frames


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("node")
    return {"dir": d, "live": d / "live.world", "saved": d / "saved.world"}


@pytest.fixture(scope="module")
def node(paths, ros_context):
    proc = NodeProcess(
        paths["dir"] / "node.log",
        f"camera_to_base:={CAMERA_TO_BASE}", f"world_path:={paths['live']}",
        "sim.enabled:=true", "sim.rate_hz:=10.0", "sim.width:=320", "sim.height:=240",
    )
    yield proc
    rc = proc.stop()
    assert rc == 0, f"node exited with {rc}\n{proc.log()}"


@pytest.fixture(scope="module")
def client(ros_context, node):
    c = Client(ros_context)
    deadline = time.monotonic() + 60.0
    while not c.render.wait_for_service(timeout_sec=0.5):
        assert node.process.poll() is None, f"node exited with {node.process.returncode}\n{node.log()}"
        assert time.monotonic() < deadline, f"node did not come up in 60 s\n{node.log()}"
    yield c
    c.close()


def publish_frame(client: Client, stamp: float, T_world_base, colour, depth, intrinsics=K640,
                  colour_msg: Image | None = None, depth_msg: Image | None = None, odom_late: bool = False) -> None:
    """Odometry first (so the pose at the image stamp is known), then camera info and images;
    with ``odom_late`` the odometry of the image's stamp comes 30 ms after the images, as it
    often does on a robot (the node must wait for it, not extrapolate)."""
    t = seconds_to_time(stamp)
    odom = make_odometry(T_world_base, np.zeros(3), np.zeros(3), t, "odom", "base_link")
    if not odom_late:
        client.odom_pub.publish(odom)
        client.spin_for(0.05)
    client.info_pub.publish(intrinsics_to_camera_info(intrinsics, t, "camera"))
    client.spin_for(0.05)
    client.colour_pub.publish(colour_msg if colour_msg is not None else rgb_to_image(colour, stamp=t, frame_id="camera"))
    client.depth_pub.publish(depth_msg if depth_msg is not None else depth_to_image(depth, stamp=t, frame_id="camera"))
    if odom_late:
        client.spin_for(0.03)
        client.odom_pub.publish(odom)


@pytest.fixture(scope="module")
def ingested(client, node, recorded):
    """Publish the recording; each frame is a new view, so each must become a keyframe. Every
    other frame's odometry arrives after its images (1 s after the previous odometry: far
    beyond sync.max_extrapolation, so only waiting for it gives the frame a pose)."""
    for index, (stamp, T_world_base, _, colour, depth) in enumerate(recorded):
        expected = len(client.keyframes) + 1
        for _attempt in range(3):  # sensor-data QoS is best effort: a lost image is resent
            publish_frame(client, stamp, T_world_base, colour, depth, odom_late=index % 2 == 1)
            try:
                client.spin_until(lambda: len(client.keyframes) >= expected, 5.0, f"keyframe at {stamp}", node)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError(f"frame {stamp} never became a keyframe\n{node.log()}")
    return recorded


# ---------------------------------------------------------------------- tests (file order)
def test_nothing_is_served_before_the_first_keyframe(client, node):
    reply = client.call(client.render, render_request(np.eye(4), None))
    assert not reply.success and "keyframe" in reply.message
    reply = client.call(client.render, render_request(np.eye(4), K320))
    assert not reply.success and "keyframe" in reply.message
    client.spin_for(1.0)
    assert client.sim["image"] == [] and client.sim["odom"] == []
    status = client.latest_status(node)
    assert status.keyframes == 0 and status.backend == "geometric"


def test_qos_of_the_node_endpoints(client, node):
    """Subscriptions are best effort (they match any publisher); publications are reliable
    and volatile (they reach any subscriber)."""
    from rclpy.qos import DurabilityPolicy

    def endpoints(topic, publishers):
        get = client.node.get_publishers_info_by_topic if publishers else client.node.get_subscriptions_info_by_topic

        def of_the_node():
            return [e for e in get(topic) if e.node_name == "worldfm_node"]

        client.spin_until(lambda: bool(of_the_node()), 10.0, f"worldfm_node endpoint on {topic}", node)
        return of_the_node()

    for topic in ("/camera/image_raw", "/camera/depth/image_raw", "/camera/camera_info", "/odom", "/sim/cmd_vel"):
        (sub,) = endpoints(topic, publishers=False)
        assert sub.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT, topic
    for topic in ("/worldfm_node/status", "/worldfm_node/keyframes", "/sim/odom", "/sim/camera/image_raw",
                  "/sim/camera/camera_info", "/sim/camera/depth/image_raw"):
        (pub,) = endpoints(topic, publishers=True)
        assert pub.qos_profile.reliability == ReliabilityPolicy.RELIABLE, topic
        assert pub.qos_profile.durability == DurabilityPolicy.VOLATILE, topic


def test_frames_on_topics_become_keyframes(client, node, ingested, paths):
    assert [k.id for k in client.keyframes] == list(range(len(ingested)))
    for info, (stamp, _, T_world_cam, _, _) in zip(client.keyframes, ingested):
        assert time_to_seconds(info.stamp) == pytest.approx(stamp)
        # the node composed odometry with camera_to_base: T_world_cam = T_world_base @ T_base_cam
        np.testing.assert_allclose(pose_to_matrix(info.pose), T_world_cam, atol=1e-6)
    assert client.keyframes[0].coverage_gain == pytest.approx(1.0)
    assert 0.0 < client.keyframes[1].coverage_gain < 0.9  # 45 degrees on: part of the view was seen
    status = client.latest_status(node)
    assert status.keyframes == len(ingested)
    assert status.frames_received >= len(ingested)
    # Frames whose odometry came after the images waited for it: none was dropped for lack of
    # a pose (nor resent: the fixture resends only lost frames).
    assert status.frames_dropped == 0, node.log()
    assert status.frames_received == len(ingested), node.log()
    assert status.memory_bytes >= len(ingested) * 320 * 240 * 7  # stored downscaled: rgb + f32 depth
    assert status.world_path == str(paths["live"])
    # committed to the world file as they came
    assert [kf.id for kf in read_world(paths["live"])] == list(range(len(ingested)))


def test_render_view_matches_the_exact_synthetic_view(client, node, ingested, world):
    # default camera (width 0): the latest CameraInfo rescaled to render.width x render.height
    T = ingested[2][2].copy()
    T[:3, 3] += T[:3, :3] @ [0.01, -0.005, 0.01]  # 1.5 cm off the keyframe
    reply = client.call(client.render, render_request(T, None))
    assert reply.success, reply.message
    rgb, depth = decode_rgb(reply.image), decode_depth(reply.depth)
    assert rgb.shape == (240, 320, 3)
    truth_rgb, truth_depth = world.render(T, K320, supersample=2)
    covered = depth > 0
    assert covered.mean() > 0.9 and reply.coverage > 0.9
    quality = psnr(rgb, truth_rgb, covered)
    assert quality >= 35.0, f"PSNR on covered pixels {quality:.1f} dB"
    assert np.median(np.abs(depth[covered] - truth_depth[covered])) < 0.01
    assert len(reply.reference_ids) >= 1 and reply.render_ms > 0
    # an explicit camera of another size, between two keyframes
    T_mid = base_pose(*BASE_XY, math.pi / 8) @ T_BASE_CAM
    small = K640.resized(200, 150)
    reply = client.call(client.render, render_request(T_mid, small, want_depth=False))
    assert reply.success, reply.message
    assert (reply.image.width, reply.image.height) == (200, 150) and len(reply.depth.data) == 0
    truth_rgb, _ = world.render(T_mid, small)
    assert psnr(decode_rgb(reply.image), truth_rgb, np.ones((150, 200), bool)) > 20.0
    # the contract serves up to 4096 pixels per side
    wide = Intrinsics(fx=2000.0, fy=2000.0, cx=2047.5, cy=15.5, width=4096, height=32)
    reply = client.call(client.render, render_request(T_mid, wide))
    assert reply.success, reply.message
    assert (reply.image.width, reply.image.height, reply.depth.width) == (4096, 32, 4096)


def test_sim_stream_keeps_its_rate(client, node, ingested):
    for messages in client.sim.values():
        messages.clear()
    client.spin_for(3.0)
    images = client.sim["image"]
    stamps = [time_to_seconds(m.header.stamp) for m in images]
    assert len(stamps) >= 2, node.log()
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert rate >= 9.0, f"simulated camera at {rate:.2f} Hz"
    assert (images[-1].width, images[-1].height, images[-1].encoding) == (320, 240, "rgb8")
    for key in ("depth", "info", "odom"):
        others = {time_to_seconds(m.header.stamp) for m in client.sim[key]}
        assert set(stamps[1:-1]) <= others, f"sim/{key} stamps differ from the images'"
    assert client.sim["depth"][-1].encoding == "32FC1"
    assert client.latest_status(node).sim_rate_hz >= 9.0


def test_cmd_vel_moves_the_virtual_camera(client, node, ingested, world):
    start = base_pose(*BASE_XY, 0.0)
    request = SetPose.Request()
    request.pose = matrix_to_pose(start)
    assert client.call(client.set_pose, request).success
    v, w = 0.2, 0.5  # an arc of radius 0.4 m
    command = Twist()
    command.linear.x, command.angular.z = v, w
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        client.cmd_pub.publish(command)
        client.spin_for(0.05)
    client.spin_for(1.0)  # past sim.cmd_timeout: the robot has stopped
    moving = [m for m in client.sim["odom"] if m.twist.twist.linear.x == pytest.approx(v)]
    assert moving and moving[-1].twist.twist.angular.z == pytest.approx(w)
    for messages in client.sim.values():
        messages.clear()
    client.spin_until(lambda: len(client.sim["image"]) >= 3, 5.0, "sim frames", node)
    stamp_of = {key: {time_to_seconds(m.header.stamp): m for m in client.sim[key]} for key in client.sim}
    common = set(stamp_of["image"]) & set(stamp_of["odom"]) & set(stamp_of["info"]) & set(stamp_of["depth"])
    assert common, "no simulated frame with all four messages"
    stamp = max(common)
    odom, image, info = stamp_of["odom"][stamp], stamp_of["image"][stamp], stamp_of["info"][stamp]
    depth = decode_depth(stamp_of["depth"][stamp])
    assert odom.twist.twist.linear.x == 0.0  # the command timed out
    T_base = pose_to_matrix(odom.pose.pose)
    rel = np.linalg.inv(start) @ T_base
    yaw = math.atan2(rel[1, 0], rel[0, 0])
    assert 0.2 < yaw < 0.9, f"turned {yaw:.2f} rad"
    r = v / w  # any duration of a constant twist ends on this arc
    np.testing.assert_allclose(rel[:3, 3], [r * math.sin(yaw), r * (1 - math.cos(yaw)), 0.0], atol=1e-6)
    # the image with the odometry's stamp shows the world from exactly that pose
    intrinsics = Intrinsics.from_matrix(info.k, info.width, info.height)
    truth_rgb, truth_depth = world.render(T_base @ T_BASE_CAM, intrinsics, supersample=2)
    covered = depth > 0
    assert covered.mean() > 0.8
    assert psnr(decode_rgb(image), truth_rgb, covered) >= 30.0
    assert np.median(np.abs(depth[covered] - truth_depth[covered])) < 0.02


def test_bad_inputs_are_refused_and_the_node_keeps_serving(client, node, ingested):
    bad_requests = {
        "huge": render_request(np.eye(4), K320),
        "zero K": render_request(np.eye(4), K320),
        "nan pose": render_request(np.eye(4), K320),
        "zero quaternion": render_request(np.eye(4), K320),
    }
    huge = bad_requests["huge"].camera_info
    huge.width = huge.height = 100000
    huge.k = [500.0, 0.0, 50000.0, 0.0, 500.0, 50000.0, 0.0, 0.0, 1.0]
    bad_requests["zero K"].camera_info.k = [0.0] * 9
    bad_requests["nan pose"].pose.position.x = math.nan
    bad_requests["zero quaternion"].pose.orientation = Pose().orientation
    bad_requests["zero quaternion"].pose.orientation.w = 0.0
    for name, request in bad_requests.items():
        reply = client.call(client.render, request)
        assert not reply.success and reply.message, name
        assert len(reply.image.data) == 0
    before = client.latest_status(node)
    # frames at a new pose: each would be a keyframe if it were valid
    T_base = base_pose(-0.5, 0.6, 1.0)
    colour = np.zeros((480, 640, 3), np.uint8)
    depth = np.full((480, 640), 2.0, np.float32)
    stamp = STAMP0 + 100.0
    for case in ("short buffer", "unknown encoding", "depth size mismatch"):
        t = seconds_to_time(stamp)
        colour_msg, depth_msg = rgb_to_image(colour, stamp=t), depth_to_image(depth, stamp=t)
        if case == "short buffer":
            colour_msg.data = bytes(colour_msg.data)[: len(colour_msg.data) // 2]
        elif case == "unknown encoding":
            colour_msg.encoding = "yuv422_weird"
        else:
            depth_msg = depth_to_image(depth[:240, :320], stamp=t)
        publish_frame(client, stamp, T_base, colour, depth, colour_msg=colour_msg, depth_msg=depth_msg)
        client.spin_for(0.2)
        stamp += 1.0
    for case in ("nan position", "zero quaternion"):
        t = seconds_to_time(stamp)
        msg = make_odometry(T_base, np.zeros(3), np.zeros(3), t, "odom", "base_link")
        if case == "nan position":
            msg.pose.pose.position.y = math.nan
        else:
            msg.pose.pose.orientation = Pose().orientation
            msg.pose.pose.orientation.w = 0.0
        client.odom_pub.publish(msg)  # refused: the images at its stamp find no pose
        client.spin_for(0.05)
        client.colour_pub.publish(rgb_to_image(colour, stamp=t))
        client.depth_pub.publish(depth_to_image(depth, stamp=t))
        client.spin_for(0.2)
        stamp += 1.0
    client.spin_for(1.2)
    after = client.latest_status(node)
    assert after.keyframes == before.keyframes, str([time_to_seconds(k.stamp) for k in client.keyframes])
    assert after.frames_dropped >= before.frames_dropped + 4
    log = node.log()  # dropped, never silently
    for expected in ("data holds 460800 bytes", "depth size 320x240 differs", "ignored odometry",
                     "newer than the newest odometry"):
        assert expected in log, f"no warning with {expected!r}\n{log}"
    assert client.call(client.render, render_request(ingested[0][2], K320)).success
    assert node.process.poll() is None


def test_save_then_restart_renders_identical_bytes(client, node, ingested, paths, ros_context):
    reply = client.call(client.save, SaveWorld.Request(path=""))
    assert not reply.success and reply.message
    reply = client.call(client.save, SaveWorld.Request(path=str(paths["saved"])))
    assert reply.success and reply.keyframes == len(ingested), reply.message
    assert paths["saved"].is_file() and not Path(str(paths["saved"]) + ".world").exists()
    T = base_pose(*BASE_XY, 0.3) @ T_BASE_CAM
    first = client.call(client.render, render_request(T, K320))
    assert first.success
    assert node.stop() == 0, node.log()  # the second node takes the name worldfm_node
    client.status.clear()
    second = NodeProcess(paths["dir"] / "node2.log", f"world_path:={paths['saved']}", f"camera_to_base:={CAMERA_TO_BASE}")
    try:
        client.spin_until(lambda: len(client.status) > 0, 60.0, "the restarted node", second)
        again = client.call(client.render, render_request(T, K320))
        assert again.success, again.message
        assert bytes(again.image.data) == bytes(first.image.data)
        assert bytes(again.depth.data) == bytes(first.depth.data)
        assert list(again.reference_ids) == list(first.reference_ids)
        status = client.latest_status(second)
        assert status.keyframes == len(ingested)
        # reset forgets every keyframe and empties the world file
        reply = client.call(client.reset, Trigger.Request())
        assert reply.success
        assert not client.call(client.render, render_request(T, K320)).success
        assert read_world(paths["saved"]) == []
    finally:
        rc = second.stop()
    assert rc == 0, second.log()


@pytest.mark.parametrize("override, name", [("render.width:=0", "render.width"), ("backend:=magic", "backend")])
def test_invalid_parameter_stops_start_up_naming_it(tmp_path, override, name):
    proc = NodeProcess(tmp_path / "bad.log", override)
    try:
        rc = proc.process.wait(timeout=60)
    finally:
        proc.stop()
    assert rc != 0
    assert f"parameter '{name}'" in proc.log_path.read_text()
