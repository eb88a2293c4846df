"""The package as installed: generated ROS types match the contract, metadata is consistent.

Run after scripts/setup.sh (or `pip install -e .`), which generates worldfm_ros.msg / .srv.
"""

from __future__ import annotations

import importlib
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from rclpy.serialization import deserialize_message, serialize_message

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

POSE = "geometry_msgs/Pose"
# Field -> rosidl type, as CONTRACT.md fixes them ("at least" for the two messages).
CONTRACT = {
    ("srv", "RenderView", "Request"): {
        "pose": POSE, "camera_info": "sensor_msgs/CameraInfo", "want_depth": "boolean",
    },
    ("srv", "RenderView", "Response"): {
        "success": "boolean", "message": "string", "image": "sensor_msgs/Image",
        "depth": "sensor_msgs/Image", "coverage": "float", "reference_ids": "sequence<uint32>",
        "render_ms": "float",
    },
    ("srv", "SaveWorld", "Request"): {"path": "string"},
    ("srv", "SaveWorld", "Response"): {"success": "boolean", "message": "string", "keyframes": "uint32"},
    ("srv", "SetPose", "Request"): {"pose": POSE},
    ("srv", "SetPose", "Response"): {"success": "boolean", "message": "string"},
    ("msg", "WorldStatus", None): {"keyframes": "uint32", "memory_bytes": "uint64", "backend": "string"},
    ("msg", "KeyframeInfo", None): {"id": "uint32", "stamp": "builtin_interfaces/Time", "pose": POSE},
}
#: Services whose fields are fixed exactly (the messages may carry more).
EXACT = {"RenderView", "SaveWorld", "SetPose"}


def generated_type(kind: str, name: str, part):
    module = importlib.import_module(f"worldfm_ros.{kind}")
    cls = getattr(module, name)
    return getattr(cls, part) if part else cls


@pytest.mark.parametrize("key", sorted(CONTRACT, key=str), ids=lambda k: ".".join(p for p in k if p))
def test_generated_types_have_the_contract_fields(key):
    kind, name, part = key
    fields = generated_type(kind, name, part).get_fields_and_field_types()
    expected = CONTRACT[key]
    assert {field: fields.get(field) for field in expected} == expected
    if name in EXACT:
        assert fields == expected


def test_status_and_keyframe_messages_carry_the_documented_extras():
    from worldfm_ros.msg import KeyframeInfo, WorldStatus

    assert WorldStatus.get_fields_and_field_types() == {
        "stamp": "builtin_interfaces/Time", "keyframes": "uint32", "memory_bytes": "uint64",
        "backend": "string", "world_path": "string", "ingest_rate_hz": "float",
        "sim_rate_hz": "float", "last_render_ms": "float", "frames_received": "uint64",
        "frames_dropped": "uint64", "pairs_offered": "uint64", "pairs_skipped_busy": "uint64",
        "sim_collisions": "uint32", "world_file_errors": "uint64",
    }
    assert KeyframeInfo.get_fields_and_field_types()["coverage_gain"] == "float"


def test_generated_types_serialise_through_their_type_support():
    """CDR round trips load the generated C libraries (typesupport + fastrtps)."""
    from worldfm_ros.msg import KeyframeInfo, WorldStatus
    from worldfm_ros.srv import RenderView

    status = WorldStatus(keyframes=7, memory_bytes=2**40 + 3, backend="geometric", frames_dropped=2)
    assert deserialize_message(serialize_message(status), WorldStatus) == status

    info = KeyframeInfo(id=4, coverage_gain=0.25)
    info.pose.position.x, info.pose.orientation.w = 1.5, 1.0
    assert deserialize_message(serialize_message(info), KeyframeInfo) == info

    response = RenderView.Response(success=True, coverage=0.5, reference_ids=[3, 1, 2], render_ms=1.25)
    response.image.width, response.image.encoding = 2, "rgb8"
    back = deserialize_message(serialize_message(response), RenderView.Response)
    assert list(back.reference_ids) == [3, 1, 2] and back.image.encoding == "rgb8" and back.coverage == 0.5


