"""The node's parameters: one table of specs, one validated config object.

Every parameter is listed once in :data:`PARAMETERS` with its default, description and range.
:class:`NodeConfig` is built from a ``config/worldfm.yaml``-style file (:meth:`NodeConfig.from_yaml`,
no ROS needed) or from a node's ROS parameters (:func:`declare_parameters` then
:meth:`NodeConfig.from_node`). Any invalid value raises :class:`ConfigError` naming the
parameter, so the node stops at start-up instead of running half-configured.

rclpy is imported only inside the ROS-facing functions: the YAML path works without ROS.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from worldfm_ros.core.errors import InvalidPoseError, WorldFMError
from worldfm_ros.core.memory import INSERTION_POLICIES, MemoryConfig
from worldfm_ros.core.pose import pose_from_vector
from worldfm_ros.core.world_service import MAX_RENDER_SIDE, WorldServiceConfig

#: Name of the node. YAML files put its parameters under ``/**: ros__parameters:`` (any name or
#: namespace) or ``/<ns>/worldfm_node: ros__parameters:``; a bare ``worldfm_node:`` key does not
#: match a node in a namespace.
NODE_NAME = "worldfm_node"

BACKENDS = ("geometric", "nearest", "learned")
DEVICES = ("cpu", "cuda")
#: Motion models of the simulated base (``sim.motion``).
SIM_MOTIONS = ("planar", "free")
RUNTIMES = ("torch", "onnxruntime", "tensorrt")  # worldfm_ros.learned.runtime.RUNTIMES (torch-free import here)
PRECISIONS = ("fp32", "fp16")


#: Stands for a value rclpy did not hand back (its exceptions carry only a message).
UNKNOWN_VALUE = object()


class ConfigError(WorldFMError, ValueError):
    """An invalid parameter value; ``.name`` is the parameter, ``.value`` the bad value."""

    def __init__(self, name: str, value: Any, reason: str):
        shown = "" if value is UNKNOWN_VALUE else f" = {value!r}"
        super().__init__(f"parameter '{name}'{shown}: {reason}", None if value is UNKNOWN_VALUE else value)
        self.name = name


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: name, default, type (``bool``, ``int``, ``float``, ``str`` or
    ``list`` = list of floats), description and the allowed values."""

    name: str
    default: Any
    kind: type
    description: str
    low: Optional[float] = None  # inclusive
    high: Optional[float] = None  # inclusive
    choices: tuple = ()
    lengths: tuple = ()  # allowed list lengths

    @property
    def field(self) -> str:
        return self.name.replace(".", "_")

    def constraint_text(self) -> str:
        if self.choices:
            return "one of: " + ", ".join(map(str, self.choices))
        if self.lengths:
            return "list of " + " or ".join(str(n) for n in self.lengths) + " floats"
        if self.low is not None:
            return f"in [{self.low}, {self.high}]"
        return ""

    def validate(self, value: Any) -> Any:
        """``value`` converted to this parameter's type, or :class:`ConfigError`."""
        kind = self.kind
        if kind is bool:
            if not isinstance(value, (bool, np.bool_)):
                raise ConfigError(self.name, value, "expected true or false")
            return bool(value)
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(self.name, value, "expected an integer")
            value = int(value)
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ConfigError(self.name, value, "expected a number")
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(self.name, value, "must be finite")
        elif kind is str:
            if not isinstance(value, str):
                raise ConfigError(self.name, value, "expected a string")
        elif kind is list:
            if value is None:
                value = []
            if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
                raise ConfigError(self.name, value, "expected a list of numbers")
            items = list(value)
            if any(isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) for v in items):
                raise ConfigError(self.name, value, "expected a list of numbers")
            value = tuple(float(v) for v in items)
            if not all(math.isfinite(v) for v in value):
                raise ConfigError(self.name, list(value), "entries must be finite")
            if self.lengths and len(value) not in self.lengths:
                raise ConfigError(self.name, list(value), f"expected {self.constraint_text()}")
        if self.choices and value not in self.choices:
            raise ConfigError(self.name, value, f"expected {self.constraint_text()}")
        if self.low is not None and not (self.low <= value <= self.high):
            raise ConfigError(self.name, value, f"out of range [{self.low}, {self.high}]")
        return value


_SIDE = (1, MAX_RENDER_SIDE)

