"""Load benchmark of ``worldfm_node`` over real DDS: ingestion, concurrent renders and the
simulated camera, all at once, each side in its own process.

* ``worldfm_node`` (simulated camera on at ``--sim-rate`` Hz, 320x240);
* a *robot* process publishes a synthetic world's 640x480 colour (``rgb8``), depth (``16UC1``
  mm), ``camera_info`` and odometry at ``--rate`` Hz, looping over frames pre-rendered once
  along a closed path (so the publisher itself stays cheap);
* ``--clients`` client processes each call ``~/render_view`` at ``--call-rate`` Hz (320x240,
  explicit intrinsics, poses along the recorded path between the published ones), each call
  bounded by ``--call-timeout``; a client never has more than one call outstanding, so a tick
  that comes while it still waits for a reply is skipped (counted, not a failure);
* this process subscribes to ``sim/camera/image_raw`` and ``~/status``.

After a warm-up (one pass of the robot over its path, so the world is built), everything runs
for ``--seconds``. Reported: calls made and failed (``success: false``, timeouts, exceptions),
round-trip and in-node (``render_ms``) latency percentiles, the achieved ingest rate (node
status and frames received), the achieved simulated-camera rate, and the load average.

    python scripts/load_benchmark.py --seconds 60 --json out/load_benchmark.json

Every wait is bounded; child processes and the node are stopped on exit, errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import array
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Longest wait for any start-up step (node, pre-rendering, discovery) [s].
STARTUP_TIMEOUT = 180.0
#: Seconds between the "go" file and the start of the measured window.
GO_DELAY = 1.0


# ------------------------------------------------------------------------------- shared
def camera():
    """The robot's 640x480 Kinect-like camera (as ``worldfm-demo``)."""
    from worldfm_ros.core.camera import Intrinsics

    return Intrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=640, height=480)


def plan_path(seed: int, rate_hz: float):
    """``(world, loop)``: the synthetic world and one closed loop sampled at ``rate_hz``."""
    from worldfm_ros.core.synthetic import SyntheticWorld
    from worldfm_ros.core.synthetic.trajectory import DEFAULT_CAMERA_TO_BASE, plan_loop

    world = SyntheticWorld.generate(seed)
    probe = plan_loop(world, seed, 2, rate_hz=rate_hz, camera_to_base=DEFAULT_CAMERA_TO_BASE)
    loop = plan_loop(world, seed, probe.period, rate_hz=rate_hz, camera_to_base=DEFAULT_CAMERA_TO_BASE)
    return world, loop


def write_json(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)  # readers never see half a file


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class ChildGuard:
    """Lets a child process notice that its parent is gone (so nothing outlives a killed run)."""

    def __init__(self):
        self.parent = os.getppid()

    def orphaned(self) -> bool:
        return os.getppid() != self.parent


def wait_for_go(workdir: Path, guard: ChildGuard, timeout: float) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not guard.orphaned():
        go = read_json(workdir / "go.json")
        if go is not None:
            return go
        if (workdir / "stop").exists():
            return None
        time.sleep(0.05)
    return None


def depth_to_16uc1(depth_m: np.ndarray, frame_id: str):
    """``float32 [H, W]`` metres -> ``16UC1`` millimetres ``Image`` (0 = invalid), as a
    depth camera driver publishes it."""
    from sensor_msgs.msg import Image

    mm = np.clip(np.round(depth_m.astype(np.float64) * 1000.0), 0, 65535).astype(np.uint16)
    msg = Image()
    msg.header.frame_id = frame_id
    msg.height, msg.width = mm.shape
    msg.encoding = "16UC1"
    msg.is_bigendian = int(sys.byteorder == "big")
    msg.step = 2 * mm.shape[1]
    msg.data = array.array("B", mm.tobytes())
    return msg