def _fields_in_interface_file(path: Path) -> list[list[str]]:
    """Field names per section of a .msg / .srv file (constants and comments skipped)."""
    sections = [[]]
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line == "---":
            sections.append([])
        elif line and "=" not in line:
            sections[-1].append(line.split()[1])
    return sections


@pytest.mark.parametrize("path", sorted((ROOT / "msg").glob("*.msg")) + sorted((ROOT / "srv").glob("*.srv")),
                         ids=lambda p: p.name)
def test_generated_code_is_current_with_the_interface_files(path):
    """Fails when a .msg/.srv was edited without regenerating: re-run scripts/setup.sh."""
    kind = path.parent.name
    sections = _fields_in_interface_file(path)
    parts = (None,) if kind == "msg" else ("Request", "Response")
    for part, names in zip(parts, sections):
        generated = list(generated_type(kind, path.stem, part).get_fields_and_field_types())
        assert generated == names, f"{path.name} {part or ''}: stale generated code"


def test_cmake_generates_every_interface_file():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    block = re.search(r"rosidl_generate_interfaces\((.*?)\)", cmake, re.S).group(1)
    listed = set(re.findall(r'"((?:msg|srv)/[^"]+)"', block))
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "msg").glob("*.msg")}
    on_disk |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "srv").glob("*.srv")}
    assert listed == on_disk


def test_package_xml_is_valid_format_3_with_the_runtime_dependencies():
    from catkin_pkg.package import parse_package

    package = parse_package(str(ROOT / "package.xml"))  # validates against REP 149
    package.evaluate_conditions({})
    assert package.package_format == 3
    assert package.name == "worldfm_ros"
    assert package.get_build_type() == "ament_cmake"
    assert "rosidl_interface_packages" in [group.name for group in package.member_of_groups]
    assert "rosidl_default_generators" in [dep.name for dep in package.buildtool_depends]
    runtime = {dep.name for dep in package.exec_depends}
    assert {
        "rclpy", "rosidl_default_runtime", "builtin_interfaces", "geometry_msgs", "sensor_msgs",
        "nav_msgs", "std_srvs", "std_msgs", "python3-numpy", "python3-opencv", "python3-yaml",
    } <= runtime
    assert package.version == metadata.version("worldfm_ros")


def _declared_scripts() -> dict[str, str]:
    return dict(PYPROJECT["project"]["scripts"])


def test_console_scripts_are_declared_alike_for_pip_colcon_and_the_installed_metadata():
    declared = _declared_scripts()
    cmake = (ROOT / "CMakeLists.txt").read_text()
    block = re.search(r"set\(WORLDFM_CONSOLE_SCRIPTS(.*?)\)", cmake, re.S).group(1)
    cmake_scripts = dict(re.findall(r'"([^="]+)=([^"]+)"', block))
    assert cmake_scripts == declared
    assert {"worldfm_node", "worldfm-eval"} <= set(declared)  # fixed by CONTRACT.md

    # (a build leaves worldfm_ros.egg-info in the checkout; only pip's record counts)
    by_pip = [d for d in metadata.distributions(name="worldfm_ros")
              if (d.read_text("INSTALLER") or "").strip() == "pip"]
    if by_pip:
        installed = {ep.name: ep.value for ep in by_pip[0].entry_points if ep.group == "console_scripts"}
        assert installed == declared, "installed metadata is stale: re-run scripts/setup.sh"
    else:  # a colcon / CMake install: executables in <prefix>/lib/worldfm_ros for `ros2 run`
        from ament_index_python.packages import get_package_prefix

        executables = Path(get_package_prefix("worldfm_ros")) / "lib" / "worldfm_ros"
        assert {p.name for p in executables.iterdir()} >= set(declared)


@pytest.mark.parametrize("name", sorted(_declared_scripts()))
def test_every_console_script_resolves_to_a_callable(name):
    module_name, _, function = _declared_scripts()[name].partition(":")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, function)), f"{name}: {module_name}.{function} is not callable"


def test_torch_is_pinned_in_the_one_safe_spelling():
    """`torch` or `torch>=2` can pull several GB of CUDA wheels; only torch==2.13.0 is safe here."""
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    torch_lines = [line for line in lines if re.match(r"torch\b", line)]
    assert torch_lines == ["torch==2.13.0"]