#: Every parameter of ``worldfm_node`` (contract names first, then the package's own).
PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("world_frame", "odom", str, "World (odometry) frame: frame_id of poses in and out"),
    ParamSpec("camera_to_base", (0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5), list,
              "Camera optical frame pose in the odometry child frame [x, y, z, qx, qy, qz, qw] (m, ROS quaternion order)",
              lengths=(7,)),
    ParamSpec("world_path", "", str, "World file loaded at start and committed to on each keyframe; empty = memory only"),
    ParamSpec("backend", "geometric", str, "Renderer backend", choices=BACKENDS),
    ParamSpec("device", "cpu", str, "Compute device of the renderer", choices=DEVICES),
    ParamSpec("render.width", 320, int, "Width of the default render_view camera [px]", *_SIDE),
    ParamSpec("render.height", 240, int, "Height of the default render_view camera [px]", *_SIDE),
    ParamSpec("sync.max_gap", 0.02, float, "Largest stamp difference of a paired colour and depth image [s]", 0.0, 1.0),
    ParamSpec("sync.max_extrapolation", 0.1, float, "Largest extrapolation of odometry past its newest sample [s]", 0.0, 1.0),
    ParamSpec("sim.enabled", False, bool, "Run the simulated camera inside the stored world"),
    ParamSpec("sim.rate_hz", 10.0, float, "Publication rate of the simulated camera [Hz]", 0.1, 100.0),
    ParamSpec("sim.width", 320, int, "Width of the simulated camera image [px]", *_SIDE),
    ParamSpec("sim.height", 240, int, "Height of the simulated camera image [px]", *_SIDE),
    ParamSpec("sim.start_pose", (), list,
              "Start pose of the simulated base in the world frame [x, y, z, qx, qy, qz, qw]; "
              "empty = latest real odometry, else the base pose of the first keyframe",
              lengths=(0, 7)),
    ParamSpec("sim.cmd_timeout", 0.5, float, "Age after which a sim/cmd_vel command counts as zero [s]", 0.0, 60.0),
    ParamSpec("sim.base_frame", "base_link", str, "child_frame_id of sim/odom"),
    ParamSpec("sim.camera_frame", "camera_optical_frame", str,
              "frame_id of the simulated camera images and points (/tf_static: base_frame -> it = camera_to_base)"),
    # Navigation-ready simulator (CONTRACT.md v2).
    ParamSpec("sim.motion", "planar", str,
              "planar: x, y, yaw integrated, z/roll/pitch held at the start pose; free: 3D body twist (v1)",
              choices=SIM_MOTIONS),
    ParamSpec("sim.collision", True, bool, "Refuse planar steps that bring an occupied map cell within the footprint"),
    ParamSpec("sim.footprint_radius", 0.2, float, "Radius of the simulated base's circular footprint [m]", 0.0, 10.0),
    ParamSpec("sim.odom_frame", "", str, "frame_id of sim/odom and parent of /tf odom -> base; empty = world_frame"),
    ParamSpec("sim.publish_tf", True, bool, "Publish /tf (odom -> base) and /tf_static (base -> camera, base -> scan)"),
    ParamSpec("sim.publish_clock", False, bool,
              "Publish /clock: simulated time advances 1/sim.rate_hz per step, paced by sim.real_time_factor"),
    ParamSpec("sim.real_time_factor", 1.0, float,
              "Simulated over wall time with sim.publish_clock; 0 = as fast as rendering allows (needs the clock)",
              0.0, 1000.0),
    ParamSpec("sim.scan.enabled", True, bool, "Publish sim/scan, a 360 degree scan ray-cast in the occupancy map"),
    ParamSpec("sim.scan.range_max", 8.0, float, "Range of sim/scan [m]; beams that hit nothing read inf", 0.1, 1000.0),
    ParamSpec("sim.scan.samples", 360, int, "Beams of sim/scan over 360 degrees", 3, 100_000),
    ParamSpec("sim.scan_frame", "base_scan", str, "frame_id of sim/scan (at the base origin, base orientation)"),
    ParamSpec("sim.points.enabled", True, bool, "Publish sim/camera/points from the rendered depth"),
    # Occupancy map (CONTRACT.md v2).
    ParamSpec("map.resolution", 0.05, float, "Cell side of the occupancy map ~/map [m]", 0.005, 10.0),
    ParamSpec("map.min_height", 0.05, float, "Lowest obstacle height above map.floor_z [m]", -100.0, 100.0),
    ParamSpec("map.max_height", 1.5, float, "Highest obstacle height above map.floor_z [m]", -100.0, 100.0),
    ParamSpec("map.floor_z", 0.0, float, "World z of the ground [m]", -1.0e6, 1.0e6),
    ParamSpec("map.free_max_height", 0.5, float,
              "Camera rays clear (mark free) only cells they cross between map.min_height and this height "
              "above map.floor_z; set it to map.max_height for the contract's literal rule [m]", -100.0, 100.0),
    ParamSpec("map.rate_hz", 1.0, float, "Most ~/map publications per second (only when keyframes changed) [Hz]",
              0.001, 100.0),
    ParamSpec("keyframe.policy", "parallax", str,
              "Insertion policy: parallax (image motion to the nearest keyframe) or pose (distance thresholds)",
              choices=INSERTION_POLICIES),
    ParamSpec("keyframe.max_parallax", 0.01, float,
              "parallax policy: a frame seen by a keyframe within this fraction of the image width "
              "(75th percentile of its depth samples) is not stored", 1e-4, 1.0),
    ParamSpec("keyframe.min_translation", 0.05, float,
              "pose policy: a frame closer than this to a keyframe of similar orientation is not stored [m]",
              1e-4, 100.0),
    ParamSpec("keyframe.min_rotation_deg", 5.0, float,
              "pose policy: ... and whose orientation differs by less than this [deg]", 0.01, 180.0),
    ParamSpec("keyframe.width", 320, int, "Keyframes are stored downscaled to fit this width [px]", 16, MAX_RENDER_SIDE),
    ParamSpec("keyframe.height", 240, int, "Keyframes are stored downscaled to fit this height [px]", 16, MAX_RENDER_SIDE),
    ParamSpec("memory.max_keyframes", 5000, int, "Keyframes kept; the most redundant is evicted beyond it", 1, 1_000_000),
    ParamSpec("retrieval.k", 4, int, "Reference keyframes used per rendered view (the learned backend "
              "retrieves at least as many as its model has slots: 8)", 1, 32),
    ParamSpec("backend_fallback", True, bool,
              "Fall back to the geometric backend on cpu when the requested backend or device cannot be set up"),
    ParamSpec("model_path", "", str, "Checkpoint of the learned backend; empty = the shipped default"),
    ParamSpec("learned.runtime", "torch", str,
              "Runtime of the learned backend's network: torch, onnxruntime (CPU, CUDA or TensorRT provider by "
              "device and availability) or tensorrt (a TensorRT engine, learned.engine_path); falls back to torch "
              "with a warning under backend_fallback", choices=RUNTIMES),
    ParamSpec("learned.onnx_path", "", str,
              "ONNX export of the checkpoint for runtime onnxruntime (worldfm-export --onnx); empty = export "
              "it into learned.cache_dir on first use"),
    ParamSpec("learned.engine_path", "", str, "TensorRT engine for runtime tensorrt (worldfm-export --tensorrt)"),
    ParamSpec("learned.precision", "fp32", str, "Precision of the TensorRT provider (onnxruntime on cuda)",
              choices=PRECISIONS),
    ParamSpec("learned.cache_dir", "", str,
              "Exported ONNX files and TensorRT provider engines; empty = ~/.cache/worldfm_ros"),
    ParamSpec("autostart", True, bool, "Configure and activate the lifecycle node at start-up"),
    ParamSpec("camera.colour_focal_ratio", 1.0, float,
              "Colour camera focal length / camera_info's, for RGB-D sensors whose depth is not registered to "
              "colour (Kinect v1 raw streams, 7-Scenes: about 0.9; estimate it with worldfm-eval "
              "--colour-focal-ratio auto); 1 = registered", 0.5, 2.0),
    ParamSpec("depth.min_m", 0.1, float, "Depth below this is unknown (0) [m]", 0.0, 1000.0),
    ParamSpec("depth.max_m", 10.0, float, "Depth above this is unknown (0) [m]; 16UC1 65535 is always unknown",
              0.001, 1000.0),
    ParamSpec("odom.max_position_m", 1e6, float,
              "Odometry whose position is farther than this from the origin is refused [m]", 1.0, 1e12),
    ParamSpec("ingest.queue_size", 30, int,
              "Colour/depth pairs that may wait for the ingest thread; beyond it the oldest is skipped and "
              "counted in ~/status.pairs_skipped_busy (30 = 2 s of a 15 Hz camera, ~45 MB of 640x480 RGB-D)",
              1, 1000),
)

SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}


@dataclass(frozen=True)
class NodeConfig:
    """Validated parameters of ``worldfm_node`` (field = parameter name with ``.`` -> ``_``)."""

    world_frame: str = "odom"
    camera_to_base: tuple = (0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5)
    world_path: str = ""
    backend: str = "geometric"
    device: str = "cpu"
    render_width: int = 320
    render_height: int = 240
    sync_max_gap: float = 0.02
    sync_max_extrapolation: float = 0.1
    sim_enabled: bool = False
    sim_rate_hz: float = 10.0
    sim_width: int = 320
    sim_height: int = 240
    sim_start_pose: tuple = ()
    sim_cmd_timeout: float = 0.5
    sim_base_frame: str = "base_link"
    sim_camera_frame: str = "camera_optical_frame"
    sim_motion: str = "planar"
    sim_collision: bool = True
    sim_footprint_radius: float = 0.2
    sim_odom_frame: str = ""
    sim_publish_tf: bool = True
    sim_publish_clock: bool = False
    sim_real_time_factor: float = 1.0
    sim_scan_enabled: bool = True
    sim_scan_range_max: float = 8.0
    sim_scan_samples: int = 360
    sim_scan_frame: str = "base_scan"
    sim_points_enabled: bool = True
    map_resolution: float = 0.05
    map_min_height: float = 0.05
    map_max_height: float = 1.5
    map_floor_z: float = 0.0
    map_free_max_height: float = 0.5
    map_rate_hz: float = 1.0
    keyframe_policy: str = "parallax"
    keyframe_max_parallax: float = 0.01
    keyframe_min_translation: float = 0.05
    keyframe_min_rotation_deg: float = 5.0
    keyframe_width: int = 320
    keyframe_height: int = 240
    memory_max_keyframes: int = 5000
    retrieval_k: int = 4
    backend_fallback: bool = True
    model_path: str = ""
    learned_runtime: str = "torch"
    learned_onnx_path: str = ""
    learned_engine_path: str = ""
    learned_precision: str = "fp32"
    learned_cache_dir: str = ""
    autostart: bool = True
    camera_colour_focal_ratio: float = 1.0
    depth_min_m: float = 0.1
    depth_max_m: float = 10.0
    odom_max_position_m: float = 1e6
    ingest_queue_size: int = 30

    def __post_init__(self) -> None:
        for spec in PARAMETERS:
            object.__setattr__(self, spec.field, spec.validate(getattr(self, spec.field)))
        # A path as typed in a shell: "~/worlds/lab.world" (-p does not expand "~").
        object.__setattr__(self, "world_path", os.path.expanduser(self.world_path) if self.world_path else "")
        if self.depth_max_m <= self.depth_min_m:
            raise ConfigError("depth.max_m", self.depth_max_m, f"must exceed depth.min_m = {self.depth_min_m}")
        for spec in (SPECS["camera_to_base"], SPECS["sim.start_pose"]):
            value = getattr(self, spec.field)
            if value:
                try:
                    pose_from_vector(value)
                except InvalidPoseError as error:
                    raise ConfigError(spec.name, list(value), str(error)) from None
        if not self.world_frame:
            raise ConfigError("world_frame", self.world_frame, "must not be empty")
        if self.map_max_height <= self.map_min_height:
            raise ConfigError("map.max_height", self.map_max_height,
                              f"must exceed map.min_height = {self.map_min_height}")
        if self.map_free_max_height <= self.map_min_height:
            raise ConfigError("map.free_max_height", self.map_free_max_height,
                              f"must exceed map.min_height = {self.map_min_height}")
        if self.sim_real_time_factor == 0 and not self.sim_publish_clock:
            raise ConfigError("sim.real_time_factor", 0.0,
                              "0 (as fast as rendering allows) needs sim.publish_clock: true")
        for name in ("sim.base_frame", "sim.camera_frame", "sim.scan_frame"):
            if not getattr(self, SPECS[name].field):
                raise ConfigError(name, "", "must not be empty")

    # ------------------------------------------------------------------ derived values
    @property
    def T_base_cam(self) -> np.ndarray:
        """``[4, 4]`` camera optical pose in the base frame (from ``camera_to_base``)."""
        return pose_from_vector(self.camera_to_base)

    @property
    def sim_odom_frame_id(self) -> str:
        """Parent frame of the simulated base: ``sim.odom_frame``, else ``world_frame``."""
        return self.sim_odom_frame or self.world_frame

    @property
    def T_world_sim_start(self) -> Optional[np.ndarray]:
        """``[4, 4]`` start pose of the simulated base, or None (``sim.start_pose`` empty)."""
        return pose_from_vector(self.sim_start_pose) if self.sim_start_pose else None

    def world_service_config(self) -> WorldServiceConfig:
        """The world service's share of the parameters."""
        return WorldServiceConfig(
            backend=self.backend,
            device=self.device,
            backend_fallback=self.backend_fallback,
            model_path=self.model_path,
            learned_runtime=self.learned_runtime,
            learned_onnx_path=self.learned_onnx_path,
            learned_engine_path=self.learned_engine_path,
            learned_precision=self.learned_precision,
            learned_cache_dir=self.learned_cache_dir,
            keyframe_width=self.keyframe_width,
            keyframe_height=self.keyframe_height,
            memory=MemoryConfig(
                insertion=self.keyframe_policy,
                max_parallax=self.keyframe_max_parallax,
                min_translation=self.keyframe_min_translation,
                min_rotation_deg=self.keyframe_min_rotation_deg,
                max_keyframes=self.memory_max_keyframes,
                retrieval_k=self.retrieval_k,
            ),
            world_path=self.world_path,
            colour_focal_ratio=self.camera_colour_focal_ratio,
            depth_min_m=self.depth_min_m,
            depth_max_m=self.depth_max_m,
            map_resolution=self.map_resolution,
            map_min_height=self.map_min_height,
            map_max_height=self.map_max_height,
            map_floor_z=self.map_floor_z,
            map_free_max_height=self.map_free_max_height,
        )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> "NodeConfig":
        """From ``{parameter name: value}``; missing names take their defaults, unknown
        names raise :class:`ConfigError` (a typo must not be ignored silently)."""
        unknown = sorted(set(values) - set(SPECS))
        if unknown:
            raise ConfigError(unknown[0], values[unknown[0]], "unknown parameter of " + NODE_NAME)
        return cls(**{SPECS[name].field: value for name, value in values.items()})

    @classmethod
    def from_yaml(cls, path: str, node_name: str = NODE_NAME) -> "NodeConfig":
        """From a ROS 2 parameter file (``<node_name>: ros__parameters: ...``, nested keys
        joined with ``.``; ``/**`` wildcard sections apply too)."""
        return cls.from_parameters(read_parameter_file(path, node_name))

    @classmethod
    def from_node(cls, node) -> "NodeConfig":
        """From the declared ROS parameters of ``node`` (see :func:`declare_parameters`)."""
        return config_from_node(node)

    def as_parameters(self) -> dict[str, Any]:
        """``{parameter name: value}`` (lists as lists)."""
        out = {}
        for spec in PARAMETERS:
            value = getattr(self, spec.field)
            out[spec.name] = list(value) if isinstance(value, tuple) else value
        return out


