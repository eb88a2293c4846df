#!/usr/bin/env python3
"""Measure how many camera frames arrive intact between two processes on one machine.

A publisher process sends colour (rgb8), depth (16UC1) and camera_info at ``--rate`` Hz for
``--seconds`` with the QoS our node uses for publications (reliable, volatile, depth 5 for
images, 10 otherwise); a subscriber process receives them with the sensor-data QoS our node
subscribes with (best effort, depth 5). For every image size and DDS profile asked for it
prints ``delivered/sent`` per topic, how many of the delivered images were intact (size and
sequence marks at both ends of the buffer match) and the mean latency.

    .venv/bin/python scripts/measure_dds.py --seconds 5 --sizes 640x480 1280x720 \\
        --profiles none package

``--profiles`` takes ``none`` (Fast DDS defaults: no profile file, FASTRTPS_/FASTDDS_
DEFAULT_PROFILES_FILE unset), ``package`` (config/fastdds_profile.xml, what
worldfm_ros.ros.dds.apply_dds_profile() selects) or paths of other profile XML files, each
for both processes, or ``PUBLISHER:SUBSCRIBER`` (e.g. ``none:package``: a camera driver with
Fast DDS defaults publishing into a process that uses our profile).
Both processes run with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID of their
own. Results are noisy on a loaded machine; compare profiles within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOPICS = ("camera/image_raw", "camera/depth/image_raw", "camera/camera_info")
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


# ---------------------------------------------------------------------------- publisher
def run_publisher(args: argparse.Namespace) -> None:
    import array

    import numpy as np
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    rclpy.init()
    node = rclpy.create_node("measure_dds_publisher")
    image_qos = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
    info_qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
    colour_pub = node.create_publisher(Image, TOPICS[0], image_qos)
    depth_pub = node.create_publisher(Image, TOPICS[1], image_qos)
    info_pub = node.create_publisher(CameraInfo, TOPICS[2], info_qos)

    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline and min(
        p.get_subscription_count() for p in (colour_pub, depth_pub, info_pub)
    ) < 1:
        rclpy.spin_once(node, timeout_sec=0.05)
    matched = min(p.get_subscription_count() for p in (colour_pub, depth_pub, info_pub)) >= 1
    time.sleep(0.5)  # let the subscriber's side of the match settle as well

    width, height = args.width, args.height
    rng = np.random.default_rng(0)
    colour_pixels = rng.integers(0, 256, size=height * width * 3, dtype=np.uint8)
    depth_pixels = rng.integers(0, 256, size=height * width * 2, dtype=np.uint8)

    def image(encoding: str, step: int, pixels: np.ndarray, seq: int, stamp) -> Image:
        mark = np.frombuffer(np.uint64(seq).tobytes(), np.uint8)
        pixels[:8] = mark
        pixels[-8:] = mark
        msg = Image()
        msg.header.stamp = stamp
        msg.header.frame_id = str(seq)
        msg.height, msg.width, msg.encoding, msg.step = height, width, encoding, step
        data = array.array("B")
        data.frombytes(pixels.data)
        msg.data = data
        return msg

    sent = {topic: 0 for topic in TOPICS}
    period = 1.0 / args.rate
    start = time.monotonic()
    seq = 0
    while seq < int(round(args.seconds * args.rate)):
        target = start + seq * period
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stamp = node.get_clock().now().to_msg()
        colour_pub.publish(image("rgb8", 3 * width, colour_pixels, seq, stamp))
        depth_pub.publish(image("16UC1", 2 * width, depth_pixels, seq, stamp))
        info = CameraInfo()
        info.header.stamp = stamp
        info.header.frame_id = str(seq)
        info.width, info.height = width, height
        info.k = [500.0, 0.0, width / 2 - 0.5, 0.0, 500.0, height / 2 - 0.5, 0.0, 0.0, 1.0]
        info_pub.publish(info)
        for topic in TOPICS:
            sent[topic] += 1
        seq += 1
    elapsed = time.monotonic() - start
    time.sleep(1.0)  # let the last samples leave before the writers go away
    Path(args.result).write_text(json.dumps({"sent": sent, "matched": matched, "elapsed_s": elapsed}))
    node.destroy_node()
    rclpy.try_shutdown()


# ---------------------------------------------------------------------------- subscriber
def run_subscriber(args: argparse.Namespace) -> None:
    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    rclpy.init()
    node = rclpy.create_node("measure_dds_subscriber")
    stats = {topic: {"received": 0, "intact": 0, "latency_sum_s": 0.0} for topic in TOPICS}

    def on_message(topic: str, msg) -> None:
        now = node.get_clock().now().nanoseconds
        entry = stats[topic]
        entry["received"] += 1
        entry["latency_sum_s"] += (now - (msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)) * 1e-9
        if isinstance(msg, Image):
            data = np.frombuffer(msg.data, np.uint8)
            mark = np.frombuffer(np.uint64(int(msg.header.frame_id)).tobytes(), np.uint8)
            ok = (
                data.size == msg.step * msg.height == {"rgb8": 3, "16UC1": 2}[msg.encoding] * msg.width * msg.height
                and np.array_equal(data[:8], mark) and np.array_equal(data[-8:], mark)
            )
        else:
            ok = len(msg.k) == 9
        entry["intact"] += int(ok)

    for topic, msg_type in zip(TOPICS, (Image, Image, CameraInfo)):
        node.create_subscription(
            msg_type, topic, lambda msg, topic=topic: on_message(topic, msg), qos_profile_sensor_data
        )
    stop = Path(args.stop_file)
    Path(args.ready_file).write_text("ready")
    while not stop.exists():
        rclpy.spin_once(node, timeout_sec=0.1)
    Path(args.result).write_text(json.dumps(stats))
    node.destroy_node()
    rclpy.try_shutdown()


# ---------------------------------------------------------------------------- orchestration
def package_profile() -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from worldfm_ros.ros.dds import profile_path

    return str(profile_path())


def process_env(profile: str, domain_id: int) -> dict[str, str]:
    """Environment of one side: only the chosen profile file, an isolated ROS graph."""
    env = dict(os.environ)
    for variable in PROFILE_VARIABLES + ("WORLDFM_DDS_PROFILE", "RMW_FASTRTPS_USE_QOS_FROM_XML"):
        env.pop(variable, None)
    if profile != "none":
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = (
            package_profile() if profile == "package" else str(Path(profile).resolve())
        )
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


def measure(size: tuple[int, int], profile: str, args: argparse.Namespace, domain_id: int) -> dict:
    """One run. ``profile`` is one spec for both sides or ``PUBLISHER:SUBSCRIBER``."""
    width, height = size
    pub_profile, _, sub_profile = profile.partition(":")
    sub_profile = sub_profile or pub_profile
    pub_env = process_env(pub_profile, domain_id)
    sub_env = process_env(sub_profile, domain_id)

    # A temporary working directory: Fast DDS also loads ./DEFAULT_FASTDDS_PROFILES.xml.
    with tempfile.TemporaryDirectory(prefix="measure_dds_") as tmp:
        tmp_path = Path(tmp)
        common = [sys.executable, str(Path(__file__).resolve())]
        sub = subprocess.Popen(
            common + ["--role", "sub", "--result", str(tmp_path / "sub.json"),
                      "--stop-file", str(tmp_path / "stop"), "--ready-file", str(tmp_path / "ready")],
            env=sub_env, cwd=tmp,
        )
        deadline = time.monotonic() + 30.0
        while not (tmp_path / "ready").exists() and time.monotonic() < deadline and sub.poll() is None:
            time.sleep(0.05)
        pub = subprocess.Popen(
            common + ["--role", "pub", "--result", str(tmp_path / "pub.json"),
                      "--width", str(width), "--height", str(height),
                      "--rate", str(args.rate), "--seconds", str(args.seconds)],
            env=pub_env, cwd=tmp,
        )
        try:
            pub.wait(timeout=args.seconds + 60)
        finally:
            (tmp_path / "stop").write_text("stop")
            for process in (pub, sub):
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        sent = json.loads((tmp_path / "pub.json").read_text())
        received = json.loads((tmp_path / "sub.json").read_text())
    return {"width": width, "height": height, "profile": profile, "rate_hz": args.rate,
            "seconds": args.seconds, "matched": sent["matched"], "elapsed_s": sent["elapsed_s"],
            "topics": {topic: {"sent": sent["sent"][topic], **received[topic]} for topic in TOPICS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="publishing time per run [s]")
    parser.add_argument("--rate", type=float, default=15.0, help="frames per second [Hz]")
    parser.add_argument("--sizes", nargs="+", default=["640x480", "1280x720"], help="WIDTHxHEIGHT ...")
    parser.add_argument("--profiles", nargs="+", default=["none", "package"],
                        help="none | package | PATH.xml, or PUBLISHER:SUBSCRIBER such as none:package")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--role", choices=("pub", "sub"), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--stop-file", help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--height", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.role == "pub":
        return run_publisher(args)
    if args.role == "sub":
        return run_subscriber(args)

    results = []
    print(f"{'size':>9}  {'profile (pub:sub)':<18} {'topic':<24} {'delivered/sent':>14} {'intact':>7} {'latency':>9}")
    for index, text in enumerate(args.sizes):
        width, height = (int(v) for v in text.lower().split("x"))
        for profile_index, profile in enumerate(args.profiles):
            domain_id = 1 + (os.getpid() + 7 * index + profile_index) % 101
            result = measure((width, height), profile, args, domain_id)
            results.append(result)
            label = ":".join(p if p in ("none", "package") else Path(p).stem for p in profile.split(":"))
            for topic, entry in result["topics"].items():
                latency = entry["latency_sum_s"] / entry["received"] * 1e3 if entry["received"] else float("nan")
                print(f"{width:>4}x{height:<4}  {label:<18} {topic:<24} "
                      f"{entry['received']:>6}/{entry['sent']:<7} {entry['intact']:>7} {latency:>7.1f}ms",
                      flush=True)
            if not result["matched"]:
                print("  (warning: the publisher saw no subscriber within 20 s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
