"""``worldfm-demo``: the built-in default run, no robot and no dataset needed.

1. A procedural synthetic world (exact colour + depth at any pose) plays a robot: one
   process publishes camera images, depth, camera_info and odometry along a loop.
2. A real ``worldfm_node`` in another process remembers the frames as keyframes (over DDS).
3. The node's simulated camera is then driven with ``sim/cmd_vel`` along the same loop; what
   the virtual camera saw is saved next to the exact synthetic view at the pose ``sim/odom``
   reports, as PNGs and a contact sheet.
4. The virtual robot then drives straight at the nearest wall its scan sees: the simulator
   stops it at its footprint (``sim/collision``), and ``map.png`` shows the node's occupancy
   map with the robot's trajectory and the collision point.
It prints the ingest rate, ``render_view`` latency and the achieved simulator stream rate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.contact_sheet import contact_sheet, save_png
from worldfm_ros.core.evaluation import psnr
from worldfm_ros.core.pose import invert_pose, pose_from_vector

#: The demo robot's camera: Kinect-like 640x480 RGB-D.
CAMERA = Intrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=640, height=480)
#: The contract's default extrinsic: forward-looking optical frame at the base origin.
CAMERA_TO_BASE = [0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5]


def _isolate_ros_graph() -> None:
    """Keep discovery on this machine and off the default domain, unless the user chose."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 101))


def _start_node(log_path: Path, params: list[str]) -> subprocess.Popen:
    args = [sys.executable, "-m", "worldfm_ros.ros.node", "--ros-args"]
    for p in params:
        args += ["-p", p]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(args, stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env=env)


