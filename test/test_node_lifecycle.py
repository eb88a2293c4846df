"""worldfm_node's lifecycle in one process: configure loads the world, activate starts the
streams, deactivate / cleanup undo them, and a broken world file fails configure cleanly."""

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is needed for the node")

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from worldfm_ros.core.camera import Intrinsics  # noqa: E402
from worldfm_ros.core.keyframe import Keyframe  # noqa: E402
from worldfm_ros.core.world_file import write_world  # noqa: E402
from worldfm_ros.ros.config import ConfigError  # noqa: E402
from worldfm_ros.ros.node import WorldFMNode  # noqa: E402


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


def small_world(path) -> None:
    K = Intrinsics(100.0, 100.0, 31.5, 23.5, 64, 48)
    frames = []
    for i in range(2):
        T = np.eye(4)
        T[0, 3] = i * 0.5
        kf = Keyframe(np.full((48, 64, 3), 40 * i, np.uint8), np.full((48, 64), 2.0, np.float32), K, T, float(i))
        kf.id = i
        frames.append(kf)
    write_world(str(path), frames)


def names(node, entities) -> set[str]:
    """Fully resolved names of services or subscriptions."""
    out = set()
    for e in entities:
        if hasattr(e, "srv_name"):
            out.add(node.resolve_service_name(e.srv_name))
        else:
            out.add(node.resolve_topic_name(e.topic_name))
    return out


def test_transitions_create_and_release_everything(context, tmp_path):
    path = tmp_path / "small.world"
    small_world(path)
    node = WorldFMNode(context=context, parameter_overrides=[
        Parameter("world_path", value=str(path)), Parameter("sim.enabled", value=True)])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert len(node.world) == 2
        services = names(node, node.services)
        assert {"/worldfm_node/render_view", "/worldfm_node/save_world", "/worldfm_node/reset_world",
                "/sim/set_pose"} <= services
        assert not names(node, node.subscriptions)
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert {"/camera/image_raw", "/camera/depth/image_raw", "/camera/camera_info", "/odom",
                "/sim/cmd_vel"} == names(node, node.subscriptions)
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert not names(node, node.subscriptions)
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.world is None
        assert "/worldfm_node/render_view" not in names(node, node.services)
    finally:
        node.destroy_node()


def test_broken_world_file_fails_configure_and_leaves_the_node_unconfigured(context, tmp_path):
    path = tmp_path / "broken.world"
    path.write_bytes(b"not a world")
    node = WorldFMNode(context=context, parameter_overrides=[Parameter("world_path", value=str(path))])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.world is None
        assert "/worldfm_node/render_view" not in names(node, node.services)
        # fixed, configure succeeds (an empty world file is created)
        node.set_parameters([Parameter("world_path", value=str(tmp_path / "new.world"))])
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert len(node.world) == 0 and (tmp_path / "new.world").is_file()
    finally:
        node.destroy_node()


def test_invalid_parameter_stops_construction(context):
    with pytest.raises(ConfigError) as info:
        WorldFMNode(context=context, parameter_overrides=[Parameter("sim.rate_hz", value=0.0)])
    assert info.value.name == "sim.rate_hz"
