"""A camera driver's live stream becomes what ``worldfm-eval`` scores on the same frames.

Unlike ``test_replay_redkitchen.py`` (which paces its publisher by the node's progress), the
publisher here behaves like a real driver: it runs in **its own process**, publishes the
memory frames of ``../shared/data/redkitchen_a`` paced by the clock only (frame ``k`` at
``t0 + k / rate``, late frames are sent at once, never skipped or held back), best effort
with sensor-data QoS, 640x480 ``rgb8`` colour + ``16UC1`` depth + ``camera_info``, and
odometry at 30 Hz whose sample for an image's stamp is sent 0-30 ms (random) after the image.

The node (its own process) must then

* receive every colour image (``~/status.frames_received``; the DDS profile delivers them,
  so any loss would be inside the node's executor),
* account for every pair: offered to the insertion policy or skipped by the counted
  busy rule (``pairs_offered + pairs_skipped_busy``), nothing dropped otherwise,
* keep >= 95 % (15 Hz; 30 Hz: >= 90 %) of the keyframes ``worldfm-eval`` keeps on the same
  frames (computed in this test through the same evaluation code), each at the exact pose
  of the frame with its stamp,
* render the 25 leave-out targets through ``~/render_view`` within 0.3 dB of ``worldfm-eval``,

while (variant ``client``) a ``render_view`` client calls it at 10 Hz along the trajectory;
none of those calls may fail.

``python test/test_live_stream.py --publish ...`` is the publisher process (used by the test).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_DIR = Path(__file__).resolve().parent
SEQUENCE = "redkitchen_a"
STAMP0 = 1000.0
#: Odometry rate of the driver [Hz] and the largest delay of an odometry sample behind the
#: image with its stamp [s].
ODOM_RATE_HZ = 30.0
ODOM_MAX_DELAY = 0.030
#: Largest PSNR difference to worldfm-eval [dB] (CONTRACT.md v2, ingestion guarantees).
PSNR_TOLERANCE = 0.3
#: Least keyframe count, as a fraction of worldfm-eval's, per camera rate.
KEYFRAME_FRACTION = {15.0: 0.95, 30.0: 0.90}
#: Rate of the concurrent render_view client [Hz].
CLIENT_RATE_HZ = 10.0
WAIT = 60.0  # longest wait for any one step [s]


# ----------------------------------------------------------------------------- publisher
def publisher_main(argv) -> int:
    """The driver process: preloads every message, waits for the go file, then publishes
    clock-paced. Writes ``{"t0", "published", "late_max_s"}`` to ``--report``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--publish", action="store_true")
    parser.add_argument("--data", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--go", required=True, help="start publishing when this file exists")
    parser.add_argument("--ready", required=True, help="written once every message is built")
    parser.add_argument("--report", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    sys.path[:0] = [str(ROOT), str(TEST_DIR)]
    import rclpy
    from nav_msgs.msg import Odometry
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    from test_replay_redkitchen import depth_to_16uc1
    from worldfm_ros.core.datasets import open_dataset
    from worldfm_ros.core.evaluation import split_leave_out
    from worldfm_ros.core.pose import interpolate_pose
    from worldfm_ros.ros.dds import apply_dds_profile
    from worldfm_ros.ros.image_conversion import rgb_to_image
    from worldfm_ros.ros.messages import intrinsics_to_camera_info, make_odometry, seconds_to_time

    frames = open_dataset(Path(args.data), "7scenes", scale=1.0)
    memory_positions, _ = split_leave_out(list(range(len(frames))))
    rate = args.rate
    images, poses = [], []
    for k, position in enumerate(memory_positions):
        frame = frames[position]
        stamp = seconds_to_time(STAMP0 + k / rate)
        images.append((rgb_to_image(frame.colour, stamp=stamp, frame_id="camera"),
                       depth_to_16uc1(frame.depth, stamp, "camera"),
                       intrinsics_to_camera_info(frame.intrinsics, stamp, "camera")))
        poses.append(frame.T_world_cam)
    n = len(images)
    # Odometry at ODOM_RATE_HZ on the camera's time line; a sample between two images gets
    # the interpolated pose. Sample j has stamp STAMP0 + j / ODOM_RATE_HZ.
    per_image = ODOM_RATE_HZ / rate
    odom = []
    for j in range(int(round((n - 1) * per_image)) + 1):
        x = j / per_image
        i = min(int(x), n - 2)
        T = interpolate_pose(poses[i], poses[i + 1], x - i)
        odom.append(make_odometry(T, np.zeros(3), np.zeros(3), seconds_to_time(STAMP0 + j / ODOM_RATE_HZ),
                                  "odom", "camera"))
    rng = random.Random(args.seed)
    # Every event (wall offset, kind, message), sorted: images at k / rate, each odometry
    # sample 0-30 ms after its stamp's place on the time line.
    events = []
    for k, (colour, depth, info) in enumerate(images):
        t = k / rate
        events += [(t, 0, "info", info), (t, 1, "depth", depth), (t, 2, "colour", colour)]
    for j, msg in enumerate(odom):
        events.append((j / ODOM_RATE_HZ + rng.uniform(0.0, ODOM_MAX_DELAY), 3, "odom", msg))
    events.sort(key=lambda e: (e[0], e[1]))

    apply_dds_profile()
    rclpy.init()
    node = rclpy.create_node("live_camera_driver")
    pubs = {
        "colour": node.create_publisher(Image, "camera/image_raw", qos_profile_sensor_data),
        "depth": node.create_publisher(Image, "camera/depth/image_raw", qos_profile_sensor_data),
        "info": node.create_publisher(CameraInfo, "camera/camera_info", qos_profile_sensor_data),
        "odom": node.create_publisher(Odometry, "odom", qos_profile_sensor_data),
    }
    # A driver's publishers are up before the node; wait until every one of them has matched
    # the node's subscription (best effort drops what is sent before that).
    deadline = time.monotonic() + 120.0
    while any(pub.get_subscription_count() == 0 for pub in pubs.values()):
        if time.monotonic() > deadline:
            return 4
        rclpy.spin_once(node, timeout_sec=0.05)
    Path(args.ready).write_text("ready")
    while not os.path.exists(args.go):
        if time.monotonic() > deadline:
            return 3
        time.sleep(0.01)
    t0 = time.monotonic()
    late_max, published = 0.0, 0
    for offset, _, kind, msg in events:
        delay = t0 + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            late_max = max(late_max, -delay)
        pubs[kind].publish(msg)
        published += kind == "colour"
    time.sleep(1.0)  # let the last samples leave before the participant goes away
    Path(args.report).write_text(json.dumps({"published": published, "late_max_s": late_max,
                                             "seconds": time.monotonic() - t0}))
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(publisher_main(sys.argv[1:]))


# ----------------------------------------------------------------------------- the test
rclpy = pytest.importorskip("rclpy", reason="rclpy is needed to stream data over ROS topics")

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from test_replay_redkitchen import IDENTITY_CAMERA_TO_BASE, NodeProcess  # noqa: E402
from worldfm_ros.cli.eval import main as eval_main  # noqa: E402
from worldfm_ros.core.datasets import open_dataset  # noqa: E402
from worldfm_ros.core.evaluation import psnr, split_leave_out  # noqa: E402
from worldfm_ros.core.image_ops import downscale_rgbd  # noqa: E402
from worldfm_ros.core.pose import rotation_angle_deg  # noqa: E402
from worldfm_ros.msg import KeyframeInfo, WorldStatus  # noqa: E402
from worldfm_ros.ros.image_conversion import image_to_rgb  # noqa: E402
from worldfm_ros.ros.messages import (  # noqa: E402
    intrinsics_to_camera_info,
    matrix_to_pose,
    pose_to_matrix,
    seconds_to_time,
    time_to_seconds,
)
from worldfm_ros.srv import RenderView  # noqa: E402


@pytest.fixture(scope="module")
def kitchen(shared_data):
    data = shared_data / SEQUENCE
    if not data.is_dir():
        pytest.skip(f"{data} not found")
    return data


@pytest.fixture(scope="module")
def reference(kitchen, tmp_path_factory):
    """worldfm-eval's figures (geometric, defaults) on the same frames, computed here."""
    out = tmp_path_factory.mktemp("eval") / "eval.json"
    assert eval_main(["--data", str(kitchen), "--format", "7scenes", "--backend", "geometric",
                      "--json", str(out), "--quiet"]) == 0
    return json.loads(out.read_text())["geometric"]


class Monitor:
    """This process: listens to the node, calls ``~/render_view`` (targets and the 10 Hz client)."""

    def __init__(self, context, node: NodeProcess):
        self.node_process = node
        self.node = rclpy.create_node("live_stream_monitor", context=context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.keyframes: list = []
        self.status: list = []
        self.node.create_subscription(KeyframeInfo, "/worldfm_node/keyframes", self.keyframes.append,
                                      QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        self.node.create_subscription(WorldStatus, "/worldfm_node/status", self.status.append,
                                      QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.render = self.node.create_client(RenderView, "/worldfm_node/render_view")

    def spin_until(self, predicate, what: str, timeout: float = WAIT, tick=None) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.node_process.process.poll() is not None:
                raise AssertionError(f"worldfm_node exited ({self.node_process.process.returncode}) while waiting "
                                     f"for {what}\n--- node log ---\n{self.node_process.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n--- node log ---\n"
                                     f"{self.node_process.log()}")
            if tick is not None:
                tick()
            self.executor.spin_once(timeout_sec=0.005)

    def call_render(self, request):
        future = self.render.call_async(request)
        self.spin_until(future.done, "a render_view reply")
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


class RenderClient:
    """Calls ``~/render_view`` at :data:`CLIENT_RATE_HZ` at the given poses, one call
    outstanding (a tick that finds a call still pending is skipped, as a robot's would)."""

    def __init__(self, monitor: Monitor, poses, intrinsics):
        self.monitor, self.poses, self.intrinsics = monitor, poses, intrinsics
        self.next_t = time.monotonic()
        self.pending = None
        self.calls = self.failures = self.skipped = 0
        self.round_trips: list[float] = []
        self.messages: list[str] = []

    def tick(self) -> None:
        if not self.monitor.keyframes:
            self.next_t = time.monotonic()
            return  # render_view answers success: false until the world holds a keyframe
        if self.pending is not None and self.pending[0].done():
            future, sent = self.pending
            self.pending = None
            reply = future.result()
            self.round_trips.append(time.monotonic() - sent)
            if not reply.success:
                self.failures += 1
                self.messages.append(reply.message)
        now = time.monotonic()
        if now < self.next_t:
            return
        self.next_t += 1.0 / CLIENT_RATE_HZ
        if self.pending is not None:
            if now - self.pending[1] > 5.0:
                raise AssertionError("a render_view call got no reply within 5 s")
            self.skipped += 1
            return
        request = RenderView.Request()
        request.pose = matrix_to_pose(self.poses[self.calls % len(self.poses)])
        request.camera_info = intrinsics_to_camera_info(self.intrinsics, seconds_to_time(0.0), "render")
        request.want_depth = True
        self.calls += 1
        self.pending = (self.monitor.render.call_async(request), now)


def _spawn_publisher(kitchen: Path, rate: float, workdir: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    log = open(workdir / "publisher.log", "w")
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--publish", "--data", str(kitchen), "--rate", str(rate),
         "--go", str(workdir / "go"), "--ready", str(workdir / "ready"), "--report", str(workdir / "report.json")],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))


#: The two variants CI runs (~25 s each); ``WORLDFM_LIVE_ALL=1`` adds 15 Hz alone and 30 Hz
#: with the client (the four variants of issue 10's acceptance).
VARIANTS = [(15.0, True), (30.0, False)]
if os.environ.get("WORLDFM_LIVE_ALL", "0") == "1":
    VARIANTS += [(15.0, False), (30.0, True)]


@pytest.mark.parametrize("rate, with_client", VARIANTS,
                         ids=[f"{r:g}hz{'-client' if c else ''}" for r, c in VARIANTS])
def test_live_stream_scores_like_worldfm_eval(kitchen, reference, tmp_path, ros_context, rate, with_client):
    frames = open_dataset(kitchen, "7scenes", scale=1.0)
    memory_positions, target_positions = split_leave_out(list(range(len(frames))))
    n = len(memory_positions)
    publisher = _spawn_publisher(kitchen, rate, tmp_path)
    node = NodeProcess(tmp_path / "node.log", f"camera_to_base:={IDENTITY_CAMERA_TO_BASE}")
    monitor = None
    try:
        monitor = Monitor(ros_context, node)
        monitor.spin_until(lambda: monitor.render.service_is_ready() and monitor.status
                           and (tmp_path / "ready").exists(), "the node and the driver to come up", timeout=120.0)
        assert publisher.poll() is None, (tmp_path / "publisher.log").read_text()[-3000:]
        client = None
        if with_client:
            poses = [frames[p].T_world_cam for p in target_positions]
            client = RenderClient(monitor, poses, frames[target_positions[0]].intrinsics.scaled(0.5))
        (tmp_path / "go").write_text("go")
        t0 = time.monotonic()
        monitor.spin_until(lambda: publisher.poll() is not None, "the driver to publish every frame",
                           timeout=n / rate + 60.0, tick=client.tick if client else None)
        stream_s = time.monotonic() - t0
        assert publisher.returncode == 0, (tmp_path / "publisher.log").read_text()[-3000:]
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["published"] == n

        def settled() -> bool:
            if len(monitor.status) < 2:
                return False
            a, b = monitor.status[-2], monitor.status[-1]
            accounted = b.pairs_offered + b.pairs_skipped_busy + b.frames_dropped
            return b.frames_received >= n and accounted >= b.frames_received and a.keyframes == b.keyframes \
                and a.pairs_offered == b.pairs_offered

        try:
            monitor.spin_until(settled, "the node to account for every frame", timeout=30.0,
                               tick=client.tick if client else None)
        except AssertionError as error:
            raise AssertionError(f"last status {monitor.status[-1] if monitor.status else None}; driver {report}\n"
                                 f"{error}") from None
        status = monitor.status[-1]
        counts = (f"received {status.frames_received}, offered {status.pairs_offered}, skipped busy "
                  f"{status.pairs_skipped_busy}, dropped {status.frames_dropped} of {n} published in {stream_s:.1f} s "
                  f"(driver late by up to {report['late_max_s'] * 1e3:.0f} ms)")
        assert status.frames_received == n, counts
        assert status.frames_dropped == 0, counts + "\n" + node.log()
        assert status.pairs_offered + status.pairs_skipped_busy == n, counts
        if rate <= 15.0:
            assert status.pairs_offered >= 0.98 * n, counts  # CONTRACT.md v2: >= 98 % at 15 Hz
        assert len(monitor.keyframes) == status.keyframes

        # Each keyframe sits exactly at the pose of the frame with its stamp.
        for info in monitor.keyframes:
            k = round((time_to_seconds(info.stamp) - STAMP0) * rate)
            truth = frames[memory_positions[k]].T_world_cam
            T = pose_to_matrix(info.pose)
            assert np.abs(T[:3, 3] - truth[:3, 3]).max() < 1e-6, f"keyframe {info.id} (frame {k}) position"
            assert rotation_angle_deg(T[:3, :3], truth[:3, :3]) < 1e-4, f"keyframe {info.id} rotation"

        scores = []
        for position in target_positions:
            target = frames[position]
            K = target.intrinsics.scaled(0.5)
            truth, _, _ = downscale_rgbd(target.colour, target.depth, target.intrinsics, K.width, K.height)
            request = RenderView.Request()
            request.pose = matrix_to_pose(target.T_world_cam)
            request.camera_info = intrinsics_to_camera_info(K, seconds_to_time(0.0), "render")
            reply = monitor.call_render(request)
            assert reply.success, f"render_view at target {position}: {reply.message}"
            scores.append(psnr(image_to_rgb(reply.image), truth))
        live_psnr = float(np.mean(scores))
        client_text = ""
        if client is not None:
            rt = np.percentile(client.round_trips, [50, 95]) * 1e3 if client.round_trips else [float("nan")] * 2
            client_text = (f"; client {client.calls} calls, {client.failures} failed, {client.skipped} ticks skipped, "
                           f"round trip p50/p95 {rt[0]:.0f}/{rt[1]:.0f} ms")
        summary = (f"live {rate:g} Hz: {counts}; {status.keyframes} keyframes, {live_psnr:.3f} dB over {len(scores)} "
                   f"targets; worldfm-eval {reference['keyframes']} keyframes, {reference['psnr']:.3f} dB{client_text}")
        print(summary)
        assert len(scores) == reference["views"]
        assert status.keyframes >= KEYFRAME_FRACTION[rate] * reference["keyframes"], summary
        assert abs(live_psnr - reference["psnr"]) <= PSNR_TOLERANCE, summary
        if client is not None:
            assert client.calls >= 0.5 * CLIENT_RATE_HZ * stream_s, summary
            assert client.failures == 0, f"{summary}: {client.messages[:3]}"
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait(timeout=10)
        if monitor is not None:
            monitor.close()
        rc = node.stop()
    assert rc == 0, f"node exited with {rc}\n{node.log()}"