# ------------------------------------------------------------------------------- robot
def run_publisher(args) -> int:
    """Pre-render the path, then publish odometry + camera_info + depth + colour at ``--rate``
    until the measured window ends."""
    from worldfm_ros.ros.dds import apply_dds_profile

    apply_dds_profile()
    import rclpy
    from nav_msgs.msg import Odometry
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    from worldfm_ros.ros.image_conversion import rgb_to_image
    from worldfm_ros.ros.messages import intrinsics_to_camera_info, make_odometry, seconds_to_time

    workdir = Path(args.workdir)
    guard = ChildGuard()
    world, loop = plan_path(args.seed, args.rate)
    step = max(1, math.ceil(loop.period / args.world_frames))
    picks = list(range(0, loop.period, step))
    K = camera()
    frames = []
    for i in picks:
        if guard.orphaned() or (workdir / "stop").exists():
            return 1
        colour, depth = world.render(loop.T_world_cam[i], K)
        frames.append((loop.T_world_base[i], rgb_to_image(colour, frame_id="camera_optical_frame"),
                       depth_to_16uc1(depth, "camera_optical_frame")))

    rclpy.init()
    node = rclpy.create_node("load_benchmark_robot")
    if args.qos == "best_effort":  # as camera drivers publish (sensor-data QoS)
        image_qos = state_qos = qos_profile_sensor_data
    else:
        image_qos = QoSProfile(depth=5)
        state_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub_colour = node.create_publisher(Image, "camera/image_raw", image_qos)
    pub_depth = node.create_publisher(Image, "camera/depth/image_raw", image_qos)
    pub_info = node.create_publisher(CameraInfo, "camera/camera_info", state_qos)
    pub_odom = node.create_publisher(Odometry, "odom", state_qos)
    published: list[float] = []  # wall times of published frames
    stamps: list[tuple[int, int, int]] = []  # (sec, nanosec, frame index) of each published frame
    try:
        write_json(workdir / "ready.publisher", {
            "frames": len(frames), "step": step, "period": loop.period, "loop_m": loop.length,
            "T_world_cam": [loop.T_world_cam[i].tolist() for i in picks],
        })
        period = 1.0 / args.rate
        born = t0 = time.monotonic()
        stamp0 = time.time()  # stamps are regular, stamp0 + j / rate, as a camera driver's

        def publish_state(j: int) -> None:
            stamp = seconds_to_time(stamp0 + j * period)
            pub_odom.publish(make_odometry(frames[j % len(frames)][0], np.zeros(3), np.zeros(3), stamp,
                                           "odom", "base_link"))
            pub_info.publish(intrinsics_to_camera_info(K, stamp, "camera_optical_frame"))

        end_wall = None
        j = 0
        if args.odom_ahead:
            publish_state(0)
        while not guard.orphaned() and not (workdir / "stop").exists():
            if end_wall is None:
                go = read_json(workdir / "go.json")
                end_wall = go["end"] if go else None
            if end_wall is not None and time.time() > end_wall:
                break
            if time.monotonic() - born > args.max_lifetime:
                break
            _, colour_msg, depth_msg = frames[j % len(frames)]
            # Odometry + camera info for this frame's stamp go out right before its images
            # (as worldfm-demo does), or one frame earlier with --odom-ahead.
            publish_state(j + 1 if args.odom_ahead else j)
            stamp = seconds_to_time(stamp0 + j * period)
            depth_msg.header.stamp = stamp
            colour_msg.header.stamp = stamp
            pub_depth.publish(depth_msg)
            pub_colour.publish(colour_msg)
            published.append(time.time())
            stamps.append((stamp.sec, stamp.nanosec, j % len(frames)))
            j += 1
            delay = t0 + j * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -period:  # fell behind by more than a frame: do not burst to catch up
                t0 = time.monotonic() - j * period
    except KeyboardInterrupt:
        pass
    finally:
        write_json(workdir / "publisher.json", {"published": published, "stamps": stamps})
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


