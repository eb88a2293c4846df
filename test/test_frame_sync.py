"""FrameSync: colour/depth pairing by stamp and counted drops."""

import math

import pytest

from worldfm_ros.core.frame_sync import FrameSync, SyncDrop


def test_equal_stamps_pair_immediately_in_either_order():
    sync = FrameSync(max_gap=0.02)
    assert sync.add_colour(1.0, "c1") == []
    (pair,) = sync.add_depth(1.0, "d1")
    assert (pair.colour, pair.depth, pair.gap) == ("c1", "d1", 0.0)
    (pair,) = sync.add_colour(2.0, "c2") or sync.add_depth(2.0, "d2")
    assert (pair.colour, pair.depth) == ("c2", "d2")


def test_nearest_depth_within_gap_is_chosen():
    sync = FrameSync(max_gap=0.02)
    sync.add_colour(1.000, "c")
    sync.add_depth(0.985, "early")  # within gap, but a nearer one may still come
    (pair,) = sync.add_depth(1.005, "near")
    assert pair.depth == "near" and pair.gap == pytest.approx(0.005)
    # the early depth can pair with nothing any more once colour moves on
    sync.add_colour(1.100, "c2")
    assert sync.drops[SyncDrop.DEPTH_UNPAIRED] == 1


def test_offset_streams_pair_with_a_constant_lag():
    sync = FrameSync(max_gap=0.02)
    pairs = []
    for i in range(30):
        t = i / 30.0
        pairs += sync.add_colour(t, ("c", i))
        pairs += sync.add_depth(t + 0.008, ("d", i))
    pairs += sync.add_colour(30 / 30.0, ("c", 30))  # moves the colour stream on
    assert [p.colour[1] for p in pairs] == [p.depth[1] for p in pairs]
    assert len(pairs) == 30
    assert all(p.gap == pytest.approx(0.008) for p in pairs)
    assert sum(sync.drops.values()) == 0


def test_gap_too_large_is_dropped_and_counted():
    sync = FrameSync(max_gap=0.02)
    pairs = []
    for i in range(10):
        t = i * 0.1
        pairs += sync.add_colour(t, i)
        pairs += sync.add_depth(t + 0.05, i)
    assert pairs == []
    assert sync.drops[SyncDrop.COLOUR_UNPAIRED] >= 9
    assert sync.drops[SyncDrop.DEPTH_UNPAIRED] >= 8


def test_missing_depth_stream_overflows_the_queue():
    sync = FrameSync(max_gap=0.02, queue_size=5)
    for i in range(12):
        assert sync.add_colour(i * 0.1, i) == []
    assert sync.drops[SyncDrop.COLOUR_OVERFLOW] == 7


def test_non_finite_stamp_is_dropped():
    sync = FrameSync()
    assert sync.add_depth(math.nan, "d") == []
    assert sync.drops[SyncDrop.INVALID_STAMP] == 1


def test_time_jump_back_restarts_pairing():
    sync = FrameSync(max_gap=0.02)
    sync.add_colour(100.0, "old")
    sync.add_colour(5.0, "new")
    (pair,) = sync.add_depth(5.0, "d")
    assert pair.colour == "new"
    assert sync.drops[SyncDrop.COLOUR_UNPAIRED] == 1
