"""World file: bit-exact round trip, eviction, atomic save, typed errors, crash safety."""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import WorldFileError
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.pose import pose_from_vector
from worldfm_ros.core.world_file import (
    FORMAT_NAME,
    FORMAT_VERSION,
    WorldFile,
    read_world,
    write_world,
)

REPO = Path(__file__).resolve().parents[1]
WRITER = Path(__file__).resolve().parent / "kill_writer.py"


def _load_writer_module():
    spec = importlib.util.spec_from_file_location("kill_writer", WRITER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _keyframe(kid: int, width: int = 40, height: int = 30) -> Keyframe:
    """Random content with values a lossy or float64->float32 path would change."""
    rng = np.random.default_rng(1000 + kid)
    colour = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    depth = rng.uniform(0.1, 9.0, size=(height, width)).astype(np.float32)
    depth[0, 0] = 0.0
    depth[0, 1] = np.float32(1e-40)  # subnormal
    depth[0, 2] = np.nextafter(np.float32(1.0), np.float32(2.0))
    depth[rng.random((height, width)) < 0.1] = 0.0
    T = pose_from_vector(np.concatenate([rng.normal(size=3) * 3.0, rng.normal(size=4)]))
    K = Intrinsics(fx=100.0 + np.pi, fy=99.5 + kid / 7, cx=19.123456789, cy=14.5, width=width, height=height)
    return Keyframe(colour, depth, K, T, stamp=1.7e9 + kid / 3.0, id=kid, extras={"source": "test", "n": kid})


def _assert_same(a: Keyframe, b: Keyframe) -> None:
    assert a.id == b.id
    assert np.array_equal(a.colour, b.colour) and b.colour.dtype == np.uint8
    assert np.array_equal(a.depth.view(np.uint32), b.depth.view(np.uint32)) and b.depth.dtype == np.float32
    assert np.array_equal(a.T_world_cam.view(np.uint64), b.T_world_cam.view(np.uint64))
    assert a.intrinsics == b.intrinsics
    assert a.stamp == b.stamp
    assert a.extras == b.extras


# ---------------------------------------------------------------------------- round trip
def test_round_trip_is_bit_exact_in_id_order(tmp_path):
    path = tmp_path / "world.db"
    frames = {kid: _keyframe(kid) for kid in (7, 2, 11, 0)}
    with WorldFile.create(path) as world:
        for kf in frames.values():  # appended out of id order
            world.append(kf)
        assert world.count() == 4
        assert world.ids() == [0, 2, 7, 11]
    with WorldFile.open(path) as world:  # a fresh process would see the same
        loaded = world.load()
        assert world.metadata["format"] == FORMAT_NAME
        assert world.metadata["version"] == FORMAT_VERSION
        _assert_same(world.get(7), frames[7])
    assert [kf.id for kf in loaded] == [0, 2, 7, 11]
    for kf in loaded:
        _assert_same(frames[kf.id], kf)
    assert [kf.id for kf in read_world(path)] == [0, 2, 7, 11]


def test_colour_channels_keep_rgb_order(tmp_path):
    kf = _keyframe(0)
    kf.colour[:] = 0
    kf.colour[..., 0] = 255  # pure red in RGB
    write_world(tmp_path / "w", [kf])
    loaded = read_world(tmp_path / "w")[0]
    assert (loaded.colour[..., 0] == 255).all() and (loaded.colour[..., 1:] == 0).all()


def test_serial_and_threaded_load_agree(tmp_path):
    frames = [_keyframe(k) for k in range(6)]
    write_world(tmp_path / "w", frames)
    with WorldFile.open(tmp_path / "w", read_only=True) as world:
        one, many = world.load(workers=1), world.load(workers=3)
    for a, b, c in zip(frames, one, many):
        _assert_same(a, b)
        _assert_same(a, c)


def test_remove_clear_and_persistence(tmp_path):
    path = tmp_path / "world"
    with WorldFile.open(path, create_if_missing=True) as world:
        for k in range(5):
            world.append(_keyframe(k, 160, 120))
        assert world.remove(3) is True
        assert world.remove(3) is False
        assert world.ids() == [0, 1, 2, 4]
    with WorldFile.open(path) as world:
        assert world.ids() == [0, 1, 2, 4]
        full_size = os.path.getsize(path)
        world.clear()
        assert world.count() == 0 and world.load() == []
        world.append(_keyframe(9))
    assert os.path.getsize(path) < full_size / 4  # clear() gives the space back
    assert [kf.id for kf in read_world(path)] == [9]


def test_append_refuses_duplicate_or_unset_ids(tmp_path):
    with WorldFile.create(tmp_path / "w") as world:
        world.append(_keyframe(1))
        with pytest.raises(WorldFileError, match="already stored"):
            world.append(_keyframe(1))
        unset = _keyframe(2)
        unset.id = -1
        with pytest.raises(WorldFileError, match="id must be"):
            world.append(unset)
        replacement = _keyframe(5)
        replacement.id = 1
        world.append(replacement, replace=True)
        _assert_same(world.get(1), replacement)
        assert world.count() == 1
        with pytest.raises(WorldFileError, match="no keyframe 4"):
            world.get(4)
    with pytest.raises(WorldFileError, match="closed"):
        world.count()


def test_read_only_refuses_writes(tmp_path):
    write_world(tmp_path / "w", [_keyframe(0)])
    with WorldFile.open(tmp_path / "w", read_only=True) as world:
        with pytest.raises(WorldFileError, match="read-only"):
            world.append(_keyframe(1))
        assert world.count() == 1


def test_metadata_extras_persist(tmp_path):
    with WorldFile.create(tmp_path / "w", metadata={"world_frame": "odom"}) as world:
        world.set_metadata("camera_to_base", [0, 0, 0, -0.5, 0.5, -0.5, 0.5])
        with pytest.raises(WorldFileError, match="reserved"):
            world.set_metadata("version", 9)
    meta = WorldFile.open(tmp_path / "w").metadata
    assert meta["world_frame"] == "odom"
    assert meta["camera_to_base"] == [0, 0, 0, -0.5, 0.5, -0.5, 0.5]
    assert meta["created"].endswith("+00:00")


# ---------------------------------------------------------------------------- write_world
def test_write_world_writes_exactly_the_path_atomically(tmp_path):
    path = tmp_path / "saved_world"  # no extension: none may be added
    assert write_world(path, [_keyframe(k) for k in range(3)]) == 3
    assert sorted(os.listdir(tmp_path)) == ["saved_world"]
    old = path.read_bytes()
    # A failing save (duplicate id) must leave the old file as it was, and no temp file.
    with pytest.raises(WorldFileError, match="appears twice"):
        write_world(path, [_keyframe(0), _keyframe(0)])
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["saved_world"]
    # A successful save replaces it.
    write_world(path, [_keyframe(5)])
    assert [kf.id for kf in read_world(path)] == [5]
    assert sorted(os.listdir(tmp_path)) == ["saved_world"]


def test_write_world_path_errors(tmp_path):
    with pytest.raises(WorldFileError, match="empty"):
        write_world("", [])
    with pytest.raises(WorldFileError, match="does not exist"):
        write_world(tmp_path / "no_dir" / "w", [])
    with pytest.raises(WorldFileError, match="is a directory"):
        write_world(tmp_path, [])
    write_world(tmp_path / "w", [])
    with pytest.raises(WorldFileError, match="already exists"):
        WorldFile.create(tmp_path / "w")


def test_write_world_over_a_stale_wal_is_not_corrupted_by_it(tmp_path):
    """SQLite replays ``<path>-wal`` into whatever file is at ``path``: a save over a file
    whose WAL was left behind (a crash) must not inherit the old WAL's pages."""
    path = tmp_path / "w"
    write_world(path, [_keyframe(k, 80, 60) for k in range(3)])
    world = WorldFile.open(path)
    for k in range(3, 6):
        world.append(_keyframe(k, 80, 60))
    stale = path.read_bytes(), (tmp_path / "w-wal").read_bytes()
    world.close()
    assert not (tmp_path / "w-wal").exists()
    (tmp_path / "w-wal").write_bytes(stale[1])  # as a killed process leaves it
    write_world(path, [_keyframe(20)])
    loaded = read_world(path)
    assert [kf.id for kf in loaded] == [20]
    _assert_same(loaded[0], _keyframe(20))


def test_write_world_refuses_a_file_open_elsewhere(tmp_path):
    path = tmp_path / "w"
    with WorldFile.open(path, create_if_missing=True) as world:
        world.append(_keyframe(0))
        with pytest.raises(WorldFileError, match="open elsewhere"):
            write_world(path, [_keyframe(1)])
        assert world.ids() == [0]
        world.append(_keyframe(2))
    assert [kf.id for kf in read_world(path)] == [0, 2]


# ---------------------------------------------------------------------------- bad files
def _expect_error(path, match: str) -> None:
    with pytest.raises(WorldFileError, match=match) as info:
        read_world(path)
    assert str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path):
    _expect_error(tmp_path / "absent.world", "does not exist")
    _expect_error(tmp_path, "is a directory")
    with pytest.raises(WorldFileError, match="empty"):
        WorldFile.open("")