# ------------------------------------------------------------------------------- clients
def run_client(args) -> int:
    """Call ``~/render_view`` at ``--call-rate`` during the measured window; one call at a time."""
    from worldfm_ros.ros.dds import apply_dds_profile

    apply_dds_profile()
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from worldfm_ros.core.pose import interpolate_pose
    from worldfm_ros.ros.messages import intrinsics_to_camera_info, matrix_to_pose, seconds_to_time
    from worldfm_ros.srv import RenderView

    workdir = Path(args.workdir)
    name = f"client{args.client_id}"
    guard = ChildGuard()
    _, loop = plan_path(args.seed, args.rate)
    K = camera().scaled(0.5)
    info = intrinsics_to_camera_info(K, seconds_to_time(0.0), "render")
    offset = args.client_id * loop.period // max(1, args.clients)

    def pose(n: int):
        i = (offset + n) % loop.period
        return interpolate_pose(loop.T_world_cam[i], loop.T_world_cam[(i + 1) % loop.period], 0.5)

    rclpy.init()
    node = rclpy.create_node(f"load_benchmark_{name}")
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    client = node.create_client(RenderView, "/worldfm_node/render_view")
    calls: list[dict] = []
    skipped = 0
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not client.service_is_ready():
            if time.monotonic() > deadline or guard.orphaned():
                return 1
            executor.spin_once(timeout_sec=0.05)
        write_json(workdir / f"ready.{name}", {})
        go = wait_for_go(workdir, guard, STARTUP_TIMEOUT)
        if go is None:
            return 1
        start, end = go["start"], go["end"]
        period = 1.0 / args.call_rate
        tick = start + (args.client_id / max(1, args.clients)) * period  # spread the clients' phases
        n = 0
        while not guard.orphaned() and not (workdir / "stop").exists():
            now = time.time()
            if now < tick:
                executor.spin_once(timeout_sec=min(0.01, tick - now))
                continue
            if tick >= end:
                break
            request = RenderView.Request()
            request.pose = matrix_to_pose(pose(n))
            request.camera_info = info
            request.want_depth = args.want_depth
            record = {"t": tick, "ok": False, "kind": "", "rt_ms": math.nan, "render_ms": math.nan}
            t_send = time.perf_counter()
            try:
                future = client.call_async(request)
                limit = time.monotonic() + args.call_timeout
                while not future.done() and time.monotonic() < limit and not guard.orphaned():
                    executor.spin_once(timeout_sec=0.005)
                if future.done():
                    reply = future.result()
                    record["rt_ms"] = (time.perf_counter() - t_send) * 1e3
                    if reply is not None and reply.success:
                        record.update(ok=True, kind="ok", render_ms=float(reply.render_ms),
                                      coverage=float(reply.coverage))
                    else:
                        record["kind"] = "success_false"
                        record["message"] = reply.message if reply is not None else "no reply"
                else:
                    client.remove_pending_request(future)
                    record["kind"] = "timeout"
            except (KeyboardInterrupt, ExternalShutdownException):
                raise
            except Exception as error:  # noqa: BLE001 - a benchmark counts every failure
                record["kind"] = "exception"
                record["message"] = repr(error)
            calls.append(record)
            n += 1
            tick += period
            behind = time.time() - tick
            if behind > 0:  # the reply came after the next tick(s): skip them, never burst
                missed = int(behind // period) + 1
                skipped += missed
                tick += missed * period
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        write_json(workdir / f"{name}.json", {"calls": calls, "skipped_ticks": skipped})
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


# ------------------------------------------------------------------------------- orchestrator
def _percentiles(values) -> dict:
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"p50": math.nan, "p95": math.nan, "max": math.nan, "mean": math.nan}
    return {"p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)), "max": float(v.max()),
            "mean": float(v.mean())}


def _stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _spawn(role_args: list[str], log_path: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *role_args],
                            stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))


def keyframe_pose_errors(keyframes: list[tuple[int, int, np.ndarray]], publisher: dict) -> dict:
    """Each keyframe's stored pose against the true pose of the frame published with its stamp:
    a frame stored with an extrapolated (not the exact) odometry pose shows up here."""
    from worldfm_ros.core.pose import rotation_angle_deg

    truth = [np.asarray(T) for T in publisher.get("T_world_cam", [])]
    published = publisher.get("stamps", [])
    seq_of = {(sec, nsec): j for j, (sec, nsec, _) in enumerate(published)}
    translation, rotation, unmatched, off_list = [], [], 0, []
    for sec, nsec, T in keyframes:
        j = seq_of.get((sec, nsec))
        idx = published[j][2] if j is not None else None
        if idx is None or idx >= len(truth):
            unmatched += 1
            continue
        translation.append(float(np.linalg.norm(T[:3, 3] - truth[idx][:3, 3])) * 1e3)
        rotation.append(rotation_angle_deg(T[:3, :3], truth[idx][:3, :3]))
        if translation[-1] > 1.0 or rotation[-1] > 0.1:
            off_list.append({"published_seq": j, "frame": idx, "error_mm": translation[-1],
                             "error_deg": rotation[-1], "T_stored": T.tolist()})
    translation, rotation = np.asarray(translation), np.asarray(rotation)
    off = (translation > 1.0) | (rotation > 0.1)
    return {
        "keyframes_checked": int(translation.size),
        "keyframes_unmatched": unmatched,
        "keyframes_off_pose": int(off.sum()),  # more than 1 mm or 0.1 deg from the published pose
        "max_translation_error_mm": float(translation.max()) if translation.size else math.nan,
        "max_rotation_error_deg": float(rotation.max()) if rotation.size else math.nan,
        "off_pose": off_list,
    }


