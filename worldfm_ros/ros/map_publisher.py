"""``~/map``: the world's occupancy grid as ``nav_msgs/OccupancyGrid`` (CONTRACT.md v2).

Reliable, transient local, depth 1 (a map server's QoS: a late subscriber, e.g. nav2's static
layer, gets the current map at once). Checked at ``map.rate_hz`` and republished only when
the map changed since the last publication (its ``version``); published once at activation
when the world file loaded a non-empty map. The map itself is kept by the ROS-free
:class:`~worldfm_ros.core.occupancy_map.OccupancyMap` of the world service.
"""

from __future__ import annotations

from typing import Optional

from nav_msgs.msg import OccupancyGrid
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from worldfm_ros.ros.messages import make_occupancy_grid

QOS_MAP = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                     history=HistoryPolicy.KEEP_LAST)


class MapPublisher:
    """Publishes ``occupancy`` (an ``OccupancyMap``) on ``~/map`` of ``node`` in ``frame_id``.

    Made at configure (the publisher); :meth:`activate` publishes a loaded map and starts the
    ``rate_hz`` check, :meth:`deactivate` stops it, :meth:`release` frees the publisher.
    """

    def __init__(self, node, occupancy, frame_id: str, rate_hz: float, callback_group=None):
        self.node = node
        self.occupancy = occupancy
        self.frame_id = frame_id
        self.period = 1.0 / rate_hz
        self._group = callback_group
        self._publisher = node.create_publisher(OccupancyGrid, "~/map", QOS_MAP)
        self._timer = None
        self._published_version: Optional[int] = None
        self.publications = 0

    def activate(self) -> None:
        if self.occupancy is not None:
            cells, _ = self.occupancy.grid()
            if cells.size:
                self.publish()  # a world file's map, once after loading
            else:
                self._published_version = self.occupancy.version
        self._timer = self.node.create_timer(self.period, self._on_timer, callback_group=self._group)

    def deactivate(self) -> None:
        if self._timer is not None:
            self.node.destroy_timer(self._timer)
            self._timer = None

    def release(self) -> None:
        self.deactivate()
        if self._publisher is not None:
            self.node.destroy_publisher(self._publisher)
            self._publisher = None

    def _on_timer(self) -> None:
        if self.occupancy is not None and self.occupancy.version != self._published_version:
            self.publish()

    def publish(self) -> None:
        """Publish the current map now."""
        occupancy = self.occupancy
        version = occupancy.version
        cells, origin = occupancy.grid()
        stamp = self.node.get_clock().now().to_msg()
        msg = make_occupancy_grid(cells, origin, occupancy.resolution, stamp, self.frame_id,
                                  origin_z=getattr(occupancy, "floor_z", 0.0))
        self._publisher.publish(msg)
        self._published_version = version
        self.publications += 1
