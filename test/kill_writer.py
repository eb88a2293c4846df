"""Helper process of the world-file kill test (test_world_file.py): appends keyframes forever.

Usage: ``python kill_writer.py WORLD_FILE [DIE_AFTER]``. Opens (or creates) the world file,
continues after its highest id, and prints ``ACK <id>`` (flushed) after each committed
append, until it is killed. With ``DIE_AFTER`` it instead SIGKILLs itself after that many
appends, in the middle of the next one: the row is inserted and, with a one-page cache,
its pages are already spilled into the WAL, but the transaction is not committed (printed
as ``INFLIGHT <id>``). Each keyframe's content is a deterministic function of its id
(:func:`make_keyframe`), so the test can check every survivor bit for bit.
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.keyframe import Keyframe
from worldfm_ros.core.pose import pose_from_vector

#: Image size of the generated keyframes [px]: the protocol's 320x240.
WIDTH, HEIGHT = 320, 240


def make_keyframe(kid: int) -> Keyframe:
    """A keyframe whose every value follows from ``kid`` (noise images: they barely compress,
    so each append writes ~0.5 MB and a kill is likely to land inside a transaction)."""
    rng = np.random.default_rng(kid)
    colour = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    depth = rng.uniform(0.3, 6.0, size=(HEIGHT, WIDTH)).astype(np.float32)
    depth[rng.random((HEIGHT, WIDTH)) < 0.1] = 0.0
    q = rng.normal(size=4)
    T = pose_from_vector(np.concatenate([rng.uniform(-5, 5, 3), q]))
    K = Intrinsics(fx=292.5 + kid * 1e-3, fy=292.5, cx=159.75, cy=119.75, width=WIDTH, height=HEIGHT)
    return Keyframe(colour, depth, K, T, stamp=kid / 30.0, id=kid)


def main(argv: list[str]) -> int:
    from worldfm_ros.core import world_file

    world = world_file.WorldFile.open(argv[1], create_if_missing=True)
    die_after = int(argv[2]) if len(argv) > 2 else None
    ids = world.ids()
    kid = ids[-1] + 1 if ids else 0
    print(f"READY {kid}", flush=True)
    appended = 0
    while die_after is None or appended < die_after:
        world.append(make_keyframe(kid))
        print(f"ACK {kid}", flush=True)
        kid += 1
        appended += 1
    # Crash inside a transaction whose pages already sit in the WAL (private API on purpose).
    con = world._con
    con.execute("PRAGMA cache_size=1")
    row = world_file._encode_row(make_keyframe(kid), argv[1])
    con.execute("BEGIN")
    con.execute(f"INSERT INTO keyframes({world_file._COLUMNS}) VALUES ({','.join('?' * 15)})", row)
    print(f"INFLIGHT {kid} {os.path.getsize(argv[1] + '-wal')}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