def summarise(args, clients: list[dict], publisher: dict, stream: list[tuple[float, float]],
              statuses: list[tuple[float, object]], window: tuple[float, float], load: dict,
              keyframes: list | None = None) -> dict:
    start, end = window
    seconds = end - start
    calls = [c for result in clients for c in result["calls"]]
    kinds = {k: sum(1 for c in calls if c["kind"] == k) for k in ("ok", "success_false", "timeout", "exception")}
    ok = [c for c in calls if c["ok"]]
    messages = sorted({c.get("message", "") for c in calls if not c["ok"]})[:5]
    timed = [(t, s) for t, s in statuses if start <= t <= end + 0.5]
    in_window = [s for _, s in timed]
    (t_first, first), (t_last, last) = (timed[0], timed[-1]) if len(timed) > 1 else ((0.0, None), (0.0, None))
    arrivals = [t for t, _ in stream if start <= t <= end]
    stamps = [s for t, s in stream if start <= t <= end]
    gaps = np.diff(arrivals) if len(arrivals) > 1 else np.array([math.nan])
    published = [t for t in publisher.get("published", []) if start <= t <= end]
    result = {
        "config": {
            "seconds": seconds, "clients": args.clients, "call_rate_hz": args.call_rate,
            "call_timeout_s": args.call_timeout, "render_size": "320x240", "want_depth": args.want_depth,
            "camera_rate_hz": args.rate, "camera_size": "640x480", "sim_rate_hz": args.sim_rate,
            "sim_size": "320x240", "backend": args.backend, "world_frames": publisher.get("frames"),
            "odom_ahead": args.odom_ahead, "qos": args.qos,
            "seed": args.seed,
        },
        "render_view": {
            "calls_offered": int(round(args.clients * args.call_rate * seconds)),
            "calls_made": len(calls),
            "calls_ok": kinds["ok"],
            "failed": kinds["success_false"] + kinds["timeout"] + kinds["exception"],
            "failed_success_false": kinds["success_false"],
            "failed_timeout": kinds["timeout"],
            "failed_exception": kinds["exception"],
            "failure_messages": messages,
            "skipped_ticks": sum(r["skipped_ticks"] for r in clients),
            "calls_per_s": len(calls) / seconds,
            "roundtrip_ms": _percentiles(c["rt_ms"] for c in ok),
            "render_ms": _percentiles(c["render_ms"] for c in ok),
            "coverage_mean": float(np.mean([c["coverage"] for c in ok])) if ok else math.nan,
            "per_client_calls": [len(r["calls"]) for r in clients],
        },
        "ingest": {
            "published_hz": len(published) / seconds,
            "status_ingest_rate_hz": _percentiles(float(s.ingest_rate_hz) for s in in_window),
            "frames_received_hz": ((last.frames_received - first.frames_received) / (t_last - t_first)
                                   if first is not None and last is not None else math.nan),
            "frames_dropped_in_window": (int(last.frames_dropped - first.frames_dropped)
                                         if first is not None and last is not None else None),
            # Pairs the node offered to its insertion policy / skipped because it was behind,
            # between the first and the last status of the window, against the frames
            # published over the same span.
            "published_between_statuses": (sum(1 for t in publisher.get("published", []) if t_first < t <= t_last)
                                           if first is not None else None),
            "pairs_offered_in_window": (int(last.pairs_offered - first.pairs_offered)
                                        if first is not None and last is not None else None),
            "pairs_skipped_busy_in_window": (int(last.pairs_skipped_busy - first.pairs_skipped_busy)
                                             if first is not None and last is not None else None),
            "keyframes_start": int(first.keyframes) if first is not None else None,
            "keyframes_end": int(last.keyframes) if last is not None else None,
        },
        "sim_stream": {
            "images": len(arrivals),
            "rate_hz": len(arrivals) / seconds,
            "stamp_rate_hz": ((len(stamps) - 1) / (stamps[-1] - stamps[0])) if len(stamps) > 1 else math.nan,
            "max_gap_ms": float(np.nanmax(gaps) * 1e3),
            "status_sim_rate_hz": _percentiles(float(s.sim_rate_hz) for s in in_window),
        },
        "keyframe_poses": keyframe_pose_errors(keyframes or [], publisher),
        "machine": load,
    }
    return result


