"""Launch files: checked statically, since `launch` / `launch_ros` cannot be installed here.

Neither package is on PyPI (see ../shared/notes/ros2-from-pypi.md), so the launch files cannot
be executed in this environment. What can be checked without them is checked from their
syntax tree: the executable they start is a console script of the package, the parameter file
they default to exists (and is installed), every parameter they set exists in
config/worldfm.yaml and in the node's config object, every launch argument has a description
and every LaunchConfiguration they read is declared. Where launch_ros *is* importable (a real
ROS 2 install with this package installed), the descriptions are also loaded for real.
"""

import ast
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

from worldfm_ros.ros.config import SPECS, read_parameter_file

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
#: Parameters every ROS 2 node declares itself (not ours to list in config/worldfm.yaml).
ROS_BUILTIN_PARAMETERS = {"use_sim_time"}


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def literal(node):
    return ast.literal_eval(node) if node is not None else None


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def test_both_launch_files_exist():
    assert {p.name for p in LAUNCH_FILES} == {"worldfm.launch.py", "sim.launch.py"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_executable_is_a_console_script_of_the_package(path):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    (node,) = calls(parsed(path), "Node")
    assert literal(keyword(node, "package")) == "worldfm_ros"
    executable = literal(keyword(node, "executable"))
    assert executable in scripts
    assert scripts[executable] == "worldfm_ros.ros.node:main"
    assert literal(keyword(node, "name")) == "worldfm_node"
    # CMake installs the same script into lib/worldfm_ros, where launch_ros looks for it
    assert re.search(rf"WORLDFM_CONSOLE_SCRIPTS[^)]*\b{executable}\b", (ROOT / "CMakeLists.txt").read_text())


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_parameter_file_default_exists_and_is_installed(path):
    tree = parsed(path)
    joins = [c for c in calls(tree, "join") if any(isinstance(a, ast.Constant) and a.value == "worldfm.yaml" for a in c.args)]
    assert joins, "the params_file default must be the installed config/worldfm.yaml"
    parts = [a.value for a in joins[0].args if isinstance(a, ast.Constant)]
    assert (ROOT.joinpath(*parts)).is_file()
    assert re.search(r"install\(DIRECTORY config", (ROOT / "CMakeLists.txt").read_text())
    declared = {literal(c.args[0]) for c in calls(tree, "DeclareLaunchArgument")}
    assert "params_file" in declared


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_every_parameter_set_exists_in_the_yaml_and_the_config(path):
    yaml_names = set(read_parameter_file(str(ROOT / "config" / "worldfm.yaml")))
    (node,) = calls(parsed(path), "Node")
    dicts = [d for d in ast.walk(keyword(node, "parameters")) if isinstance(d, ast.Dict)]
    names = {literal(k) for d in dicts for k in d.keys}
    assert names, "the launch file sets no parameter?"
    for name in names - ROS_BUILTIN_PARAMETERS:
        assert name in yaml_names, f"{path.name} sets {name!r}, missing from config/worldfm.yaml"
        assert name in SPECS, f"{path.name} sets {name!r}, unknown to worldfm_ros.ros.config"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_arguments_are_described_and_declared_before_use(path):
    tree = parsed(path)
    declared = {}
    for call in calls(tree, "DeclareLaunchArgument"):
        description = literal(keyword(call, "description"))
        assert description and len(description) > 10, f"argument {literal(call.args[0])} has no description"
        declared[literal(call.args[0])] = call
    used = {literal(c.args[0]) for c in calls(tree, "LaunchConfiguration")}
    assert used <= set(declared), f"undeclared launch arguments: {used - set(declared)}"
    assert set(declared) <= used, f"declared but unused: {set(declared) - used}"


def test_live_launch_arguments():
    tree = parsed(ROOT / "launch" / "worldfm.launch.py")
    declared = {literal(c.args[0]) for c in calls(tree, "DeclareLaunchArgument")}
    assert {"params_file", "namespace", "use_sim_time", "world_path", "backend", "device"} <= declared


def test_sim_launch_requires_a_world_and_enables_the_simulator():
    tree = parsed(ROOT / "launch" / "sim.launch.py")
    (world,) = [c for c in calls(tree, "DeclareLaunchArgument") if literal(c.args[0]) == "world_path"]
    assert keyword(world, "default_value") is None  # required: launch refuses to start without it
    (node,) = calls(tree, "Node")
    params = [d for d in ast.walk(keyword(node, "parameters")) if isinstance(d, ast.Dict)]
    values = {literal(k): v for d in params for k, v in zip(d.keys, d.values)}
    assert literal(values["sim.enabled"]) is True


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None,
                    reason="launch_ros is not installable from PyPI; the static checks above stand in")
@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_description_loads(path):
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    description = PythonLaunchDescriptionSource(str(path)).get_launch_description(None)
    names = {a.name for a in description.get_launch_arguments()}
    assert "params_file" in names


def test_sim_launch_defaults_match_the_nav2_example():
    """config/nav2_example.yaml (nav2 on ~/map and sim/scan) assumes the simulator's footprint,
    map cell and scan range: the sim launch file's defaults and the node's agree with it."""
    import yaml

    nav2 = yaml.safe_load((ROOT / "config" / "nav2_example.yaml").read_text())
    tree = parsed(ROOT / "launch" / "sim.launch.py")
    defaults = {literal(c.args[0]): keyword(c, "default_value").value for c in calls(tree, "DeclareLaunchArgument")
                if isinstance(keyword(c, "default_value"), ast.Constant)}
    node = read_parameter_file(str(ROOT / "config" / "worldfm.yaml"))
    global_costmap = nav2["global_costmap"]["global_costmap"]["ros__parameters"]
    local_costmap = nav2["local_costmap"]["local_costmap"]["ros__parameters"]
    for costmap in (global_costmap, local_costmap):
        assert costmap["robot_radius"] == float(defaults["footprint_radius"]) == node["sim.footprint_radius"]
        assert costmap["resolution"] == float(defaults["map_resolution"]) == node["map.resolution"]
        assert costmap["global_frame"] == node["world_frame"] and costmap["robot_base_frame"] == node["sim.base_frame"]
    assert global_costmap["static_layer"]["map_topic"] == "/worldfm_node/map"
    assert global_costmap["static_layer"]["map_subscribe_transient_local"] is True
    scan = local_costmap["obstacle_layer"]["scan"]
    assert scan["topic"] == "/sim/scan" and scan["sensor_frame"] == node["sim.scan_frame"]
    assert scan["raytrace_max_range"] == float(defaults["scan_range_max"]) == node["sim.scan.range_max"]
    assert nav2["bt_navigator"]["ros__parameters"]["odom_topic"] == "/sim/odom"
    assert {"publish_clock", "real_time_factor", "motion", "collision"} <= set(defaults)
