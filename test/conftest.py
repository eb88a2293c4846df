"""Shared test set-up: an isolated ROS 2 graph per test session, and the shared RGB-D data.

The environment is set here, at import time, before any test module imports rclpy:
- ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` keeps discovery traffic on this machine;
- ``ROS_DOMAIN_ID`` in ``1..101`` derived from the pid, so test sessions running side by side
  (developers, CI jobs, helpers sharing a machine) do not see each other's nodes. Processes the
  tests start inherit both.
- the package's Fast DDS profile (``apply_dds_profile``): Fast DDS reads it once, when a
  process creates its first participant, so it must be in place before *any* test calls
  ``rclpy.init`` - otherwise a later test sending 640x480 images between processes fails
  depending on which tests ran before it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Domain ids 1..101 map to UDP ports below Linux's ephemeral range; 0 (the default) is
#: left to whatever else runs on the machine.
TEST_DOMAIN_ID = 1 + os.getpid() % 101

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = str(TEST_DOMAIN_ID)

from worldfm_ros.ros.dds import apply_dds_profile  # noqa: E402 - ROS-free, sets variables only

apply_dds_profile()

#: ``../shared/data`` next to the checkout (7-Scenes data; licence: referenced, never copied in).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``../shared/data``; the test is skipped, with the reason, when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"shared RGB-D data not found at {SHARED_DATA} (expected ../shared/data beside the "
            "checkout; it is not part of the repository)"
        )
    return SHARED_DATA


@pytest.fixture(scope="module")
def ros_context():
    """An rclpy context for one test module (the modules that use it skip without rclpy)."""
    rclpy = pytest.importorskip("rclpy")
    apply_dds_profile()
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


@pytest.fixture
def run_python():
    """``run(code, name, value=None)``: run ``code`` in a fresh interpreter, with environment
    variable ``name`` removed (``value`` None) or set to ``value``; returns its stripped stdout.
    For process-wide settings that a test must see applied from a clean start."""
    import subprocess
    import sys

    def run(code: str, name: str, value=None) -> str:
        env = dict(os.environ)
        env.pop(name, None)
        if value is not None:
            env[name] = value
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()

    return run