def print_table(r: dict) -> None:
    rv, ing, sim, cfg = r["render_view"], r["ingest"], r["sim_stream"], r["config"]
    kp = r["keyframe_poses"]
    rt, rm = rv["roundtrip_ms"], rv["render_ms"]
    si = ing["status_ingest_rate_hz"]
    rows = [
        ("window", f"{cfg['seconds']:.1f} s; {cfg['clients']} clients x {cfg['call_rate_hz']:g} Hz render_view "
                   f"{cfg['render_size']}; camera {cfg['camera_size']} @ {cfg['camera_rate_hz']:g} Hz; "
                   f"sim {cfg['sim_size']} @ {cfg['sim_rate_hz']:g} Hz; backend {cfg['backend']}"),
        ("render_view calls made / offered", f"{rv['calls_made']} / {rv['calls_offered']} "
                                             f"({rv['calls_per_s']:.1f} calls/s; {rv['skipped_ticks']} ticks skipped "
                                             f"while a reply was pending)"),
        ("failed calls", f"{rv['failed']} (success false {rv['failed_success_false']}, timeout "
                         f"{rv['failed_timeout']}, exception {rv['failed_exception']})"),
        ("round trip [ms] p50 / p95 / max", f"{rt['p50']:.1f} / {rt['p95']:.1f} / {rt['max']:.1f}"),
        ("render_ms in node [ms] p50 / p95 / max", f"{rm['p50']:.1f} / {rm['p95']:.1f} / {rm['max']:.1f}"),
        ("mean coverage of the renders", f"{rv['coverage_mean']:.3f}"),
        ("camera frames published", f"{ing['published_hz']:.1f} Hz"),
        ("ingest (status) mean / median", f"{si['mean']:.1f} / {_median_ingest(r)} Hz; frames received "
                                       f"{ing['frames_received_hz']:.1f} Hz; dropped {ing['frames_dropped_in_window']}"),
        ("pairs offered / published between the window's statuses",
         f"{ing['pairs_offered_in_window']} / {ing['published_between_statuses']} "
         f"({_fraction(ing['pairs_offered_in_window'], ing['published_between_statuses'])}); "
         f"skipped busy {ing['pairs_skipped_busy_in_window']}"),
        ("keyframes start -> end", f"{ing['keyframes_start']} -> {ing['keyframes_end']}"),
        ("keyframes off their published pose (> 1 mm / 0.1 deg), whole run",
         f"{kp['keyframes_off_pose']} of {kp['keyframes_checked']} (max {kp['max_translation_error_mm']:.1f} mm, "
         f"{kp['max_rotation_error_deg']:.2f} deg)"),
        ("sim/camera/image_raw received", f"{sim['images']} images = {sim['rate_hz']:.2f} Hz "
                                          f"(stamps {sim['stamp_rate_hz']:.2f} Hz; longest gap {sim['max_gap_ms']:.0f} ms;"
                                          f" status {sim['status_sim_rate_hz']['mean']:.2f} Hz)"),
        ("load average (1 min) before / after", f"{r['machine']['loadavg_before'][0]:.2f} / "
                                                f"{r['machine']['loadavg_after'][0]:.2f} on {r['machine']['cpus']} CPUs"),
    ]
    width = max(len(k) for k, _ in rows)
    print("| " + "measure".ljust(width) + " | value |")
    print("|" + "-" * (width + 2) + "|---|")
    for key, value in rows:
        print(f"| {key.ljust(width)} | {value} |")


def _fraction(part, whole) -> str:
    return f"{100.0 * part / whole:.1f} %" if part is not None and whole else "n/a"


