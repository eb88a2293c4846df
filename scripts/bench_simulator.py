#!/usr/bin/env python3
"""Benchmarks of the navigation-ready simulator (issue 11), each a ratio measured in one run
against a node process over real DDS (figures vary with machine load; compare ratios only):

* ``clock``: ``sim.publish_clock`` with ``sim.real_time_factor 0`` at 160x120 (geometric):
  simulated time over wall time, read from ``/clock`` (acceptance: >= 3x on 2 cores).
* ``views``: ``~/render_views`` with 64 poses against 64 single ``~/render_view`` calls on the
  same poses, interleaved rounds (acceptance: >= 3x throughput), and per view where the time
  goes: the node's ``render_ms`` against the rest (a single call's overhead; the batch's reply).

    .venv/bin/python scripts/bench_simulator.py [--only clock|views] [--seconds 10] [--rounds 3]

The world is a synthetic room (the keyframes a robot turning at five places records), written
to a temporary world file the node loads.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(102 + os.getpid() % 100))

from worldfm_ros.ros.dds import apply_dds_profile  # noqa: E402

apply_dds_profile()

from worldfm_ros.core.camera import Intrinsics  # noqa: E402
from worldfm_ros.core.keyframe import Keyframe  # noqa: E402
from worldfm_ros.core.pose import pose_from_vector  # noqa: E402
from worldfm_ros.core.synthetic.scene import SyntheticWorld  # noqa: E402
from worldfm_ros.core.synthetic.trajectory import base_pose  # noqa: E402
from worldfm_ros.core.world_service import WorldService  # noqa: E402

K = Intrinsics(fx=262.5, fy=262.5, cx=159.5, cy=119.5, width=320, height=240)
CAMERA_TO_BASE = [0.05, 0.0, 0.3, -0.5, 0.5, -0.5, 0.5]
T_BASE_CAM = pose_from_vector(CAMERA_TO_BASE)


def build_world(path: Path) -> int:
    """Write the benchmark room's world file; returns its keyframe count."""
    world = SyntheticWorld.generate(1, layout="single", size=(4.12, 3.88), n_objects=0)
    service = WorldService()
    stamp = 0.0
    for x, y, turns in [(0.0, 0.0, 8), (0.8, 0.8, 4), (-0.8, 0.8, 4), (-0.8, -0.8, 4), (0.8, -0.8, 4)]:
        for i in range(turns):
            T = base_pose(x, y, 2 * math.pi * i / turns + 0.3 * x) @ T_BASE_CAM
            colour, depth = world.render(T, K)
            service.ingest(Keyframe(colour, depth, K, T, stamp))
            stamp += 1.0
    return service.save(str(path))


