"""The shipped Fast DDS profile: how it is selected, what it sets, and that it does its job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from worldfm_ros.ros.dds import apply_dds_profile, profile_path

ROOT = Path(__file__).resolve().parents[1]
NS = {"f": "http://www.eprosima.com"}


def test_installed_profile_is_the_package_file_and_enlarges_the_shared_memory_segment():
    path = profile_path()  # the checkout's file (editable install) or an installed copy
    assert path.read_bytes() == (ROOT / "config" / "fastdds_profile.xml").read_bytes()
    root = ElementTree.parse(path).getroot()
    participant = root.find("f:profiles/f:participant", NS)
    assert participant.get("is_default_profile") == "true"
    used = [t.text for t in participant.findall("f:rtps/f:userTransports/f:transport_id", NS)]
    descriptors = {d.findtext("f:transport_id", namespaces=NS): d
                   for d in root.findall("f:profiles/f:transport_descriptors/f:transport_descriptor", NS)}
    assert set(used) <= set(descriptors)
    types = {descriptors[t].findtext("f:type", namespaces=NS) for t in used}
    assert types == {"SHM", "UDPv4"}  # same transports as the defaults, so discovery is unchanged
    shm = next(descriptors[t] for t in used if descriptors[t].findtext("f:type", namespaces=NS) == "SHM")
    assert int(shm.findtext("f:segment_size", namespaces=NS)) >= 16 * 2**20


def test_apply_sets_the_fast_dds_3_variable_when_nothing_is_configured(tmp_path):
    env = {}
    assert apply_dds_profile(env, cwd=tmp_path) == str(profile_path())
    assert env == {"FASTDDS_DEFAULT_PROFILES_FILE": str(profile_path())}


def test_apply_uses_the_fast_dds_2_variable_on_older_distributions(tmp_path):
    env = {"ROS_DISTRO": "humble"}
    apply_dds_profile(env, cwd=tmp_path)
    assert env["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(profile_path())
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in env


@pytest.mark.parametrize("variable", ["FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"])
def test_apply_keeps_a_profile_the_user_set(tmp_path, variable):
    env = {variable: "/etc/my_profile.xml"}
    assert apply_dds_profile(env, cwd=tmp_path) == "/etc/my_profile.xml"
    assert env == {variable: "/etc/my_profile.xml"}


def test_apply_keeps_a_default_profile_file_in_the_working_directory(tmp_path):
    (tmp_path / "DEFAULT_FASTDDS_PROFILES.xml").write_text("<dds/>")
    env = {}
    assert apply_dds_profile(env, cwd=tmp_path) == str(tmp_path / "DEFAULT_FASTDDS_PROFILES.xml")
    assert env == {}


def test_apply_can_be_switched_off_or_pointed_elsewhere(tmp_path):
    env = {"WORLDFM_DDS_PROFILE": "off"}
    assert apply_dds_profile(env, cwd=tmp_path) is None
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in env

    other = tmp_path / "other.xml"
    other.write_text("<dds/>")
    env = {"WORLDFM_DDS_PROFILE": str(other)}
    assert apply_dds_profile(env, cwd=tmp_path) == str(other)
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(other)

    with pytest.raises(FileNotFoundError):
        apply_dds_profile({"WORLDFM_DDS_PROFILE": str(tmp_path / "missing.xml")}, cwd=tmp_path)


def test_640x480_colour_and_depth_arrive_intact_between_processes_with_the_profile(tmp_path):
    """Two processes, best-effort subscriber, 30 frames of 640x480 rgb8 + 16UC1 at 15 Hz.

    With Fast DDS defaults about half of the colour and most depth images are lost here
    (docs/dds.md), so this fails without the profile.
    """
    out = tmp_path / "dds.json"
    env = dict(os.environ)  # ROS_DOMAIN_ID / LOCALHOST from conftest; the script isolates profiles
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "measure_dds.py"), "--seconds", "2", "--rate", "15",
         "--sizes", "640x480", "--profiles", "package", "--json", str(out)],
        env=env, check=True, timeout=120, capture_output=True,
    )
    (result,) = json.loads(out.read_text())
    assert result["matched"]
    for topic in ("camera/image_raw", "camera/depth/image_raw"):
        entry = result["topics"][topic]
        assert entry["sent"] == 30
        # Best effort may lose a frame while the machine is busy; without the profile ~50% go.
        assert entry["intact"] >= 27, (topic, entry)