def _median_ingest(r: dict) -> str:
    values = r["ingest"]["status_ingest_rate_hz"]
    return f"{values['p50']:.1f}" if math.isfinite(values["p50"]) else "nan"


def run_main(args) -> int:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 101))
    from worldfm_ros.ros.dds import apply_dds_profile

    apply_dds_profile()  # children inherit the variable
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from worldfm_ros.msg import KeyframeInfo, WorldStatus
    from worldfm_ros.ros.messages import pose_to_matrix, time_to_seconds

    out_dir = Path(args.log_dir) if args.log_dir else Path(tempfile.mkdtemp(prefix="worldfm_load_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="worldfm_load_sync_"))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    print(f"[load] ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}; logs in {out_dir}", flush=True)
    load_before = os.getloadavg()

    node_args = [sys.executable, "-m", "worldfm_ros.ros.node", "--ros-args",
                 "--params-file", str(ROOT / "config" / "worldfm.yaml"),
                 "-p", "sim.enabled:=true", "-p", f"sim.rate_hz:={float(args.sim_rate)}",
                 "-p", "sim.width:=320", "-p", "sim.height:=240", "-p", f"backend:={args.backend}"]
    node_log = out_dir / "node.log"
    processes: dict[str, subprocess.Popen] = {}
    processes["node"] = subprocess.Popen(node_args, stdout=open(node_log, "w"), stderr=subprocess.STDOUT,
                                         env=env, cwd=str(ROOT))
    common = ["--workdir", str(workdir), "--seed", str(args.seed), "--rate", str(args.rate),
              "--clients", str(args.clients), "--call-rate", str(args.call_rate),
              "--call-timeout", str(args.call_timeout), "--world-frames", str(args.world_frames),
              "--max-lifetime", str(args.seconds + 2 * STARTUP_TIMEOUT + 120), "--qos", args.qos]
    if args.want_depth:
        common.append("--want-depth")
    if args.odom_ahead:
        common.append("--odom-ahead")
    processes["publisher"] = _spawn(["--role", "publisher", *common], out_dir / "publisher.log", env)
    for i in range(args.clients):
        processes[f"client{i}"] = _spawn(["--role", "client", "--client-id", str(i), *common],
                                         out_dir / f"client{i}.log", env)

    rclpy.init()
    node = rclpy.create_node("load_benchmark_monitor")
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    stream: list[tuple[float, float]] = []  # (wall arrival, header stamp)
    statuses: list[tuple[float, object]] = []
    node.create_subscription(Image, "sim/camera/image_raw",
                             lambda m: stream.append((time.time(), time_to_seconds(m.header.stamp))),
                             QoSProfile(depth=5))
    node.create_subscription(WorldStatus, "/worldfm_node/status", lambda m: statuses.append((time.time(), m)),
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    keyframes: list[tuple[int, int, np.ndarray]] = []  # (stamp sec, nanosec, T_world_cam)
    node.create_subscription(KeyframeInfo, "/worldfm_node/keyframes",
                             lambda m: keyframes.append((m.stamp.sec, m.stamp.nanosec, pose_to_matrix(m.pose))),
                             QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))

    def spin_until(predicate, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            for name, process in processes.items():
                if process.poll() is not None and (name == "node" or not (workdir / f"{name}.json").exists()):
                    raise RuntimeError(f"{name} exited with code {process.returncode} while waiting for {what}; "
                                       f"see {out_dir / (name + '.log')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; logs in {out_dir}")
            executor.spin_once(timeout_sec=0.02)

    try:
        print("[load] starting worldfm_node, robot (pre-rendering its path) and clients ...", flush=True)
        spin_until(lambda: bool(statuses), "the node's status", STARTUP_TIMEOUT)
        spin_until(lambda: (workdir / "ready.publisher").exists(), "the robot to pre-render", STARTUP_TIMEOUT)
        info = read_json(workdir / "ready.publisher")
        warmup = info["frames"] / args.rate + 2.0
        print(f"[load] robot publishing {info['frames']} frames around a {info['loop_m']:.1f} m loop at "
              f"{args.rate:g} Hz; warm-up {warmup:.0f} s (one pass)", flush=True)
        t_warm = time.monotonic()
        spin_until(lambda: time.monotonic() - t_warm > warmup and statuses[-1][1].keyframes > 0,
                   "the warm-up pass", warmup + STARTUP_TIMEOUT)
        spin_until(lambda: all((workdir / f"ready.client{i}").exists() for i in range(args.clients)),
                   "the clients to find the service", STARTUP_TIMEOUT)
        start = time.time() + GO_DELAY
        end = start + args.seconds
        write_json(workdir / "go.json", {"start": start, "end": end})
        print(f"[load] {statuses[-1][1].keyframes} keyframes; measuring for {args.seconds:g} s ...", flush=True)
        spin_until(lambda: time.time() > end + 0.6, "the end of the window", args.seconds + 30)
        # Children finish their last call (bounded by --call-timeout) and write their results.
        names = ["publisher"] + [f"client{i}" for i in range(args.clients)]
        spin_until(lambda: all((workdir / f"{n}.json").exists() for n in names), "the children's results",
                   args.call_timeout + 60)
        load_after = os.getloadavg()
        clients = [read_json(workdir / f"client{i}.json") for i in range(args.clients)]
        publisher = read_json(workdir / "publisher.json") or {}
        publisher["frames"] = info["frames"]
        publisher["T_world_cam"] = info["T_world_cam"]
        result = summarise(args, clients, publisher, stream, statuses, (start, end),
                           {"loadavg_before": list(load_before), "loadavg_after": list(load_after),
                            "cpus": os.cpu_count()}, keyframes)
        print_table(result)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(result, indent=2))
            print(f"[load] figures written to {args.json}")
        return 0
    except (RuntimeError, TimeoutError) as error:
        print(f"[load] error: {error}", file=sys.stderr)
        try:
            print(node_log.read_text()[-2000:], file=sys.stderr)
        except OSError:
            pass
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        print("[load] interrupted", file=sys.stderr)
        return 130
    finally:
        (workdir / "stop").touch()
        for name, process in processes.items():
            if name != "node":
                _stop(process, timeout=5.0)
        _stop(processes["node"])
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        for path in workdir.glob("*.json"):  # the children's raw records, next to their logs
            shutil.move(str(path), str(out_dir / f"raw_{path.name}"))
        shutil.rmtree(workdir, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="measured window [s]")
    p.add_argument("--clients", type=int, default=8, help="render_view client processes")
    p.add_argument("--call-rate", type=float, default=20.0, help="render_view calls per client [Hz]")
    p.add_argument("--call-timeout", type=float, default=2.0, help="a call without reply by then fails [s]")
    p.add_argument("--want-depth", action="store_true", help="ask render_view for depth too")
    p.add_argument("--rate", type=float, default=15.0, help="robot camera + odometry rate [Hz]")
    p.add_argument("--qos", default="best_effort", choices=("best_effort", "reliable"),
                   help="the robot's publishers: sensor-data QoS as camera drivers use, or reliable")
    p.add_argument("--odom-ahead", action="store_true",
                   help="publish each frame's odometry and camera info one frame before its images "
                        "(default: right before them, in the same instant)")
    p.add_argument("--world-frames", type=int, default=120,
                   help="at most this many 640x480 frames are pre-rendered along the loop")
    p.add_argument("--sim-rate", type=float, default=10.0, help="sim.rate_hz of the node [Hz]")
    p.add_argument("--backend", default="geometric", choices=("geometric", "nearest", "learned"))
    p.add_argument("--seed", type=int, default=0, help="synthetic world and path")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--log-dir", help="folder for the node's and children's logs (default: a temp folder)")
    # internal: the roles of the child processes
    p.add_argument("--role", default="main", choices=("main", "publisher", "client"), help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--client-id", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--max-lifetime", type=float, default=600.0, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.seconds <= 0 or args.clients < 1 or args.call_rate <= 0 or args.rate <= 0 or args.call_timeout <= 0:
        print("--seconds, --clients, --call-rate, --rate and --call-timeout must be positive", file=sys.stderr)
        return 2
    try:
        if args.role == "publisher":
            return run_publisher(args)
        if args.role == "client":
            return run_client(args)
        return run_main(args)
    except KeyboardInterrupt:  # Ctrl-C before ROS was up; the finally blocks cleaned up
        return 130


if __name__ == "__main__":
    sys.exit(main())
