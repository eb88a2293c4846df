"""Measure worldfm_node over real DDS: simulated-camera rate and render_view latency.

Builds a synthetic world file (8 keyframes, as in test/test_node_integration.py), starts
``python -m worldfm_ros.ros.node`` on it with the simulator on, and reports:

* the achieved sim rate (image stamps received over ``--seconds``) at each requested rate;
* ``render_view`` latency inside the node (``render_ms``) and round trip, median of ``--calls``.

    python scripts/measure_node.py --rates 10 30 --seconds 5 --calls 20

Timings on a shared machine are noisy: compare figures taken in one run.
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


def build_world(path: Path) -> None:
    from worldfm_ros.core.camera import Intrinsics
    from worldfm_ros.core.keyframe import Keyframe
    from worldfm_ros.core.pose import pose_from_vector
    from worldfm_ros.core.synthetic.scene import SyntheticWorld
    from worldfm_ros.core.synthetic.trajectory import base_pose
    from worldfm_ros.core.world_service import WorldService, WorldServiceConfig

    world = SyntheticWorld.generate(1, layout="single", size=(5.0, 5.0))
    K = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
    T_base_cam = pose_from_vector([0.1, 0.0, 1.0, -0.5, 0.5, -0.5, 0.5])
    service = WorldService(WorldServiceConfig(), renderer=object())
    for i in range(8):
        T = base_pose(0.2, -0.1, i * math.pi / 4) @ T_base_cam
        colour, depth = world.render(T, K)
        service.ingest(Keyframe(colour, depth, K, T, float(i)))
    service.save(str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0], help="sim.rate_hz values [Hz]")
    parser.add_argument("--seconds", type=float, default=5.0, help="sim stream measured this long [s]")
    parser.add_argument("--calls", type=int, default=20, help="render_view calls per size")
    parser.add_argument("--sizes", nargs="+", default=["320x240", "640x480"], help="render_view sizes")
    args = parser.parse_args()

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 101))
    from worldfm_ros.ros.dds import apply_dds_profile

    apply_dds_profile()
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from worldfm_ros.core.camera import Intrinsics
    from worldfm_ros.core.pose import pose_from_vector
    from worldfm_ros.core.synthetic.trajectory import base_pose
    from worldfm_ros.ros.messages import intrinsics_to_camera_info, matrix_to_pose, seconds_to_time, time_to_seconds
    from worldfm_ros.srv import RenderView

    tmp = Path(tempfile.mkdtemp(prefix="worldfm_measure_"))
    world_path = tmp / "measure.world"
    build_world(world_path)
    rclpy.init()
    client = rclpy.create_node("worldfm_measure")
    T_base_cam = pose_from_vector([0.1, 0.0, 1.0, -0.5, 0.5, -0.5, 0.5])
    for rate in args.rates:
        log = open(tmp / f"node_{rate:g}.log", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "worldfm_ros.ros.node", "--ros-args", "-p", f"world_path:={world_path}",
             "-p", "sim.enabled:=true", "-p", f"sim.rate_hz:={rate}", "-p",
             "sim.start_pose:=[0.2, -0.1, 0.0, 0.0, 0.0, 0.0, 1.0]", "-p",
             "camera_to_base:=[0.1, 0.0, 1.0, -0.5, 0.5, -0.5, 0.5]"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            stamps: list[float] = []
            sub = client.create_subscription(
                Image, "sim/camera/image_raw", lambda m: stamps.append(time_to_seconds(m.header.stamp)),
                QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
            render = client.create_client(RenderView, "/worldfm_node/render_view")
            if not render.wait_for_service(timeout_sec=60):
                raise SystemExit(f"node did not start; see {log.name}")
            deadline = time.monotonic() + 30
            while len(stamps) < 3 and time.monotonic() < deadline:  # warm-up
                rclpy.spin_once(client, timeout_sec=0.05)
            stamps.clear()
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                rclpy.spin_once(client, timeout_sec=0.05)
            achieved = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
            print(f"sim.rate_hz {rate:g}: achieved {achieved:.2f} Hz over {args.seconds:g} s ({len(stamps)} images 320x240)")
            for size in args.sizes:
                width, height = (int(v) for v in size.split("x"))
                K = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480).resized(width, height)
                inside, round_trip = [], []
                for i in range(args.calls):
                    request = RenderView.Request()
                    request.pose = matrix_to_pose(base_pose(0.2, -0.1, 0.1 * i) @ T_base_cam)
                    request.camera_info = intrinsics_to_camera_info(K, seconds_to_time(0.0), "render")
                    request.want_depth = True
                    t0 = time.perf_counter()
                    future = render.call_async(request)
                    rclpy.spin_until_future_complete(client, future, timeout_sec=60)
                    reply = future.result()
                    if reply is None or not reply.success:
                        raise SystemExit(f"render_view failed: {reply and reply.message}")
                    round_trip.append((time.perf_counter() - t0) * 1e3)
                    inside.append(reply.render_ms)
                print(f"  render_view {size} (sim running): render_ms median {np.median(inside):.1f} "
                      f"(p90 {np.percentile(inside, 90):.1f}), round trip median {np.median(round_trip):.1f} ms")
            client.destroy_subscription(sub)
            client.destroy_client(render)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    client.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