def test_non_sqlite_and_empty_files(tmp_path):
    (tmp_path / "text").write_text("not a world\n" * 100)
    _expect_error(tmp_path / "text", "not a SQLite database")
    (tmp_path / "empty").write_bytes(b"")
    _expect_error(tmp_path / "empty", "empty")
    with pytest.raises(WorldFileError):
        WorldFile.open(tmp_path / "text", create_if_missing=True)  # never overwrites
    assert (tmp_path / "text").read_text().startswith("not a world")


def test_foreign_sqlite_files(tmp_path):
    con = sqlite3.connect(tmp_path / "foreign.db")
    con.execute("CREATE TABLE things (x)")
    con.commit()
    con.close()
    _expect_error(tmp_path / "foreign.db", "without worldfm metadata")
    con = sqlite3.connect(tmp_path / "other.db")
    con.execute("CREATE TABLE metadata (key TEXT PRIMARY KEY, value TEXT)")
    con.execute("INSERT INTO metadata VALUES ('format', '\"some_other_tool\"'), ('version', '1')")
    con.commit()
    con.close()
    _expect_error(tmp_path / "other.db", "some_other_tool")


def test_newer_version_is_refused(tmp_path):
    path = tmp_path / "w"
    write_world(path, [_keyframe(0)])
    con = sqlite3.connect(path)
    con.execute("UPDATE metadata SET value = ? WHERE key = 'version'", (json.dumps(FORMAT_VERSION + 1),))
    con.commit()
    con.close()
    _expect_error(path, f"version {FORMAT_VERSION + 1}, newer")


