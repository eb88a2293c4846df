"""The simulator's and the map's parameters (CONTRACT.md v2): defaults, ranges, and the
errors that name the parameter."""

import pytest

from worldfm_ros.ros.config import SPECS, ConfigError, NodeConfig

V2_SIM = {
    "sim.motion": "planar", "sim.collision": True, "sim.footprint_radius": 0.2, "sim.odom_frame": "",
    "sim.base_frame": "base_link", "sim.camera_frame": "camera_optical_frame", "sim.publish_tf": True,
    "sim.publish_clock": False, "sim.real_time_factor": 1.0, "sim.scan.enabled": True,
    "sim.scan.range_max": 8.0, "sim.scan.samples": 360, "sim.scan_frame": "base_scan",
    "sim.points.enabled": True, "map.resolution": 0.05, "map.min_height": 0.05, "map.max_height": 1.5,
    "map.floor_z": 0.0, "map.rate_hz": 1.0,
}


def test_contract_defaults():
    for name, default in V2_SIM.items():
        assert SPECS[name].default == default, name
        assert SPECS[name].description, name
    config = NodeConfig()
    assert config.sim_odom_frame_id == config.world_frame == "odom"
    assert NodeConfig(sim_odom_frame="map").sim_odom_frame_id == "map"


@pytest.mark.parametrize("values, name", [
    ({"sim.motion": "fly"}, "sim.motion"),
    ({"sim.footprint_radius": -0.1}, "sim.footprint_radius"),
    ({"sim.real_time_factor": 0.0}, "sim.real_time_factor"),  # 0 only with the clock
    ({"sim.real_time_factor": -1.0, "sim.publish_clock": True}, "sim.real_time_factor"),
    ({"sim.scan.samples": 0}, "sim.scan.samples"),
    ({"sim.scan.range_max": float("nan")}, "sim.scan.range_max"),
    ({"map.resolution": 0.0}, "map.resolution"),
    ({"map.min_height": 1.0, "map.max_height": 0.5}, "map.max_height"),
    ({"map.min_height": 0.3, "map.free_max_height": 0.2}, "map.free_max_height"),
    ({"sim.scan_frame": ""}, "sim.scan_frame"),
])
def test_bad_values_name_the_parameter(values, name):
    with pytest.raises(ConfigError, match=f"parameter '{name}'"):
        NodeConfig.from_parameters(values)


def test_as_fast_as_rendering_allows_with_the_clock():
    config = NodeConfig.from_parameters({"sim.publish_clock": True, "sim.real_time_factor": 0.0})
    assert config.sim_real_time_factor == 0.0


def test_the_map_options_reach_the_world_service():
    ws = NodeConfig.from_parameters({"map.resolution": 0.1, "map.min_height": 0.1, "map.max_height": 1.0,
                                     "map.floor_z": -0.2, "map.free_max_height": 1.0}).world_service_config()
    assert (ws.map_resolution, ws.map_min_height, ws.map_max_height, ws.map_floor_z) == (0.1, 0.1, 1.0, -0.2)
    assert ws.map_free_max_height == 1.0
