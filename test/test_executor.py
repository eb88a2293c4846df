"""The node's executor submits each callback's task once (``worldfm_ros/ros/executor.py``).

rclpy's ``MultiThreadedExecutor`` re-yields a task that a pool thread has not started yet
and submits it again, in a loop that holds the GIL; under a camera stream that starved the
node (see the module's docstring). Here a publisher in this process sends 120 messages at
200 Hz, paced by the clock, to a subscription whose callback holds the GIL for 3 ms (pure
Python), and the executor spins on its own thread: every message must be handled exactly
once, and the executor must have submitted exactly one task per callback run.
"""

from __future__ import annotations

import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Int32  # noqa: E402

from worldfm_ros.ros.callback_groups import own_group  # noqa: E402
from worldfm_ros.ros.executor import PacedExecutor  # noqa: E402

MESSAGES = 120
RATE_HZ = 200.0
CALLBACK_S = 0.003


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:  # holds the GIL, like a Python callback doing work
        pass


def test_each_callback_task_is_submitted_once(ros_context):
    node = rclpy.create_node("executor_probe", context=ros_context)
    received: list[int] = []
    lock = threading.Lock()

    def on_message(msg: Int32) -> None:
        _busy(CALLBACK_S)
        with lock:
            received.append(msg.data)

    qos = QoSProfile(depth=MESSAGES, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Int32, "probe", on_message, qos, callback_group=own_group())
    node.create_subscription(Int32, "probe_b", on_message, qos, callback_group=own_group())
    publisher = node.create_publisher(Int32, "probe", qos)
    publisher_b = node.create_publisher(Int32, "probe_b", qos)
    executor = PacedExecutor(num_threads=4, context=ros_context)
    submitted = []
    submit = executor._executor.submit

    def counting_submit(fn, *args, **kwargs):
        submitted.append(args[0] if args else fn)
        return submit(fn, *args, **kwargs)

    executor._executor.submit = counting_submit
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + 10.0
        while publisher.get_subscription_count() < 1 or publisher_b.get_subscription_count() < 1:
            assert time.monotonic() < deadline, "the subscriptions never matched"
            time.sleep(0.01)
        t0 = time.monotonic()
        for k in range(MESSAGES):  # paced by the clock only
            time.sleep(max(0.0, t0 + k / RATE_HZ - time.monotonic()))
            (publisher if k % 2 == 0 else publisher_b).publish(Int32(data=k))
        deadline = time.monotonic() + 20.0
        while len(received) < MESSAGES and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        executor.shutdown()
        spinner.join(timeout=5.0)
        node.destroy_node()
    assert sorted(received) == list(range(MESSAGES))
    # One submission per task: rclpy's executor submitted the same pending task again and
    # again (thousands of times a second in the node).
    assert len(submitted) == len(set(map(id, submitted))), \
        f"{len(submitted)} submissions of {len(set(map(id, submitted)))} tasks"
    assert len(submitted) <= MESSAGES + 10, f"{len(submitted)} tasks for {MESSAGES} messages"