def read_parameter_file(path: str, node_name: str = NODE_NAME) -> dict[str, Any]:
    """Flattened ``{name: value}`` of the sections of a ROS 2 parameter file that apply to
    ``node_name`` (``/**``, ``node_name``, ``/node_name`` or ``/<ns>/node_name``)."""
    import yaml

    with open(path, encoding="utf-8") as f:
        document = yaml.safe_load(f) or {}
    if not isinstance(document, dict):
        raise ConfigError("<file>", path, "a parameter file must be a mapping of node names")
    values: dict[str, Any] = {}
    for key, section in document.items():
        key = str(key)
        if key in ("/**", node_name, "/" + node_name) or key.endswith("/" + node_name):
            params = (section or {}).get("ros__parameters", {}) if isinstance(section, dict) else {}
            values.update(_flatten(params))
    return values


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


# ---------------------------------------------------------------------- ROS side
def _descriptor(spec: ParamSpec):
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.parameter import Parameter

    types = {
        bool: Parameter.Type.BOOL, int: Parameter.Type.INTEGER, float: Parameter.Type.DOUBLE,
        str: Parameter.Type.STRING, list: Parameter.Type.DOUBLE_ARRAY,
    }
    descriptor = ParameterDescriptor(
        name=spec.name,
        type=types[spec.kind].value,
        description=spec.description,
        additional_constraints=spec.constraint_text(),
    )
    if spec.kind is int and spec.low is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=0)]
    if spec.kind is float and spec.low is not None:
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=0.0)
        ]
    return descriptor, types[spec.kind]


