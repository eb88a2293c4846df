"""worldfm-build-world --map-png: the world's occupancy map as a PNG, the same map the
world file reloads into."""

import cv2
import numpy as np

from test_build_world import _record, write_bag
from worldfm_ros.cli.build_world import main
from worldfm_ros.core.world_file import read_world
from worldfm_ros.core.occupancy_map import OccupancyMap


def test_map_png_is_written_from_the_built_world(tmp_path):
    drive = _record([0, 0, 0, -0.5, 0.5, -0.5, 0.5], n_images=12)
    bag = write_bag(tmp_path / "run", drive)
    png = tmp_path / "maps" / "map.png"
    assert main(["--bag", str(bag), "--output", str(tmp_path / "w.world"), "--quiet", "--map-png", str(png)]) == 0
    image = cv2.imread(str(png))
    assert image is not None and min(image.shape[:2]) >= 100
    occupancy = OccupancyMap()
    for keyframe in read_world(tmp_path / "w.world"):
        occupancy.integrate(keyframe)
    cells, _ = occupancy.grid()
    assert (cells == 100).any() and (cells == 0).any()
    # Free cells are drawn white, occupied black: both appear in the image.
    assert (image == 254).all(axis=2).any() and (image == 0).all(axis=2).any()
