"""Node parameters: the YAML file, the config object and the ROS declarations agree, and
invalid values stop start-up with the parameter's name."""

import os
import re
from pathlib import Path

import pytest

from worldfm_ros.ros.config import PARAMETERS, SPECS, ConfigError, NodeConfig, read_parameter_file

ROOT = Path(__file__).resolve().parents[1]
YAML = ROOT / "config" / "worldfm.yaml"

CONTRACT_PARAMETERS = (
    "world_frame", "camera_to_base", "world_path", "backend", "device", "render.width", "render.height",
    "sync.max_gap", "sync.max_extrapolation", "sim.enabled", "sim.rate_hz", "sim.width", "sim.height",
    "sim.start_pose", "sim.cmd_timeout",
)


def test_yaml_holds_every_parameter_with_its_default_and_a_comment():
    values = read_parameter_file(str(YAML))
    assert set(values) == set(SPECS)
    config = NodeConfig.from_yaml(str(YAML))
    assert config == NodeConfig()
    for spec in PARAMETERS:
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        assert values[spec.name] == default, spec.name
    leaves = [line for line in YAML.read_text().splitlines()
              if re.match(r"^\s+[a-z_]+:\s*\S", line) and "ros__parameters" not in line]
    assert len(leaves) == len(PARAMETERS)
    assert all("#" in line for line in leaves)


def test_contract_parameters_and_defaults():
    assert set(CONTRACT_PARAMETERS) <= set(SPECS)
    c = NodeConfig()
    assert (c.world_frame, c.render_width, c.render_height, c.sync_max_gap, c.sync_max_extrapolation) == (
        "odom", 320, 240, 0.02, 0.1)
    assert c.camera_to_base == (0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5)
    assert (c.sim_cmd_timeout, c.retrieval_k, c.keyframe_width, c.keyframe_height) == (0.5, 4, 320, 240)
    # the default extrinsic: optical z (forward) = base x, optical x (right) = base -y
    T = c.T_base_cam
    assert T[:3, 2].round(12).tolist() == [1.0, 0.0, 0.0]
    assert T[:3, 0].round(12).tolist() == [0.0, -1.0, 0.0]


@pytest.mark.parametrize(
    "name, value",
    [
        ("render.width", 0), ("render.width", 100000), ("render.height", 2.5), ("backend", "magic"),
        ("device", "tpu"), ("sync.max_gap", -0.1), ("sync.max_extrapolation", float("nan")),
        ("sim.rate_hz", 0.0), ("sim.enabled", "yes"), ("camera_to_base", [0, 0, 0, 0, 0, 0, 0]),
        ("camera_to_base", [1.0, 2.0]), ("sim.start_pose", [0.0, 0.0, 0.0]), ("retrieval.k", 0),
        ("sim.start_pose", [0, 0, float("inf"), 0, 0, 0, 1]), ("world_frame", ""), ("render.widht", 10),
        ("camera.colour_focal_ratio", 0.0), ("camera.colour_focal_ratio", 3.0),
    ],
)
def test_invalid_values_name_the_parameter(name, value):
    with pytest.raises(ConfigError) as info:
        NodeConfig.from_parameters({name: value})
    assert info.value.name == name
    assert f"'{name}'" in str(info.value)


def test_world_service_config_carries_the_memory_parameters():
    c = NodeConfig.from_parameters({"keyframe.min_translation": 0.2, "retrieval.k": 6, "memory.max_keyframes": 7,
                                    "sim.start_pose": [1, 2, 0, 0, 0, 0, 2], "camera.colour_focal_ratio": 0.9})
    w = c.world_service_config()
    assert (w.memory.min_translation, w.memory.retrieval_k, w.memory.max_keyframes) == (0.2, 6, 7)
    assert w.colour_focal_ratio == 0.9
    assert c.T_world_sim_start[:3, 3].tolist() == [1.0, 2.0, 0.0]  # quaternion normalised


# ---------------------------------------------------------------------- ROS parameters
rclpy = pytest.importorskip("rclpy", reason="rclpy is needed for the ROS parameter declarations")


@pytest.fixture
def make_node():
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    from rclpy.node import Node

    from worldfm_ros.ros.config import declare_parameters

    created = []

    def make(args=()):
        context = rclpy.Context()
        rclpy.init(args=["test", "--ros-args", *args], context=context)
        node = Node("worldfm_node", context=context)
        created.append((node, context))
        declare_parameters(node)
        return node

    yield make
    for node, context in created:
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_ros_declarations_have_descriptions_and_ranges(make_node):
    node = make_node()
    for spec in PARAMETERS:
        descriptor = node.describe_parameter(spec.name)
        assert descriptor.description == spec.description
        if spec.kind is int and spec.low is not None:
            assert (descriptor.integer_range[0].from_value, descriptor.integer_range[0].to_value) == (spec.low, spec.high)
        if spec.kind is float and spec.low is not None:
            assert descriptor.floating_point_range[0].to_value == spec.high
    assert NodeConfig.from_node(node) == NodeConfig()


def test_ros_params_file_and_overrides(make_node):
    node = make_node(["--params-file", str(YAML), "-p", "render.width:=640",
                      "-p", "sim.start_pose:=[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]"])
    config = NodeConfig.from_node(node)
    assert config.render_width == 640 and config.sim_start_pose == (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    assert config.sim_start_pose != NodeConfig().sim_start_pose


@pytest.mark.parametrize("override, name", [("render.width:=100000", "render.width"),
                                            ("sync.max_gap:=fast", "sync.max_gap")])
def test_ros_invalid_override_stops_start_up(make_node, override, name):
    with pytest.raises(ConfigError) as info:
        make_node(["-p", override])
    assert info.value.name == name


def test_ros_choice_checked_at_read_and_runtime_sets_checked(make_node):
    from rclpy.parameter import Parameter

    node = make_node(["-p", "backend:=magic"])
    with pytest.raises(ConfigError) as info:
        NodeConfig.from_node(node)
    assert info.value.name == "backend"
    result = node.set_parameters([Parameter("device", value="tpu")])[0]
    assert not result.successful and "device" in result.reason
    assert node.set_parameters([Parameter("device", value="cuda")])[0].successful