class Node:
    """``worldfm_node`` in its own process."""

    def __init__(self, log: Path, *params: str):
        args = [sys.executable, "-m", "worldfm_ros.ros.node", "--ros-args",
                "--params-file", str(ROOT / "config" / "worldfm.yaml")]
        for p in params:
            args += ["-p", p]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        self.log = log
        self._out = open(log, "w")
        self.process = subprocess.Popen(args, stdout=self._out, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()


def spin_until(executor, predicate, timeout: float, what: str, node: Node) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline or node.process.poll() is not None:
            raise SystemExit(f"timed out waiting for {what}; node log:\n{node.log.read_text()[-3000:]}")
        executor.spin_once(timeout_sec=0.01)


def bench_clock(rclpy, context, world_path: Path, tmp: Path, seconds: float) -> float:
    from rclpy.qos import QoSProfile
    from rosgraph_msgs.msg import Clock

    from worldfm_ros.ros.messages import time_to_seconds

    node = Node(tmp / "clock.log", f"camera_to_base:={CAMERA_TO_BASE}", f"world_path:={world_path}",
                "backend:=geometric", "sim.enabled:=true", "sim.rate_hz:=10.0", "sim.width:=160", "sim.height:=120",
                "sim.publish_clock:=true", "sim.real_time_factor:=0.0")
    client = rclpy.create_node("bench_clock", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(client)
    ticks: list[tuple[float, float]] = []  # (wall [s], simulated [s])
    images = [0]
    client.create_subscription(Clock, "/clock", lambda m: ticks.append((time.monotonic(), time_to_seconds(m.clock))),
                               QoSProfile(depth=1000))
    from sensor_msgs.msg import Image

    client.create_subscription(Image, "sim/camera/image_raw", lambda m: images.__setitem__(0, images[0] + 1),
                               QoSProfile(depth=100))
    try:
        spin_until(executor, lambda: images[0] >= 5, 90.0, "simulated images", node)
        ticks.clear()
        images[0] = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.01)
    finally:
        executor.shutdown()
        client.destroy_node()
        node.stop()
    wall = ticks[-1][0] - ticks[0][0]
    simulated = ticks[-1][1] - ticks[0][1]
    ratio = simulated / wall
    print(f"clock: real_time_factor 0, 160x120 geometric, sim.rate_hz 10: {simulated:.1f} s simulated in "
          f"{wall:.1f} s wall = {ratio:.2f}x real time ({len(ticks)} clock ticks, {images[0]} images received)")
    return ratio


def bench_views(rclpy, context, world_path: Path, tmp: Path, rounds: int, sizes, backend: str = "geometric",
                n_views: int = 64) -> list:
    from worldfm_ros.ros.messages import intrinsics_to_camera_info, matrix_to_pose, seconds_to_time
    from worldfm_ros.srv import RenderView, RenderViews

    node = Node(tmp / "views.log", f"camera_to_base:={CAMERA_TO_BASE}", f"world_path:={world_path}",
                f"backend:={backend}")
    client = rclpy.create_node("bench_views", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(client)
    single = client.create_client(RenderView, "/worldfm_node/render_view")
    batch = client.create_client(RenderViews, "/worldfm_node/render_views")
    rng = np.random.default_rng(0)
    poses = [matrix_to_pose(base_pose(*rng.uniform(-1.2, 1.2, 2), rng.uniform(-math.pi, math.pi)) @ T_BASE_CAM)
             for _ in range(n_views)]

    def call(service, request):
        future = service.call_async(request)
        spin_until(executor, future.done, 120.0, f"reply of {service.srv_name}", node)
        reply = future.result()
        if not reply.success:
            raise SystemExit(f"{service.srv_name} failed: {reply.message}")
        return reply

    ratios = []
    try:
        spin_until(executor, lambda: batch.service_is_ready() and single.service_is_ready(), 90.0, "services", node)
        call(batch, RenderViews.Request(poses=poses[:2]))  # warm-up (compilation, caches)
        call(single, RenderView.Request(pose=poses[0]))
        for width, height in sizes:
            camera = intrinsics_to_camera_info(K.resized(width, height), seconds_to_time(0.0), "camera")
            singles, batches = [], []
            single_render_ms, batch_render_ms = [], []  # the node's own render_ms, per round
            for _ in range(rounds):
                t0 = time.perf_counter()
                single_render_ms.append(sum(call(single, RenderView.Request(pose=pose, camera_info=camera)).render_ms
                                            for pose in poses))
                singles.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                reply = call(batch, RenderViews.Request(poses=poses, camera_info=camera))
                batches.append(time.perf_counter() - t0)
                batch_render_ms.append(reply.render_ms)
                assert len(reply.images) == n_views and reply.images[0].width == width
            single_s, batch_s = float(np.median(singles)), float(np.median(batches))
            ratios.append(single_s / batch_s)
            print(f"views: {n_views} poses at {width}x{height}, {backend}, median of {rounds} interleaved rounds: "
                  f"{n_views} render_view calls {single_s * 1e3:.0f} ms ({n_views / single_s:.1f} views/s), one "
                  f"render_views call {batch_s * 1e3:.0f} ms ({n_views / batch_s:.1f} views/s): "
                  f"{ratios[-1]:.2f}x throughput", flush=True)
            # Where the time goes, per view: the node's render_ms against the rest (the call's
            # messages, DDS and executor hand-offs). The ratio cannot exceed
            # (single render + call overhead) / (batch render + batch reply).
            single_render = float(np.median(single_render_ms)) / n_views
            batch_render = float(np.median(batch_render_ms)) / n_views
            single_rest = single_s * 1e3 / n_views - single_render
            batch_rest = batch_s * 1e3 / n_views - batch_render
            print(f"       per view: render_view renders {single_render:.2f} ms + {single_rest:.2f} ms call overhead; "
                  f"render_views renders {batch_render:.2f} ms + {batch_rest:.2f} ms reply (render_ms medians)",
                  flush=True)
    finally:
        executor.shutdown()
        client.destroy_node()
        node.stop()
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("clock", "views"))
    parser.add_argument("--seconds", type=float, default=10.0, help="wall time of the clock benchmark [s]")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the views benchmark")
    parser.add_argument("--sizes", default="320x240,160x120,80x60,64x48", help="view sizes of the views benchmark")
    parser.add_argument("--backend", default="geometric", help="renderer of the views benchmark")
    args = parser.parse_args()
    import rclpy

    with tempfile.TemporaryDirectory(prefix="worldfm_bench_sim_") as tmp_dir:
        tmp = Path(tmp_dir)
        world_path = tmp / "room.world"
        print(f"world: {build_world(world_path)} keyframes (synthetic room, 320x240 keyframes)")
        context = rclpy.Context()
        rclpy.init(context=context)
        try:
            if args.only in (None, "clock"):
                bench_clock(rclpy, context, world_path, tmp, args.seconds)
            if args.only in (None, "views"):
                sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
                bench_views(rclpy, context, world_path, tmp, args.rounds, sizes, args.backend)
        finally:
            rclpy.shutdown(context=context)


if __name__ == "__main__":
    main()
