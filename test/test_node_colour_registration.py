"""``camera.colour_focal_ratio`` end to end: a node fed by an unregistered RGB-D rig (colour
camera wider than the ``camera_info`` that describes the depth, as on a Kinect v1) stores
keyframes registered to the colour camera and renders the colour camera's view.

The rig is simulated exactly: a synthetic world rendered with the colour camera's intrinsics
for colour and with ``camera_info``'s for depth, from the same pose.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is needed for the node tests")

from test_node_integration import (  # noqa: E402
    BASE_XY,
    CAMERA_TO_BASE,
    K640,
    STAMP0,
    T_BASE_CAM,
    Client,
    NodeProcess,
    decode_rgb,
    psnr,
    publish_frame,
    render_request,
)
from worldfm_ros.core.colour_registration import colour_intrinsics  # noqa: E402
from worldfm_ros.core.synthetic.scene import SyntheticWorld  # noqa: E402
from worldfm_ros.core.synthetic.trajectory import base_pose  # noqa: E402
from worldfm_ros.core.world_file import read_world  # noqa: E402
from worldfm_ros.srv import SaveWorld  # noqa: E402

RATIO = 0.9


def test_node_registers_an_unregistered_rig_to_its_colour_camera(ros_context, tmp_path):
    ratio = RATIO
    world = SyntheticWorld.generate(1, layout="single", size=(5.0, 5.0))
    K_colour = colour_intrinsics(K640, ratio)
    bases = [base_pose(*BASE_XY, yaw) for yaw in (0.0, math.pi / 4, math.pi / 2)]
    poses = [T_base @ T_BASE_CAM for T_base in bases]
    saved = tmp_path / "registered.world"
    node = NodeProcess(tmp_path / "node.log", f"camera_to_base:={CAMERA_TO_BASE}",
                       f"camera.colour_focal_ratio:={ratio}")
    client = Client(ros_context)
    try:
        client.spin_until(lambda: client.render.wait_for_service(timeout_sec=0.1), 60.0, "the node", node)
        for i, (T_base, T) in enumerate(zip(bases, poses)):
            colour, _ = world.render(T, K_colour)
            _, depth = world.render(T, K640)
            for _attempt in range(3):  # sensor-data QoS is best effort: a lost image is resent
                publish_frame(client, STAMP0 + i, T_base, colour, depth)
                try:
                    client.spin_until(lambda: len(client.keyframes) > i, 5.0, f"keyframe {i}", node)
                    break
                except AssertionError:
                    continue
            else:
                raise AssertionError(f"frame {i} never became a keyframe\n{node.log()}")
        reply = client.call(client.save, SaveWorld.Request(path=str(saved)))
        assert reply.success, reply.message
        keyframes = read_world(saved)
        assert len(keyframes) == len(poses)
        for kf in keyframes:  # stored with the colour camera's intrinsics at 320x240
            assert kf.intrinsics.fx == pytest.approx(ratio * K640.fx / 2)
            assert kf.depth[120, 0] == 0.0 and kf.depth[120, 160] > 0  # the depth camera sees less
        # The stored depth is the world's depth as the colour camera sees it (mean relative
        # error 0.04-0.15 % measured; unregistered, 1.4-3.7 %).
        for kf, T in zip(keyframes, poses):
            truth = world.render(T, K_colour.scaled(0.5))[1]
            inside = kf.depth > 0
            assert np.mean(np.abs(kf.depth[inside] - truth[inside]) / truth[inside]) < 0.005
        # A view between two keyframes, asked with the colour camera's intrinsics, looks like the
        # colour camera's exact view where the depth camera saw it.
        T = base_pose(*BASE_XY, math.pi / 8) @ T_BASE_CAM
        K = K_colour.scaled(0.5)
        reply = client.call(client.render, render_request(T, K))
        assert reply.success, reply.message
        exact = world.render(T, K)[0]
        rendered = decode_rgb(reply.image)
        centre = np.zeros((K.height, K.width), bool)
        centre[K.height // 5:-K.height // 5, K.width // 5:-K.width // 5] = True
        assert psnr(rendered, exact, centre) > 28.0, node.log()  # 31.1 dB measured; unregistered 16.8
    finally:
        client.close()
        rc = node.stop()
    assert rc == 0, node.log()
