"""The package's Fast DDS profile: find it and make the current process use it.

With Fast DDS defaults, best-effort 640x480 colour + depth between two processes on one
machine mostly does not arrive (see docs/dds.md for the measurements). The package ships
``config/fastdds_profile.xml``, which fixes that; :func:`apply_dds_profile` points Fast DDS at
it through the environment and must run before ``rclpy.init()`` (Fast DDS reads the variables
when the process's first participant is created). It never overrides a configuration the user
chose: an already set ``FASTDDS_DEFAULT_PROFILES_FILE`` / ``FASTRTPS_DEFAULT_PROFILES_FILE``, or
a ``DEFAULT_FASTDDS_PROFILES.xml`` / ``DEFAULT_FASTRTPS_PROFILES.xml`` in the working directory
(which Fast DDS loads by itself). ``WORLDFM_DDS_PROFILE=off`` disables it;
``WORLDFM_DDS_PROFILE=/path.xml`` selects another file.

The profile acts on the participants of the process that loads it. Publishers of large images
into our node (camera drivers) benefit from it too; start them with
``FASTDDS_DEFAULT_PROFILES_FILE=$(python -c "from worldfm_ros.ros.dds import profile_path; print(profile_path())")``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import MutableMapping, Optional

PACKAGE = "worldfm_ros"
PROFILE_NAME = "fastdds_profile.xml"
#: Variables Fast DDS 3 (FASTDDS_) and Fast DDS 2 / Fast RTPS (FASTRTPS_) read.
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
#: Files Fast DDS loads from the working directory when no variable is set.
WORKING_DIRECTORY_PROFILES = ("DEFAULT_FASTDDS_PROFILES.xml", "DEFAULT_FASTRTPS_PROFILES.xml")
#: ROS 2 distributions whose Fast DDS is 2.x.
FAST_DDS_2_DISTROS = ("foxy", "galactic", "humble", "iron", "jazzy")
#: Opt-out / override switch.
SWITCH_VARIABLE = "WORLDFM_DDS_PROFILE"


def _candidates() -> list[Path]:
    """Where the profile may be, most specific first."""
    candidates = []
    # A source checkout (editable install, PYTHONPATH=<checkout>): edits apply at once.
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "package.xml").is_file():
        candidates.append(checkout / "config" / PROFILE_NAME)
    # A ROS 2 install (colcon): <prefix>/share/worldfm_ros/config.
    try:
        from ament_index_python.packages import get_package_share_directory

        try:
            candidates.append(Path(get_package_share_directory(PACKAGE)) / "config" / PROFILE_NAME)
        except (LookupError, ValueError, OSError):  # not indexed; AMENT_PREFIX_PATH unset (venv)
            pass
    except ImportError:
        pass
    # A pip install into a venv: the wheel's data files land in <venv>/share/worldfm_ros.
    candidates.append(Path(sys.prefix) / "share" / PACKAGE / "config" / PROFILE_NAME)
    return candidates


def profile_path() -> Path:
    """Path of the installed ``config/fastdds_profile.xml``; FileNotFoundError if absent."""
    candidates = _candidates()
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{PROFILE_NAME} not found; looked in: {', '.join(str(c) for c in candidates)}"
    )


def apply_dds_profile(environ: Optional[MutableMapping[str, str]] = None,
                      cwd: Optional[Path] = None) -> Optional[str]:
    """Point Fast DDS at the package's profile unless the user configured one; call before
    ``rclpy.init()``.

    Returns the profile file in effect afterwards (the user's or ours), or None when none is
    (profile disabled with ``WORLDFM_DDS_PROFILE=off``, or not installed). ``environ`` and
    ``cwd`` default to this process's; they are parameters for tests.
    """
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else Path(cwd)
    for variable in PROFILE_VARIABLES:
        if environ.get(variable):
            return environ[variable]
    for name in WORKING_DIRECTORY_PROFILES:
        if (cwd / name).is_file():
            return str(cwd / name)
    switch = environ.get(SWITCH_VARIABLE, "").strip()
    if switch.lower() in ("off", "0", "false", "no", "none"):
        return None
    if switch:
        path = Path(switch).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{SWITCH_VARIABLE}={switch}: no such file")
    else:
        try:
            path = profile_path()
        except FileNotFoundError as error:
            print(f"worldfm_ros: DDS profile not applied: {error}", file=sys.stderr)
            return None
    for variable in profile_variables(environ):
        environ[variable] = str(path)
    return str(path)


def profile_variables(environ: MutableMapping[str, str]) -> tuple[str, ...]:
    """The variable(s) this ROS 2 distribution's Fast DDS reads.

    Fast DDS 3 (Kilted and later) reads FASTDDS_DEFAULT_PROFILES_FILE and warns about the
    deprecated FASTRTPS_ one; Fast DDS 2 (Humble, Iron, Jazzy) reads only FASTRTPS_. The PyPI
    wheels (no ROS_DISTRO set) are Kilted.
    """
    if environ.get("ROS_DISTRO", "").lower() in FAST_DDS_2_DISTROS:
        return ("FASTRTPS_DEFAULT_PROFILES_FILE",)
    return ("FASTDDS_DEFAULT_PROFILES_FILE",)
