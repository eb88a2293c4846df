"""``worldfm-build-world``: turn a recorded rosbag2 into a world file, no robot and no ROS graph.

Example::

    worldfm-build-world --bag runs/kitchen_2024_05_01 --output kitchen.world \
        --params-file config/worldfm.yaml

Reads colour, depth, camera_info and odometry from the bag (SQLite ``.db3`` or MCAP, read with
``rosbags``; rosbag2_py is not needed), assembles posed frames exactly as ``worldfm_node`` does
(stamp pairing, odometry interpolation, undistortion, ``camera_to_base``) and feeds them through
the node's :class:`~worldfm_ros.core.world_service.WorldService`, so the same insertion policy
and downscaling decide which keyframes are stored; each accepted keyframe is committed to the
world file as it is accepted. The result can be loaded by the node (``world_path``) or used by
``worldfm-eval --format world``.

Settings come from the node's parameter file (``--params-file``) where given, and options on
the command line override it. Prints a summary (messages per topic, frames paired, drops by
reason, keyframes written, wall time); ``--json`` writes the same figures. Exit status: 0 done,
1 an error (bag, topics, output), 2 bad options, 130 interrupted (the world then holds the
keyframes converted so far).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from tqdm import tqdm

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import WorldFMError
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.renderers.base import RenderResult
from worldfm_ros.core.world_file import WorldFile
from worldfm_ros.core.world_service import WorldService
from worldfm_ros.ros.bag_reader import BagError, BagFrameReader, BagTopics
from worldfm_ros.ros.config import ConfigError, NodeConfig, read_parameter_file

#: Suffix of the default output file, written next to the bag.
WORLD_SUFFIX = ".world"

#: Command-line option (argparse dest) -> node parameter it overrides.
_OVERRIDES = {
    "camera_to_base": "camera_to_base",
    "max_gap": "sync.max_gap",
    "max_extrapolation": "sync.max_extrapolation",
    "keyframe_width": "keyframe.width",
    "keyframe_height": "keyframe.height",
    "insertion": "keyframe.policy",
    "max_parallax": "keyframe.max_parallax",
    "min_translation": "keyframe.min_translation",
    "min_rotation_deg": "keyframe.min_rotation_deg",
    "max_keyframes": "memory.max_keyframes",
}


class _IngestOnlyRenderer:
    """Stands in for a renderer: building a world never renders, so no backend (and no model
    or torch import) is set up for it."""

    name = "none"

    def render(self, references: Sequence[Keyframe], T_world_cam: np.ndarray, intrinsics: Intrinsics) -> RenderResult:
        raise RuntimeError("worldfm-build-world does not render")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="worldfm-build-world", description=__doc__.split("\n\n")[0])
    p.add_argument("--bag", required=True, type=Path, help="rosbag2 directory, or one .mcap / .db3 file")
    p.add_argument("--output", type=Path,
                   help=f"world file to write (default: the bag's name + {WORLD_SUFFIX}, next to the bag)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    topics = p.add_argument_group("topics (relative names resolve under --namespace, like the node's)")
    topics.add_argument("--namespace", default="", help="namespace of the recorded robot (default: root)")
    topics.add_argument("--image-topic", default="camera/image_raw", help="colour images (default: %(default)s)")
    topics.add_argument("--depth-topic", default="camera/depth/image_raw", help="depth images (default: %(default)s)")
    topics.add_argument("--info-topic", default="camera/camera_info", help="CameraInfo (default: %(default)s)")
    topics.add_argument("--odom-topic", default="odom", help="nav_msgs/Odometry (default: %(default)s)")
    node = p.add_argument_group("node parameters (default: --params-file, else config/worldfm.yaml's defaults)")
    node.add_argument("--params-file", type=Path, help="worldfm_node parameter YAML (camera_to_base, sync.*, keyframe.*)")
    node.add_argument("--camera-to-base", type=float, nargs=7, metavar=("X", "Y", "Z", "QX", "QY", "QZ", "QW"),
                      help="camera optical frame in the odometry child frame [m, ROS quaternion order]")
    node.add_argument("--max-gap", type=float, help="largest colour/depth stamp difference of a pair [s]")
    node.add_argument("--max-extrapolation", type=float, help="largest odometry extrapolation [s]")
    node.add_argument("--keyframe-width", type=int, help="keyframes are stored downscaled to fit this width [px]")
    node.add_argument("--keyframe-height", type=int, help="... and this height [px]")
    node.add_argument("--insertion", choices=("parallax", "pose"), help="keyframe insertion policy")
    node.add_argument("--max-parallax", type=float,
                      help="parallax policy: largest image motion to a keyframe, fraction of the width")
    node.add_argument("--min-translation", type=float, help="pose policy: keyframe insertion distance threshold [m]")
    node.add_argument("--min-rotation-deg", type=float, help="pose policy: keyframe insertion rotation threshold [deg]")
    node.add_argument("--max-keyframes", type=int, help="keyframe cap (the most redundant is evicted beyond it)")
    p.add_argument("--lookahead", type=float, default=1.0,
                   help="bag time a frame may wait for later odometry or a first CameraInfo [s] (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write the summary as JSON to this path")
    p.add_argument("--map-png", type=Path,
                   help="also write the world's occupancy map as a PNG (occupied black, free white, "
                        "unknown grey, y up) with the recorded camera path")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def default_output(bag: Path) -> Path:
    """``<bag dir>.world`` beside a bag directory; ``<stem>.world`` beside a storage file."""
    bag = bag.resolve()
    return bag.with_name(bag.name + WORLD_SUFFIX) if bag.is_dir() else bag.with_suffix(WORLD_SUFFIX)


def node_config(args: argparse.Namespace) -> NodeConfig:
    """The node's parameters: the params file (if any), overridden by command-line options.

    Raises :class:`ConfigError` naming the parameter.
    """
    values: dict[str, Any] = read_parameter_file(str(args.params_file)) if args.params_file else {}
    for dest, name in _OVERRIDES.items():
        value = getattr(args, dest)
        if value is not None:
            values[name] = list(value) if isinstance(value, (list, tuple)) else value
    return NodeConfig.from_parameters(values)


def _error(text: str) -> int:
    print(f"worldfm-build-world: error: {text}", file=sys.stderr)
    return 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = node_config(args)
        topics = BagTopics.resolved(args.namespace, image=args.image_topic, depth=args.depth_topic,
                                    info=args.info_topic, odom=args.odom_topic)
    except (ConfigError, ValueError, OSError) as error:
        print(f"worldfm-build-world: error: {error}", file=sys.stderr)
        return 2
    output = args.output if args.output is not None else default_output(args.bag)
    if output.exists() and not args.overwrite:
        return _error(f"{output} already exists (pass --overwrite to replace it)")
    if output.is_dir():
        return _error(f"{output} is a directory")

    def warn(text: str) -> None:
        tqdm.write(f"worldfm-build-world: warning: {text}", file=sys.stderr)

    t0 = time.perf_counter()
    reader = BagFrameReader(args.bag, topics, T_base_cam=config.T_base_cam, max_gap=config.sync_max_gap,
                            max_extrapolation=config.sync_max_extrapolation, lookahead=args.lookahead,
                            on_warning=warn)
    try:
        reader.open()
    except BagError as error:
        return _error(str(error))
    accepted = stored = 0
    ingest_errors = 0
    interrupted = False
    service = None
    try:
        # Created complete before the first keyframe (atomically replacing an old file with
        # --overwrite), then opened by the world service, which commits each keyframe.
        WorldFile.create(output, overwrite=args.overwrite, metadata={
            "source_bag": str(args.bag.resolve()),
            "source_topics": {"image": topics.image, "depth": topics.depth, "info": topics.info, "odom": topics.odom},
            "built_by": "worldfm-build-world",
        }).close()
        service_config = replace(config.world_service_config(), world_path=str(output))
        service = WorldService(service_config, renderer=_IngestOnlyRenderer())
        with tqdm(total=reader.message_count, unit="msg", disable=args.quiet, dynamic_ncols=True,
                  desc="reading bag") as bar:
            for frame in reader.frames(progress=bar.update):
                try:
                    if service.ingest_keyframe(frame) is not None:
                        accepted += 1
                except WorldFMError as error:
                    ingest_errors += 1
                    if ingest_errors == 1:
                        warn(f"frame at {frame.stamp:.6f} s not ingested: {error} (further cases are only counted)")
                bar.set_postfix(keyframes=accepted, refresh=False)
    except KeyboardInterrupt:
        interrupted = True
    except WorldFMError as error:  # the world file cannot be created or opened
        return _error(str(error))
    finally:
        reader.close()
        if service is not None:
            # Every accepted keyframe not evicted since is in the file (committed one by one;
            # failures are counted in persist_errors).
            stored = len(service)
            if args.map_png and stored:
                trajectory = [kf.T_world_cam for kf in service.keyframes()]
                try:
                    service.occupancy_map.save_png(args.map_png, trajectory=trajectory)
                except (OSError, ValueError) as error:
                    warn(f"could not write the map PNG {args.map_png}: {error}")
            service.close()
    wall = time.perf_counter() - t0
    summary = {
        "bag": str(args.bag),
        "output": str(output),
        "topics": {"image": topics.image, "depth": topics.depth, "info": topics.info, "odom": topics.odom},
        **reader.stats.as_dict(),
        "ingest_errors": ingest_errors,
        "keyframes_accepted": accepted,
        "keyframes_written": stored,
        "persist_errors": service.persist_errors if service is not None else 0,
        "wall_s": wall,
        "frames_per_s": reader.stats.frames / wall if wall > 0 else 0.0,
        "interrupted": interrupted,
    }
    print(format_summary(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    if interrupted:
        return 130
    if summary["read_error"] or summary["persist_errors"]:
        return 1
    return 0


def format_summary(s: dict[str, Any]) -> str:
    """Human-readable summary of one conversion."""
    lines = [f"{s['bag']} -> {s['output']}", "messages read:"]
    for topic in s["topics"].values():
        lines.append(f"  {topic:<40} {s['messages'].get(topic, 0):>8}")
    if s["bad_messages"]:
        lines.append(f"bad messages skipped: {sum(s['bad_messages'].values())}")
        lines += [f"  {reason:<40} {n:>8}" for reason, n in sorted(s["bad_messages"].items())]
    lines.append(f"frames: {s['pairs']} colour/depth pairs, {s['frames']} posed")
    dropped = dict(s["dropped"])
    if s["ingest_errors"]:
        dropped["not ingested (invalid frame)"] = s["ingest_errors"]
    if dropped:
        lines.append(f"dropped: {sum(dropped.values())}")
        lines += [f"  {reason:<40} {n:>8}" for reason, n in sorted(dropped.items())]
    lines.append(f"keyframes: {s['keyframes_accepted']} accepted, {s['keyframes_written']} in the world file")
    lines.append(f"wall time: {s['wall_s']:.2f} s ({s['frames_per_s']:.1f} posed frames/s)")
    if s["read_error"]:
        lines.append(f"the bag could not be read to its end: {s['read_error']}")
    if s["persist_errors"]:
        lines.append(f"{s['persist_errors']} keyframe(s) could not be committed to the world file")
    if s["interrupted"]:
        lines.append("interrupted: the world file holds the keyframes converted so far")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