#: Parameters every rclpy node may take besides ours (never reported as unknown).
ROS_BUILTIN_PARAMETERS = ("use_sim_time", "start_type_description_service")


def unknown_parameter_warnings(names) -> list[str]:
    """One warning per name in ``names`` (overrides given to the node) that is not one of its
    parameters, with the closest known names: a misspelt ``sim.enabeld`` is otherwise
    ignored silently by ROS."""
    import difflib

    warnings = []
    for name in sorted(set(names)):
        if name in SPECS or name in ROS_BUILTIN_PARAMETERS or name.startswith("qos_overrides."):
            continue
        close = difflib.get_close_matches(name, list(SPECS), n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        warnings.append(f"parameter '{name}' is not a parameter of {NODE_NAME} and is ignored{hint}")
    return warnings


def usage() -> str:
    """``worldfm_node --help``: how to run it and every parameter with its default."""
    lines = [
        f"usage: {NODE_NAME} [--help] [--ros-args [-p NAME:=VALUE ...] [--params-file FILE] [-r __ns:=/NS]]",
        "",
        "The world-model node (lifecycle; autostart configures and activates it). Parameters are",
        "read at configure; the installed config/worldfm.yaml holds every default under '/**:'.",
        "",
        "parameters:",
    ]
    for spec in PARAMETERS:
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        constraint = spec.constraint_text()
        lines.append(f"  {spec.name} (default {default!r}{'; ' + constraint if constraint else ''})")
        lines.append(f"      {spec.description}")
    return "\n".join(lines)


def declare_parameters(node, *, read_only=lambda: False) -> None:
    """Declare every parameter on ``node`` with its descriptor (description, type, range).

    Overrides (``-p``, ``--params-file``) of the wrong type or out of range raise
    :class:`ConfigError` naming the parameter. Later ``set_parameters`` calls are checked
    by the same rules, and refused with a reason while ``read_only()`` is true (the node
    reads its parameters at configure only, so a change then would report success and do
    nothing).
    """
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    for spec in PARAMETERS:
        descriptor, ptype = _descriptor(spec)
        # An empty list has no ROS type of its own: declare it typed but unset.
        default = ptype if spec.kind is list and not spec.default else spec.default
        if isinstance(default, tuple):
            default = list(default)
        try:
            node.declare_parameter(spec.name, default, descriptor)
        except InvalidParameterTypeException as error:
            raise ConfigError(spec.name, UNKNOWN_VALUE,
                              f"wrong type, expected {ptype.name.lower()} ({error})") from None
        except InvalidParameterValueException as error:
            raise ConfigError(spec.name, UNKNOWN_VALUE, f"must be {spec.constraint_text()} ({error})") from None

    def check(parameters):
        from rcl_interfaces.msg import SetParametersResult

        for parameter in parameters:
            spec = SPECS.get(parameter.name)
            if spec is None:
                continue
            try:
                spec.validate(parameter.value)
            except ConfigError as error:
                return SetParametersResult(successful=False, reason=str(error))
            if read_only():
                return SetParametersResult(successful=False, reason=(
                    f"parameter '{spec.name}' is read when the node is configured; to change it, deactivate "
                    f"and clean up the node (ros2 lifecycle set {NODE_NAME} deactivate / cleanup), set it, "
                    f"then configure and activate again"))
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(check)


def config_from_node(node) -> NodeConfig:
    """Read the declared parameters of ``node`` into a validated :class:`NodeConfig`."""
    from rclpy.exceptions import ParameterUninitializedException

    values = {}
    for spec in PARAMETERS:
        try:
            value = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            value = []
        values[spec.name] = list(value) if spec.kind is list and value is not None else value
    return NodeConfig.from_parameters(values)
