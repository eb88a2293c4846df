"""Replaying real RGB-D data over ROS topics scores the same as ``worldfm-eval``.

The 7-Scenes sequence ``../shared/data/redkitchen_a`` is played into a real ``worldfm_node``
(its own process) the way a robot would publish it: 640x480 ``rgb8`` colour, ``16UC1`` depth
in millimetres (0 = invalid), ``camera_info`` and odometry whose pose is the camera's optical
pose (``camera_to_base`` = identity), odometry and camera info one frame ahead of the images,
stamps 1/15 s apart. Only the leave-out protocol's memory frames are played (sorted position ``i`` with ``i % 10 != 5``); the node then renders
each target through ``~/render_view`` at its ground-truth pose and intrinsics scaled by 0.5
(320x240). The mean PSNR against the targets' area-downscaled colour must match the figure
``worldfm-eval`` (geometric backend, defaults) computes on the same data in the same test,
within 0.3 dB, with the same number of keyframes (``KEYFRAME_TOLERANCE``): the node
and the evaluation share the world service, so any larger gap is a bug in the ROS path
(pairing, odometry, stamps, downscaling, dropped or reordered frames). Every keyframe the node
reports must sit exactly at the pose of the frame with its stamp.

Pacing: the publisher never runs more than ``MAX_LEAD`` frames ahead of the newest frame the
node is known to have taken (from ``~/keyframes`` stamps and ``~/status.frames_received``), at
most at 15 Hz; the test then checks that every frame was received and none dropped. No camera
driver waits for its subscribers like this: ``test_live_stream.py`` publishes the same frames
clock-paced from another process, as a driver does (it reuses this module's helpers). This
test stays as the strict version: the same keyframe count as ``worldfm-eval``, exactly.
"""

from __future__ import annotations

import array
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is needed to replay data over ROS topics")

from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from test_node_integration import NodeProcess  # noqa: E402,F401 (also used by test_live_stream)

from worldfm_ros.cli.eval import main as eval_main  # noqa: E402
from worldfm_ros.core.datasets import open_dataset  # noqa: E402
from worldfm_ros.core.evaluation import psnr, split_leave_out  # noqa: E402
from worldfm_ros.core.image_ops import downscale_rgbd  # noqa: E402
from worldfm_ros.core.pose import rotation_angle_deg  # noqa: E402
from worldfm_ros.msg import KeyframeInfo, WorldStatus  # noqa: E402
from worldfm_ros.ros.image_conversion import image_to_rgb, rgb_to_image  # noqa: E402
from worldfm_ros.ros.messages import (  # noqa: E402
    intrinsics_to_camera_info,
    make_odometry,
    matrix_to_pose,
    pose_to_matrix,
    seconds_to_time,
    time_to_seconds,
)
from worldfm_ros.srv import RenderView  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEQUENCE = "redkitchen_a"
#: Camera rate of the replay; stamp of memory frame ``k`` is ``STAMP0 + k / RATE_HZ`` [s].
RATE_HZ = 15.0
STAMP0 = 1000.0
#: Frames published ahead of the newest one the node is known to have taken (its queue is 5).
MAX_LEAD = 3
#: Largest PSNR difference between the ROS replay and worldfm-eval [dB].
PSNR_TOLERANCE = 0.3
#: Largest relative difference of the keyframe counts: none. The world service judges every
#: frame at its stored (downscaled) resolution, so 640x480 over ROS and 320x240 in
#: worldfm-eval get the same decisions (before that fix: 191 vs 195 keyframes).
KEYFRAME_TOLERANCE = 0.0
WAIT = 30.0  # longest wait for any one step [s]
IDENTITY_CAMERA_TO_BASE = "[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]"


def depth_to_16uc1(depth_m: np.ndarray, stamp, frame_id: str) -> Image:
    """``float32 [H, W]`` metres (0 = invalid) -> ``16UC1`` millimetres, as a depth camera
    driver publishes it. The dataset's depth is whole millimetres, so this is exact."""
    mm = np.round(depth_m.astype(np.float64) * 1000.0)
    if mm.max() > 65534:
        raise ValueError(f"depth {mm.max()} mm does not fit 16UC1")
    mm = mm.astype(np.uint16)
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = mm.shape
    msg.encoding = "16UC1"
    msg.is_bigendian = int(sys.byteorder == "big")
    msg.step = 2 * mm.shape[1]
    msg.data = array.array("B", mm.tobytes())
    return msg


