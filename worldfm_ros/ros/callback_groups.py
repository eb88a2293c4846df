"""One mutually exclusive callback group per executor entity.

Why not one group for several entities (the node shared groups until session 7): rclpy's
executor yields every ready entity whose group is idle *at wait time* and checks the group
again only when the handler starts on a pool thread. When two entities of one group are
ready together, the second handler finds the group busy, re-arms its entity and triggers
the executor's guard condition, so it is yielded again, and again, for as long as the
first callback runs. Colour and depth shared a group, odometry and camera_info another,
the status timer, the map timer and the save service a third (a save takes seconds).

With one group per entity the executor never yields an entity whose own callback is running
(``can_execute`` filters it out of the wait set), so no handler is refused. The busy loop
that starved the node under a camera stream had a second, larger cause, fixed in
:mod:`worldfm_ros.ros.executor`. Each callback still never runs concurrently with itself;
callbacks that share state use locks (the ingest pipeline's condition, the odometry
buffer's lock, the world service's lock, the simulator's step lock).
"""

from __future__ import annotations

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup


def own_group() -> MutuallyExclusiveCallbackGroup:
    """A new mutually exclusive callback group, for exactly one subscription, service or timer."""
    return MutuallyExclusiveCallbackGroup()