def _stop_node(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _yaw(T: np.ndarray) -> float:
    return math.atan2(T[1, 0], T[0, 0])


#: Forward speed of the drive into a wall [m/s].
_WALL_SPEED = 0.3


def _drive_into_wall(client, executor, spin_until, call, set_pose, pub_cmd, scans, odoms, collisions,
                     odometry_to_pose, matrix_to_pose, Twist, SetPose) -> dict:
    """Turn the virtual robot towards the nearest wall its latest scan sees (at least 0.6 m
    away), drive straight at it until the simulator refuses the steps, and report what
    happened; ``trajectory`` holds the base positions ``[x, y]`` of the drive."""
    spin_until(lambda: bool(scans) and bool(odoms), "sim/scan")
    scan, (_, T) = scans[-1], odometry_to_pose(odoms[-1])
    ranges = np.asarray(scan.ranges, np.float64)
    angles = scan.angle_min + np.arange(len(ranges)) * scan.angle_increment
    usable = np.isfinite(ranges) & (ranges >= 0.6)
    if not usable.any():
        raise RuntimeError("the simulated scan sees no wall to drive at")
    beam = int(np.argmin(np.where(usable, ranges, np.inf)))
    heading = _yaw(T) + angles[beam]
    T_facing = T.copy()
    c, s = math.cos(heading), math.sin(heading)
    T_facing[:2, :2] = [[c, -s], [s, c]]
    request = SetPose.Request()
    request.pose = matrix_to_pose(T_facing)
    reply = call(set_pose, request)
    if not reply.success:
        raise RuntimeError(f"sim/set_pose failed: {reply.message}")
    start = T_facing[:2, 3].copy()
    odoms.clear()
    collisions.clear()
    command = Twist()
    command.linear.x = _WALL_SPEED
    deadline = time.monotonic() + ranges[beam] / _WALL_SPEED + 3.0
    blocked_since = None
    while time.monotonic() < deadline:
        pub_cmd.publish(command)
        until = time.monotonic() + 0.1
        while time.monotonic() < until:
            executor.spin_once(timeout_sec=0.01)
        blocked = bool(collisions) and collisions[-1].data
        blocked_since = (blocked_since or time.monotonic()) if blocked else None
        if blocked_since is not None and time.monotonic() - blocked_since > 1.0:
            break  # refused for a second while still commanded forward: it has stopped
    pub_cmd.publish(Twist())
    spin_until(lambda: bool(odoms), "sim/odom")
    positions = [odometry_to_pose(o)[1][:2, 3] for o in odoms]
    stop = positions[-1]
    count = len(scans)
    spin_until(lambda: len(scans) > count, "sim/scan after the stop")
    after = np.asarray(scans[-1].ranges, np.float64)
    ahead = float(after[int(np.argmin(np.abs(angles)))])
    return {
        "wall_distance_m": float(ranges[beam]),
        "travelled_m": float(np.linalg.norm(stop - start)),
        "collision_reported": any(m.data for m in collisions),
        "scan_ahead_after_m": ahead,
        "collision_xy": [float(stop[0]), float(stop[1])],
        "trajectory": [start] + positions,
    }


def _save_map_png(world_path: str, png: Path, trajectory: np.ndarray, collision_xy) -> Path:
    """Draw the occupancy map of a saved world (the node's map rules and defaults) with the
    robot's ``trajectory [N, 2]`` and the collision point."""
    from worldfm_ros.core.world_file import read_world
    from worldfm_ros.core.world_service import WorldService

    service = WorldService()
    service.load_keyframes(read_world(world_path))
    return service.occupancy_map.save_png(png, trajectory=trajectory, marks={"collision": collision_xy})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="worldfm-demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="folder for PNGs, contact sheet, world file")
    p.add_argument("--seed", type=int, default=0, help="synthetic world and path seed")
    p.add_argument("--frames", type=int, default=240, help="frames the robot records along its loop")
    p.add_argument("--rate", type=float, default=15.0, help="camera rate of the recording [Hz]")
    p.add_argument("--drive-seconds", type=float, default=12.0, help="how long the virtual robot is driven [s]")
    p.add_argument("--sim-rate", type=float, default=10.0, help="simulated camera rate [Hz]")
    p.add_argument("--snapshots", type=int, default=6, help="virtual-camera frames on the contact sheet")
    p.add_argument("--backend", default="geometric", choices=("geometric", "nearest", "learned"))
    p.add_argument("--timeout", type=float, default=60.0, help="longest wait for the node at any step [s]")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _isolate_ros_graph()
    from worldfm_ros.ros.dds import apply_dds_profile

    apply_dds_profile()
    import rclpy
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, LaserScan
    from std_msgs.msg import Bool

    from worldfm_ros.core.synthetic import SyntheticWorld
    from worldfm_ros.core.synthetic.trajectory import plan_loop
    from worldfm_ros.msg import KeyframeInfo, WorldStatus
    from worldfm_ros.ros.image_conversion import camera_info_to_intrinsics, depth_to_image, image_to_rgb, rgb_to_image
    from worldfm_ros.ros.messages import (
        intrinsics_to_camera_info, make_odometry, matrix_to_pose, odometry_to_pose, seconds_to_time,
    )
    from worldfm_ros.srv import RenderView, SaveWorld, SetPose

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    T_base_cam = pose_from_vector(CAMERA_TO_BASE)
    print(f"[demo] synthetic world seed {args.seed}; ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}", flush=True)
    world = SyntheticWorld.generate(args.seed)
    loop = plan_loop(world, args.seed, args.frames, rate_hz=args.rate, camera_to_base=T_base_cam)

    node_log = out / "node.log"
    node = _start_node(node_log, [
        "sim.enabled:=true", f"sim.rate_hz:={args.sim_rate}", "sim.width:=320", "sim.height:=240",
        f"backend:={args.backend}", f"camera_to_base:={CAMERA_TO_BASE}",
    ])
    rclpy.init()
    client = rclpy.create_node("worldfm_demo_robot")
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(client)
    results: dict = {}

    def spin_until(predicate, what: str, timeout: float = args.timeout) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if node.poll() is not None:
                raise RuntimeError(f"worldfm_node exited (code {node.returncode}); see {node_log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; see {node_log}")
            executor.spin_once(timeout_sec=0.01)

    def call(service_client, request):
        spin_until(lambda: service_client.service_is_ready(), f"service {service_client.srv_name}")
        future = service_client.call_async(request)
        spin_until(future.done, f"reply of {service_client.srv_name}")
        return future.result()

    try:
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        pub_colour = client.create_publisher(Image, "camera/image_raw", QoSProfile(depth=5))
        pub_depth = client.create_publisher(Image, "camera/depth/image_raw", QoSProfile(depth=5))
        pub_info = client.create_publisher(CameraInfo, "camera/camera_info", reliable)
        pub_odom = client.create_publisher(Odometry, "odom", reliable)
        pub_cmd = client.create_publisher(Twist, "sim/cmd_vel", reliable)
        keyframes: list = []
        statuses: list = []
        sim_images: list = []
        sim_odoms: list = []
        sim_infos: list = []
        client.create_subscription(KeyframeInfo, "/worldfm_node/keyframes", keyframes.append,
                                   QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        client.create_subscription(WorldStatus, "/worldfm_node/status", statuses.append, reliable)
        client.create_subscription(Image, "sim/camera/image_raw", sim_images.append, QoSProfile(depth=50))
        client.create_subscription(Odometry, "sim/odom", sim_odoms.append, QoSProfile(depth=50))
        client.create_subscription(CameraInfo, "sim/camera/camera_info", sim_infos.append, QoSProfile(depth=50))
        scans: list = []
        collisions: list = []
        client.create_subscription(LaserScan, "sim/scan", scans.append, QoSProfile(depth=10))
        client.create_subscription(Bool, "sim/collision", collisions.append, QoSProfile(depth=50))
        render = client.create_client(RenderView, "/worldfm_node/render_view")
        save = client.create_client(SaveWorld, "/worldfm_node/save_world")
        set_pose = client.create_client(SetPose, "sim/set_pose")

        print("[demo] waiting for worldfm_node ...", flush=True)
        spin_until(lambda: len(statuses) > 0 and pub_colour.get_subscription_count() > 0, "the node to start")

        # --- 1. record: publish the synthetic robot's sensor streams ---------------------------
        print(f"[demo] robot drives one loop ({loop.length:.1f} m, {len(loop.stamps)} frames at {args.rate:g} Hz)",
              flush=True)
        t_start = time.monotonic()
        statuses_before = len(statuses)
        period = 1.0 / args.rate
        for i, (T_wb, T_wc) in enumerate(zip(loop.T_world_base, loop.T_world_cam)):
            colour, depth = world.render(T_wc, CAMERA)
            stamp = seconds_to_time(time.time())
            pub_odom.publish(make_odometry(T_wb, np.zeros(3), np.zeros(3), stamp, "odom", "base_link"))
            pub_info.publish(intrinsics_to_camera_info(CAMERA, stamp, "camera_optical_frame"))
            pub_depth.publish(depth_to_image(depth, stamp, "camera_optical_frame"))
            pub_colour.publish(rgb_to_image(colour, stamp, "camera_optical_frame"))
            # Keep to the camera rate, but never sleep while the ray caster is behind.
            next_t = t_start + (i + 1) * period
            while time.monotonic() < next_t:
                executor.spin_once(timeout_sec=max(0.0, min(0.01, next_t - time.monotonic())))
        record_s = time.monotonic() - t_start
        # Last odometry a little later so the final frames can be interpolated, not extrapolated.
        pub_odom.publish(make_odometry(loop.T_world_base[-1], np.zeros(3), np.zeros(3),
                                       seconds_to_time(time.time()), "odom", "base_link"))
        settle = time.monotonic() + 3.0
        spin_until(lambda: time.monotonic() > settle, "keyframes to settle")
        status = statuses[-1]
        results["recorded_frames"] = len(loop.stamps)
        results["record_rate_hz"] = len(loop.stamps) / record_s
        results["keyframes"] = int(status.keyframes)
        results["memory_mb"] = status.memory_bytes / 1e6
        # ~/status.ingest_rate_hz is a rate over the last 3 s: read it while frames flowed
        # (after settling it is 0 again); the median of the statuses seen during the drive.
        rates = [s.ingest_rate_hz for s in statuses[statuses_before:] if s.ingest_rate_hz > 0]
        results["ingest_rate_hz"] = float(np.median(rates)) if rates else 0.0
        results["pairs_offered"] = int(status.pairs_offered)
        results["pairs_skipped_busy"] = int(status.pairs_skipped_busy)
        print(f"[demo] published {len(loop.stamps)} frames in {record_s:.1f} s ({results['record_rate_hz']:.1f} Hz); "
              f"node ingested at {results['ingest_rate_hz']:.1f} Hz ({status.pairs_offered} pairs offered, "
              f"{status.pairs_skipped_busy} skipped busy) and kept {status.keyframes} keyframes "
              f"({results['memory_mb']:.1f} MB)", flush=True)

        # --- 2. render_view latency at poses between the recorded ones --------------------------
        req_ms, node_ms, psnrs = [], [], []
        K_render = CAMERA.scaled(0.5)
        for i in range(3, len(loop.stamps) - 1, max(1, len(loop.stamps) // 20)):
            T = loop.T_world_cam[i]
            request = RenderView.Request()
            request.pose = matrix_to_pose(T)
            request.camera_info = intrinsics_to_camera_info(K_render, seconds_to_time(0.0), "render")
            t0 = time.monotonic()
            reply = call(render, request)
            req_ms.append((time.monotonic() - t0) * 1e3)
            if not reply.success:
                raise RuntimeError(f"render_view failed: {reply.message}")
            node_ms.append(reply.render_ms)
            truth, _ = world.render(T, K_render, supersample=2)  # anti-aliased like the keyframes
            psnrs.append(psnr(image_to_rgb(reply.image), truth))
        results["render_view_ms_p50"] = float(np.median(node_ms))
        results["render_view_roundtrip_ms_p50"] = float(np.median(req_ms))
        results["render_view_psnr_db"] = float(np.mean(psnrs))
        print(f"[demo] render_view at 320x240: {results['render_view_ms_p50']:.1f} ms in the node, "
              f"{results['render_view_roundtrip_ms_p50']:.1f} ms round trip (median of {len(node_ms)}); "
              f"PSNR vs exact {results['render_view_psnr_db']:.1f} dB", flush=True)

        # --- 3. drive the simulated camera with cmd_vel along the loop ---------------------------
        request = SetPose.Request()
        request.pose = matrix_to_pose(loop.T_world_base[0])
        reply = call(set_pose, request)
        if not reply.success:
            raise RuntimeError(f"sim/set_pose failed: {reply.message}")
        spin_until(lambda: len(sim_images) > 0, "the simulated camera")
        sim_images.clear()
        sim_odoms.clear()
        dt = 1.0 / args.rate
        n_cmd = min(len(loop.stamps) - 1, int(args.drive_seconds * args.rate))
        t_drive = time.monotonic()
        for i in range(n_cmd):
            a, b = loop.T_world_base[i], loop.T_world_base[i + 1]
            step = invert_pose(a) @ b  # body-frame motion over one frame
            twist = Twist()
            twist.linear.x, twist.linear.y = step[0, 3] / dt, step[1, 3] / dt
            twist.angular.z = math.atan2(step[1, 0], step[0, 0]) / dt
            pub_cmd.publish(twist)
            next_t = t_drive + (i + 1) * dt
            while time.monotonic() < next_t:
                executor.spin_once(timeout_sec=max(0.0, min(0.01, next_t - time.monotonic())))
        drive_s = time.monotonic() - t_drive
        pub_cmd.publish(Twist())
        images, odoms, infos = list(sim_images), list(sim_odoms), list(sim_infos)
        results["sim_images"] = len(images)
        results["sim_rate_hz"] = len(images) / drive_s
        print(f"[demo] drove {drive_s:.1f} s with cmd_vel: {len(images)} simulated images "
              f"({results['sim_rate_hz']:.1f} Hz of {args.sim_rate:g} asked)", flush=True)

        # --- 4. what the virtual camera saw, next to the exact view at the sim/odom pose --------
        odom_by_stamp = {(o.header.stamp.sec, o.header.stamp.nanosec): o for o in odoms}
        info_by_stamp = {(c.header.stamp.sec, c.header.stamp.nanosec): c for c in infos}
        rows, sim_psnr = [], []
        picks = np.linspace(0, len(images) - 1, min(args.snapshots, len(images))).round().astype(int)
        for n, j in enumerate(picks):
            img = images[int(j)]
            key = (img.header.stamp.sec, img.header.stamp.nanosec)
            if key not in odom_by_stamp or key not in info_by_stamp:
                continue
            _, T_wb = odometry_to_pose(odom_by_stamp[key])
            K_sim = camera_info_to_intrinsics(info_by_stamp[key])
            seen = image_to_rgb(img)
            truth, _ = world.render(T_wb @ T_base_cam, K_sim, supersample=2)
            sim_psnr.append(psnr(seen, truth))
            save_png(out / f"sim_{n:02d}_seen.png", seen)
            save_png(out / f"sim_{n:02d}_truth.png", truth)
            rows.append([seen, truth])
        if rows:
            save_png(out / "contact_sheet.png", contact_sheet(rows, ["virtual camera (worldfm)", "exact synthetic view"]))
            results["sim_psnr_db"] = float(np.mean(sim_psnr))
            print(f"[demo] virtual camera vs exact view at the sim/odom pose: {results['sim_psnr_db']:.1f} dB "
                  f"over {len(rows)} snapshots", flush=True)

        # --- 5. drive the virtual robot straight at a wall: the simulator stops it ------------
        trajectory = [odometry_to_pose(o)[1][:2, 3] for o in odoms]
        wall = _drive_into_wall(client, executor, spin_until, call, set_pose, pub_cmd, scans, sim_odoms,
                                collisions, odometry_to_pose, matrix_to_pose, Twist, SetPose)
        trajectory += wall.pop("trajectory")
        results.update(wall)
        print(f"[demo] drove at a wall {wall['wall_distance_m']:.2f} m ahead: stopped after "
              f"{wall['travelled_m']:.2f} m, sim/collision {wall['collision_reported']}, scan ahead now "
              f"{wall['scan_ahead_after_m']:.2f} m (footprint radius 0.2 m)", flush=True)

        # --- 6. keep the remembered world, draw its map ---------------------------------------
        request = SaveWorld.Request()
        request.path = str((out / "demo.world").resolve())
        reply = call(save, request)
        results["world_file"] = request.path if reply.success else f"failed: {reply.message}"
        if reply.success:
            results["map_png"] = str(_save_map_png(request.path, out / "map.png", np.array(trajectory),
                                                   wall["collision_xy"]))
            print(f"[demo] occupancy map with the trajectory and the collision point: {results['map_png']}",
                  flush=True)
        (out / "summary.json").write_text(json.dumps(results, indent=2))
        print(f"[demo] world saved to {results['world_file']}; contact sheet {out / 'contact_sheet.png'}; "
              f"summary {out / 'summary.json'}", flush=True)
        return 0
    except (RuntimeError, TimeoutError) as error:
        print(f"[demo] error: {error}", file=sys.stderr)
        try:
            print(node_log.read_text()[-3000:], file=sys.stderr)
        except OSError:
            pass
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        executor.shutdown()
        client.destroy_node()
        rclpy.try_shutdown()
        _stop_node(node)


if __name__ == "__main__":
    sys.exit(main())