class Robot:
    """Publishes the recording, listens to the node, calls ``~/render_view``."""

    def __init__(self, context, node: NodeProcess):
        self.node_process = node
        self.node = rclpy.create_node("worldfm_replay_robot", context=context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        n = self.node
        self.colour_pub = n.create_publisher(Image, "camera/image_raw", QoSProfile(depth=5))
        self.depth_pub = n.create_publisher(Image, "camera/depth/image_raw", QoSProfile(depth=5))
        self.info_pub = n.create_publisher(CameraInfo, "camera/camera_info", reliable)
        self.odom_pub = n.create_publisher(Odometry, "odom", reliable)
        self.keyframes: list[KeyframeInfo] = []
        self.status: list[WorldStatus] = []
        n.create_subscription(KeyframeInfo, "/worldfm_node/keyframes", self.keyframes.append,
                              QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        n.create_subscription(WorldStatus, "/worldfm_node/status", self.status.append, reliable)
        self.render = n.create_client(RenderView, "/worldfm_node/render_view")

    def spin_until(self, predicate, what: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.node_process.process.poll() is not None:
                raise AssertionError(f"worldfm_node exited ({self.node_process.process.returncode}) while waiting "
                                     f"for {what}\n--- node log ---\n{self.node_process.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n--- node log ---\n"
                                     f"{self.node_process.log()}")
            self.executor.spin_once(timeout_sec=0.005)

    def taken(self) -> int:
        """Index of the newest memory frame the node is known to have taken off its queue."""
        newest = -1
        if self.keyframes:
            newest = round((time_to_seconds(self.keyframes[-1].stamp) - STAMP0) * RATE_HZ)
        if self.status:
            newest = max(newest, int(self.status[-1].frames_received) - 1)
        return newest

    def publish_state(self, k: int, frame) -> None:
        """Odometry and camera info of memory frame ``k``."""
        stamp = seconds_to_time(STAMP0 + k / RATE_HZ)
        self.odom_pub.publish(make_odometry(frame.T_world_cam, np.zeros(3), np.zeros(3), stamp, "odom", "camera"))
        self.info_pub.publish(intrinsics_to_camera_info(frame.intrinsics, stamp, "camera"))

    def publish_images(self, k: int, frame) -> None:
        stamp = seconds_to_time(STAMP0 + k / RATE_HZ)
        self.depth_pub.publish(depth_to_16uc1(frame.depth, stamp, "camera"))
        self.colour_pub.publish(rgb_to_image(frame.colour, stamp=stamp, frame_id="camera"))

    def call_render(self, request: RenderView.Request) -> RenderView.Response:
        future = self.render.call_async(request)
        self.spin_until(future.done, "a render_view reply")
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def test_replay_over_ros_scores_like_worldfm_eval(shared_data, tmp_path, ros_context):
    data = shared_data / SEQUENCE
    if not data.is_dir():
        pytest.skip(f"{data} not found")
    node = NodeProcess(tmp_path / "node.log", f"camera_to_base:={IDENTITY_CAMERA_TO_BASE}")
    robot = None
    try:
        # worldfm-eval's figure, computed while the node starts up.
        eval_json = tmp_path / "eval.json"
        assert eval_main(["--data", str(data), "--format", "7scenes", "--backend", "geometric",
                          "--json", str(eval_json), "--quiet"]) == 0
        reference = json.loads(eval_json.read_text())["geometric"]

        frames = open_dataset(data, "7scenes", scale=1.0)  # native 640x480, read lazily
        positions = list(range(len(frames)))
        memory_positions, target_positions = split_leave_out(positions)

        robot = Robot(ros_context, node)
        robot.spin_until(lambda: robot.render.service_is_ready() and robot.status
                         and robot.colour_pub.get_subscription_count() > 0
                         and robot.depth_pub.get_subscription_count() > 0
                         and robot.odom_pub.get_subscription_count() > 0
                         and robot.info_pub.get_subscription_count() > 0, "the node to come up", timeout=60.0)
        assert robot.status[-1].frames_received == 0

        # --- replay the memory frames over the topics -----------------------------------------
        # Odometry and camera info run one frame ahead of the images, as a robot's usually do
        # (higher rate, lower latency): the pose at each image stamp is then an exact sample in
        # the node's buffer. Published in the same instant, the node may take an image before
        # the odometry or camera info sent just before it (they are handled on another thread),
        # extrapolate the pose or drop the frame; docs/load_benchmark.md measures that.
        n = len(memory_positions)
        frame = frames[memory_positions[0]]
        poses = {0: frame.T_world_cam}
        robot.publish_state(0, frame)
        t0 = time.monotonic()
        for k in range(n):
            upcoming = frames[memory_positions[k + 1]] if k + 1 < n else None
            robot.spin_until(lambda: robot.taken() >= k - MAX_LEAD, f"the node to take frame {k - MAX_LEAD}")
            next_t = t0 + k / RATE_HZ
            robot.spin_until(lambda: time.monotonic() >= next_t, "the camera rate", timeout=WAIT)
            if upcoming is not None:
                poses[k + 1] = upcoming.T_world_cam
                robot.publish_state(k + 1, upcoming)
            robot.publish_images(k, frame)
            frame = upcoming
        replay_s = time.monotonic() - t0
        robot.spin_until(lambda: robot.status[-1].frames_received >= n, f"the node to receive all {n} frames")
        # The last frame may still be processing: wait for two statuses with the same count.
        robot.spin_until(lambda: len(robot.status) >= 3 and robot.status[-1].keyframes == robot.status[-2].keyframes
                         and robot.status[-2].frames_received >= n, "keyframes to settle")
        status = robot.status[-1]
        assert status.frames_received == n, f"node received {status.frames_received} of {n} colour frames"
        assert status.frames_dropped == 0, f"node dropped {status.frames_dropped} frames\n{node.log()}"
        assert len(robot.keyframes) == status.keyframes

        # Every keyframe sits exactly at its frame's pose: pairing, stamps and odometry agree.
        for info in robot.keyframes:
            k = round((time_to_seconds(info.stamp) - STAMP0) * RATE_HZ)
            T = pose_to_matrix(info.pose)
            assert np.abs(T[:3, 3] - poses[k][:3, 3]).max() < 1e-6, f"keyframe {info.id} (frame {k}) position"
            assert rotation_angle_deg(T[:3, :3], poses[k][:3, :3]) < 1e-4, f"keyframe {info.id} rotation"

        # --- render each target through ~/render_view ------------------------------------------
        scores = []
        for position in target_positions:
            target = frames[position]
            K = target.intrinsics.scaled(0.5)
            truth, _, _ = downscale_rgbd(target.colour, target.depth, target.intrinsics, K.width, K.height)
            request = RenderView.Request()
            request.pose = matrix_to_pose(target.T_world_cam)
            request.camera_info = intrinsics_to_camera_info(K, seconds_to_time(0.0), "render")
            request.want_depth = False
            reply = robot.call_render(request)
            assert reply.success, f"render_view at target {position}: {reply.message}"
            rendered = image_to_rgb(reply.image)
            assert rendered.shape == truth.shape
            scores.append(psnr(rendered, truth))
        replay_psnr = float(np.mean(scores))
        summary = (f"ROS replay ({n} frames in {replay_s:.1f} s): {replay_psnr:.3f} dB, {status.keyframes} keyframes "
                   f"over {len(scores)} targets; "
                   f"worldfm-eval: {reference['psnr']:.3f} dB, {reference['keyframes']} keyframes "
                   f"({reference['views']} targets)")
        print(summary)
        assert len(scores) == reference["views"]
        assert abs(int(status.keyframes) - int(reference["keyframes"])) <= KEYFRAME_TOLERANCE * reference["keyframes"], summary
        assert abs(replay_psnr - reference["psnr"]) <= PSNR_TOLERANCE, summary
    finally:
        if robot is not None:
            robot.close()
        rc = node.stop()
    assert rc == 0, f"node exited with {rc}\n{node.log()}"
