"""The node's executor: rclpy's ``MultiThreadedExecutor`` without its busy loop.

rclpy's executor keeps every handler task it made and, at the top of each wait, yields
again every task that is "not executing and not done", which includes a task that was just
submitted to the thread pool but whose pool thread has not started it yet. The main thread
holds the GIL while it loops, so the pool thread that would start the task has to wait
for it, and the loop feeds itself: the same task is submitted again and again. Measured in
the node under the live-stream test's 30 Hz camera (``test/test_live_stream.py``):
4,500-7,700 executor iterations a second with up to 3,084 queued submissions, the main
thread holding the GIL for about 75 % of the samples (py-spy ``--gil``), and the ingest
worker starved: 108-134 of 225 pairs skipped as busy, 130-196 of 225 colour images taken.
That was the CI failure of session 6.

:class:`PacedExecutor` submits each task once; when the generator yields a task again
before a pool thread has started it, the main thread waits (GIL released) until some
submitted task starts, at most :data:`START_WAIT_S`. Tasks that started and yielded (a
coroutine awaiting a future) are submitted again as before, so async callbacks keep working.

``WORLDFM_EXECUTOR=stock`` makes :func:`make_executor` return rclpy's own executor instead,
for A/B measurements (``scripts/load_benchmark.py`` against both in one session).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Callable, Optional, Union

from rclpy.executors import (
    ConditionReachedException,
    ExternalShutdownException,
    MultiThreadedExecutor,
    ShutdownException,
    TimeoutException,
)

#: Longest wait for a submitted task to start before the executor looks again [s].
START_WAIT_S = 0.005


class PacedExecutor(MultiThreadedExecutor):
    """A ``MultiThreadedExecutor`` that never submits a task a second time before it started."""

    def __init__(self, num_threads: Optional[int] = None, **kwargs: Any):
        super().__init__(num_threads=num_threads, **kwargs)
        self._start_cond = threading.Condition()
        self._not_started: set = set()  # tasks submitted to the pool and not yet picked up
        self.repeat_yields = 0  # tasks yielded again before they started (diagnostics, tests)

    def _run_task(self, task: Callable[[], None]) -> None:
        with self._start_cond:
            self._not_started.discard(task)
            self._start_cond.notify_all()
        task()

    def _spin_once_impl(
        self,
        timeout_sec: Optional[Union[float, Any]] = None,
        wait_condition: Callable[[], bool] = lambda: False,
    ) -> None:
        try:
            handler, _entity, _node = self.wait_for_ready_callbacks(timeout_sec, None, wait_condition)
        except (ExternalShutdownException, ShutdownException, TimeoutException, ConditionReachedException):
            return
        with self._start_cond:
            if handler in self._not_started:
                self.repeat_yields += 1
                self._start_cond.wait(timeout=START_WAIT_S)
                return
            self._not_started.add(handler)
        self._executor.submit(self._run_task, handler)
        self._futures.append(handler)
        for future in self._futures[:]:
            if future.done():
                self._futures.remove(future)
                future.result()  # raise any exceptions, as rclpy's executor does


def make_executor(num_threads: int) -> MultiThreadedExecutor:
    """The node's executor: :class:`PacedExecutor`, or rclpy's ``MultiThreadedExecutor`` when
    the environment sets ``WORLDFM_EXECUTOR=stock`` (measurements only)."""
    choice = os.environ.get("WORLDFM_EXECUTOR", "paced").strip().lower()
    if choice == "stock":
        return MultiThreadedExecutor(num_threads=num_threads)
    if choice != "paced":
        print(f"worldfm_node: WORLDFM_EXECUTOR must be 'paced' or 'stock', got {choice!r}: using 'paced'",
              file=sys.stderr)
    return PacedExecutor(num_threads=num_threads)