@pytest.mark.parametrize("keep", [0.0, 0.3, 0.5, 0.9, -1])
def test_truncated_files_are_refused(tmp_path, keep):
    path = tmp_path / "w"
    write_world(path, [_keyframe(k, 160, 120) for k in range(4)])
    data = path.read_bytes()
    cut = len(data) - 1 if keep == -1 else max(int(len(data) * keep), 50)
    path.write_bytes(data[:cut])
    _expect_error(path, "truncated")


def test_truncated_wal_mode_file_is_refused(tmp_path):
    path = tmp_path / "w"
    with WorldFile.create(path) as world:  # WAL mode, closed cleanly
        for k in range(4):
            world.append(_keyframe(k, 160, 120))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _expect_error(path, "truncated")


def test_damaged_blob_is_refused(tmp_path):
    path = tmp_path / "w"
    write_world(path, [_keyframe(k) for k in range(3)])
    data = bytearray(path.read_bytes())
    at = data.index(b"IDAT") + 8
    data[at:at + 32] = bytes(b ^ 0x5A for b in data[at:at + 32])
    path.write_bytes(bytes(data))
    _expect_error(path, "corrupt")


# ---------------------------------------------------------------------------- crash safety
def _run_writer(path: Path, n_acks: int, *, delay: float = 0.0, die_after: int | None = None):
    """Run kill_writer.py until it acknowledged ``n_acks`` appends, wait ``delay`` s (to move
    the kill to another phase of the write cycle) and SIGKILL it; or, with ``die_after``, let
    it kill itself inside a transaction. Returns ``(acked ids, in-flight id or None)``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    args = [sys.executable, str(WRITER), str(path)] + ([str(die_after)] if die_after is not None else [])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: "queue.Queue[str]" = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line.strip())
        lines.put("")  # end of stream

    threading.Thread(target=pump, daemon=True).start()
    acked: list[int] = []
    inflight = None
    try:
        while True:
            if die_after is None and len(acked) >= n_acks:
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                break
            try:
                line = lines.get(timeout=60)  # guards against a hang, not a speed check
            except queue.Empty:
                pytest.fail("kill_writer.py produced no output for 60 s")
            if line.startswith("ACK "):
                acked.append(int(line.split()[1]))
            elif line.startswith("INFLIGHT "):
                inflight = int(line.split()[1])
            elif not line:
                break
    finally:
        proc.kill()
        proc.wait()
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, f"kill_writer.py ended with {proc.returncode}: {err}"
    return acked, inflight


def test_killed_writer_loses_at_most_the_keyframe_in_flight(tmp_path):
    """SIGKILL a process appending keyframes; every acknowledged keyframe survives intact.

    Rounds 1-3 kill at different phases of the encode/write/commit cycle; round 4 dies
    inside a transaction whose pages are already in the WAL. Each round's writer continues
    the file the previous crash left (as a restarted node would).
    """
    make_keyframe = _load_writer_module().make_keyframe
    path = tmp_path / "crash.world"
    stored: set[int] = set()  # what the file held after the previous crash
    rounds = [dict(n_acks=4), dict(n_acks=3, delay=0.008), dict(n_acks=3, delay=0.016),
              dict(n_acks=2, die_after=2)]
    for options in rounds:
        acked, inflight = _run_writer(path, **options)
        with WorldFile.open(path) as world:  # reopened read-write, as a restarted node does
            loaded = world.load()
            world.append(make_keyframe(10_000))  # the recovered file takes new appends
            assert world.remove(10_000)
        ids = {kf.id for kf in loaded}
        expected = stored | set(acked)
        missing = expected - ids
        assert missing <= {acked[-1]}, f"acknowledged keyframes lost: {sorted(missing)}"
        unacked = ids - expected
        assert unacked <= {acked[-1] + 1}, f"keyframes nobody acknowledged: {sorted(unacked)}"
        if inflight is not None:
            assert inflight not in ids and not missing  # the uncommitted one, and only it, is gone
        for kf in loaded:  # intact: decodes and equals what the writer generated
            _assert_same(kf, make_keyframe(kf.id))
        stored = ids
    assert len(stored) >= 4 + 3 + 3 + 2 - 3
