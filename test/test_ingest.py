"""The ingest pipeline (no ROS): hand-over, pairing, odometry waits and the counted busy rule."""

from __future__ import annotations

import threading
import time

import pytest

from worldfm_ros.core.frame_sync import FrameSync
from worldfm_ros.ros.ingest import IngestPipeline


class Recorder:
    """``process`` that records stamps; can be held (a slow insertion) with an event."""

    def __init__(self):
        self.stamps: list[float] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()

    def __call__(self, pair) -> None:
        self.started.set()
        assert self.gate.wait(10.0)
        self.stamps.append(pair.stamp)


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


def feed(pipeline: IngestPipeline, stamps) -> None:
    for stamp in stamps:
        pipeline.put_depth(stamp, f"d{stamp}")
        pipeline.put_colour(stamp, f"c{stamp}")


def test_every_pair_is_processed_in_order_when_the_worker_keeps_up():
    recorder = Recorder()
    pipeline = IngestPipeline(FrameSync(max_gap=0.01), recorder, lambda pair: True)
    pipeline.start()
    try:
        stamps = [i / 15 for i in range(40)]
        for stamp in stamps:
            feed(pipeline, [stamp])
            time.sleep(0.001)
        wait_for(pipeline.idle)
    finally:
        assert pipeline.stop()
    # The last colour pairs once a later depth shows no nearer partner will come: all but
    # the newest are certain, and the newest is paired too because its gap is 0.
    assert recorder.stamps == stamps
    assert pipeline.counters.frames_received == 40
    assert pipeline.counters.pairs_skipped_busy == 0


def test_a_slow_worker_skips_the_oldest_pairs_and_counts_each():
    recorder = Recorder()
    pipeline = IngestPipeline(FrameSync(max_gap=0.01), recorder, lambda pair: True, max_pending=3)
    pipeline.start()
    try:
        recorder.gate.clear()
        feed(pipeline, [0.0])
        assert recorder.started.wait(5.0)  # pair 0 is being processed, and held
        feed(pipeline, [i / 10 for i in range(1, 11)])  # 10 more arrive meanwhile
        time.sleep(0.05)
        recorder.gate.set()
        wait_for(pipeline.idle)
    finally:
        pipeline.stop()
    # The newest three were kept; the seven before them were skipped, each counted.
    assert recorder.stamps == [0.0, 0.8, 0.9, 1.0]
    assert pipeline.counters.pairs_skipped_busy == 7
    assert pipeline.counters.pairs_processed + pipeline.counters.pairs_skipped_busy == 11


def test_a_pair_waits_for_its_odometry_then_goes_on_its_deadline():
    recorder = Recorder()
    ready = {"odom": False}
    pipeline = IngestPipeline(FrameSync(max_gap=0.01), recorder, lambda pair: ready["odom"], odom_wait_s=0.3)
    pipeline.start()
    try:
        feed(pipeline, [1.0])
        time.sleep(0.1)
        assert recorder.stamps == []  # waiting for its odometry
        ready["odom"] = True
        pipeline.notify()
        wait_for(lambda: recorder.stamps == [1.0], timeout=1.0)
        ready["odom"] = False
        t0 = time.monotonic()
        feed(pipeline, [2.0])
        wait_for(lambda: len(recorder.stamps) == 2, timeout=2.0)
        assert time.monotonic() - t0 >= 0.25  # processed at its deadline, not before
    finally:
        pipeline.stop()
    assert pipeline.counters.pairs_skipped_busy == 0


def test_pairs_waiting_for_odometry_are_not_counted_as_busy():
    """Without odometry, a queue over its bound is processed (the node then reports the
    missing pose), not skipped as if the worker were slow."""
    recorder = Recorder()
    pipeline = IngestPipeline(FrameSync(max_gap=0.01), recorder, lambda pair: False, odom_wait_s=10.0,
                              max_pending=2)
    pipeline.start()
    try:
        feed(pipeline, [i / 10 for i in range(6)])
        wait_for(lambda: len(recorder.stamps) >= 3)
    finally:
        pipeline.stop()
    assert recorder.stamps[:3] == [0.0, 0.1, 0.2]
    assert pipeline.counters.pairs_skipped_busy == 0


def test_process_errors_are_counted_and_the_worker_goes_on():
    errors = []

    def process(pair):
        if pair.stamp == 0.0:
            raise RuntimeError("bad frame")
        errors.append(("ok", pair.stamp))

    pipeline = IngestPipeline(FrameSync(max_gap=0.01), process, lambda pair: True, on_error=errors.append)
    pipeline.start()
    try:
        feed(pipeline, [0.0, 0.1])
        wait_for(pipeline.idle)
    finally:
        pipeline.stop()
    assert isinstance(errors[0], RuntimeError) and errors[1] == ("ok", 0.1)
    assert pipeline.counters.process_errors == 1


@pytest.mark.parametrize("kwargs", [dict(odom_wait_s=-1.0), dict(max_pending=0), dict(max_inbox=1)])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        IngestPipeline(FrameSync(), lambda pair: None, lambda pair: True, **kwargs)


def test_stop_discards_what_was_queued_and_start_resumes():
    recorder = Recorder()
    ready = {"odom": False}
    pipeline = IngestPipeline(FrameSync(max_gap=0.01), recorder, lambda pair: ready["odom"], odom_wait_s=10.0)
    pipeline.start()
    feed(pipeline, [0.0, 0.1])  # waiting for odometry that does not come before the stop
    time.sleep(0.05)
    assert pipeline.stop()
    assert pipeline.backlog() == 0 and not pipeline.running
    ready["odom"] = True
    pipeline.start()
    try:
        feed(pipeline, [1.0])
        wait_for(lambda: recorder.stamps == [1.0])
    finally:
        pipeline.stop()
