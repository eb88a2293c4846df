"""The world file: the keyframe memory persisted to one SQLite file.

Layout (format ``worldfm_world``, version 1):

* ``metadata(key TEXT PRIMARY KEY, value TEXT)``: ``format``, ``version``, ``created``
  (ISO 8601 UTC), ``created_unix`` [s], ``writer``, plus any extras the caller sets.
  Values are stored as JSON text.
* ``keyframes``: one row per keyframe, ``id INTEGER PRIMARY KEY`` (the memory's id, kept),
  ``stamp`` [s], intrinsics ``fx, fy, cx, cy`` [px] (REAL, i.e. float64: exact) and
  ``width, height`` [px], ``pose`` (128 bytes: ``T_world_cam`` as 16 little-endian float64,
  row-major: exact), ``colour`` (lossless PNG of the ``uint8 [H, W, 3]`` RGB image, stored
  as OpenCV's BGR), ``depth`` (zlib-compressed little-endian float32 metres: bit-exact),
  ``checksum`` (CRC-32 of the decoded colour, depth and pose bytes: catches damaged blobs)
  and ``extras`` (JSON of ``Keyframe.extras``).

Crash safety: the file runs in WAL mode with ``synchronous=FULL`` and every append is its
own transaction, so a killed process (or a power cut) loses at most the keyframe being
written. :func:`write_world` builds a complete file next to the target and renames it over
the target, so a reader sees the old file or the new one, never a half-written one.

Exclusive writer: a read-write open takes an exclusive ``flock`` on ``<path>.lock`` (and
writes the holder's pid, host and command line into it), so a second writer (another node on
the same ``world_path``) is refused with an error naming the file and the holder, instead of
both appending and the file ending up with a mix of both. The kernel releases the lock when
the holder exits, even by ``kill -9``; read-only opens take no lock.

Untrusted files: a keyframe's declared ``width x height`` is checked (at most 8192 a side)
and bounds everything decoded from it: depth is inflated with ``zlib.decompressobj`` and
``max_length``, and the PNG header's dimensions are read before the image is decoded, so a
decompression bomb costs nothing but an error naming the file and the keyframe id.

Temporary files: :func:`write_world` builds ``.NAME.tmp-PID-XXXXXXXX`` (plus its
``-journal``) beside ``NAME``; a writer killed by ``kill -9`` leaves them behind. Those of
a process that no longer runs are removed by the next write of ``NAME`` and by every
read-write open of ``NAME`` (i.e. when the node starts on ``world_path``).

Depth codec choice (measured on 7-Scenes ``redkitchen`` depth at 320x240): zlib of the raw
float32 bytes keeps 22 % of the raw size, against 32-36 % for a PNG of the float bits split
into two 16-bit planes and 38-40 % for byte-shuffled zlib; sensor depth is a small set of
repeated values, which zlib's string matching finds and byte shuffling destroys.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import re
import socket
import sys
import sqlite3
import threading
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Iterator, Optional, Sequence
from urllib.parse import quote

import cv2
import numpy as np

from worldfm_ros.core.camera import MAX_IMAGE_SIDE, Intrinsics
from worldfm_ros.core.errors import WorldFileError, WorldFMError
from worldfm_ros.core.keyframe import Keyframe

#: Value of the ``format`` metadata entry of every world file.
FORMAT_NAME = "worldfm_world"
#: Newest format version this code reads and the one it writes.
FORMAT_VERSION = 1
#: SQLite ``application_id`` header field ("WFMW"): marks the file type to tools like ``file``.
APPLICATION_ID = 0x57464D57
#: PNG zlib level for colour (0-9): 3 is 2.6 % smaller than OpenCV's default 1 for +2 ms.
PNG_LEVEL = 3
#: zlib level for depth.
DEPTH_ZLIB_LEVEL = 6

_COLOUR_CODEC = "png-bgr8"
_DEPTH_CODEC = "zlib-f32le"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SCHEMA = """
CREATE TABLE metadata (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE keyframes (
    id           INTEGER PRIMARY KEY NOT NULL,
    stamp        REAL    NOT NULL,
    fx           REAL    NOT NULL,
    fy           REAL    NOT NULL,
    cx           REAL    NOT NULL,
    cy           REAL    NOT NULL,
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    pose         BLOB    NOT NULL,
    colour_codec TEXT    NOT NULL,
    colour       BLOB    NOT NULL,
    depth_codec  TEXT    NOT NULL,
    depth        BLOB    NOT NULL,
    checksum     INTEGER NOT NULL,
    extras       TEXT    NOT NULL
);
"""
_COLUMNS = (
    "id, stamp, fx, fy, cx, cy, width, height, pose, colour_codec, colour, depth_codec, depth, "
    "checksum, extras"
)


# ---------------------------------------------------------------------------- encoding
def _checksum(colour: np.ndarray, depth: np.ndarray, pose: bytes) -> int:
    crc = zlib.crc32(memoryview(np.ascontiguousarray(colour)).cast("B"))
    crc = zlib.crc32(memoryview(np.ascontiguousarray(depth)).cast("B"), crc)
    return zlib.crc32(pose, crc)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _encode_row(keyframe: Keyframe, path: str) -> tuple:
    """The ``keyframes`` row of one keyframe (see the module docstring for the layout)."""
    if not isinstance(keyframe, Keyframe):
        raise WorldFileError(f"world file {path}: expected a Keyframe, got {type(keyframe).__name__}", keyframe)
    kid = keyframe.id
    if isinstance(kid, bool) or not isinstance(kid, (int, np.integer)) or kid < 0:
        raise WorldFileError(f"world file {path}: keyframe id must be an integer >= 0, got {kid!r}", kid)
    colour = keyframe.colour  # uint8 [H, W, 3] RGB
    depth = keyframe.depth.astype("<f4", copy=False)  # float32 [H, W]
    pose = keyframe.T_world_cam.astype("<f8", copy=False).tobytes(order="C")
    ok, png = cv2.imencode(".png", colour[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    if not ok:
        raise WorldFileError(f"world file {path}: PNG encoding of keyframe {kid} failed", kid)
    depth_blob = zlib.compress(memoryview(np.ascontiguousarray(depth)).cast("B"), DEPTH_ZLIB_LEVEL)
    try:
        extras = json.dumps(keyframe.extras, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise WorldFileError(f"world file {path}: extras of keyframe {kid} cannot be stored: {exc}", kid) from exc
    K = keyframe.intrinsics
    return (
        int(kid), float(keyframe.stamp), float(K.fx), float(K.fy), float(K.cx), float(K.cy),
        int(K.width), int(K.height), pose, _COLOUR_CODEC, png.tobytes(), _DEPTH_CODEC, depth_blob,
        _checksum(colour, depth, pose), extras,
    )


def _decode_row(row: Sequence, path: str) -> Keyframe:
    """Inverse of :func:`_encode_row`; raises :class:`WorldFileError` on any damage."""
    (kid, stamp, fx, fy, cx, cy, width, height, pose, colour_codec, colour_blob, depth_codec,
     depth_blob, checksum, extras) = row
    where = f"world file {path}: keyframe {kid}"
    if colour_codec != _COLOUR_CODEC or depth_codec != _DEPTH_CODEC:
        raise WorldFileError(f"{where} uses unknown codecs {colour_codec!r}/{depth_codec!r}", kid)
    try:
        if not (isinstance(width, int) and isinstance(height, int)
                and 1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
            raise ValueError(f"declared size {width!r}x{height!r} is outside [1, {MAX_IMAGE_SIDE}] a side")
        png_size = _png_size(colour_blob)
        if png_size != (width, height):
            raise ValueError(f"colour PNG header says {png_size[0]}x{png_size[1]}, the keyframe {width}x{height}")
        raw_depth = _inflate_exactly(depth_blob, width * height * 4)
        bgr = cv2.imdecode(np.frombuffer(colour_blob, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None or bgr.shape != (height, width, 3):
            raise ValueError(f"colour image does not decode to {width}x{height}")
        if len(pose) != 128:
            raise ValueError(f"pose blob has {len(pose)} bytes, expected 128")
        colour = np.ascontiguousarray(bgr[:, :, ::-1])
        depth = np.frombuffer(raw_depth, "<f4").reshape(height, width).astype(np.float32)
        if _checksum(colour, depth, pose) != checksum:
            raise ValueError("checksum mismatch")
        T = np.frombuffer(pose, "<f8").reshape(4, 4).astype(np.float64)
        keyframe = Keyframe(
            colour=colour, depth=depth,
            intrinsics=Intrinsics(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height),
            T_world_cam=T, stamp=stamp, id=int(kid), extras=json.loads(extras),
        )
    except (ValueError, TypeError, zlib.error, cv2.error, WorldFMError) as exc:
        raise WorldFileError(f"{where} is corrupt: {exc}", kid) from exc
    except MemoryError as exc:
        raise WorldFileError(f"{where} could not be decoded: out of memory", kid) from exc
    return keyframe


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(blob: bytes) -> tuple[int, int]:
    """``(width, height)`` from a PNG's IHDR chunk, without decoding the image."""
    head = bytes(blob[:24])
    if len(head) < 24 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise ValueError("colour blob is not a PNG image")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _inflate_exactly(blob: bytes, size: int) -> bytes:
    """zlib-inflate ``blob``, which must yield exactly ``size`` bytes; never allocates more
    than ``size + 1`` bytes, however far the stream would inflate."""
    inflater = zlib.decompressobj()
    raw = inflater.decompress(blob, size + 1)
    if len(raw) > size or inflater.unconsumed_tail:
        raise ValueError(f"depth blob inflates to more than the {size} bytes of its declared size")
    if len(raw) < size or not inflater.eof:
        raise ValueError(f"depth blob inflates to {len(raw)} bytes, expected {size}")
    return raw


def _default_workers() -> int:
    return min(4, os.cpu_count() or 1)


# ---------------------------------------------------------------------------- file checks
def _fspath(path) -> str:
    try:
        p = os.fspath(path)
    except TypeError as exc:
        raise WorldFileError(f"world file path must be a string or path, got {path!r}", path) from exc
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    if not p:
        raise WorldFileError("world file path is empty", p)
    return p


def _check_header(path: str) -> None:
    """Refuse files that are not SQLite or are shorter than their header says (truncated).

    SQLite itself opens a 0-byte file as a new database and reads missing pages as absent,
    so these checks are done on the raw header first.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError as exc:
        raise WorldFileError(f"world file {path}: cannot be read: {exc.strerror or exc}", path) from exc
    if size == 0:
        raise WorldFileError(f"world file {path}: is empty (0 bytes), not a world file", path)
    if not header.startswith(_SQLITE_MAGIC):
        raise WorldFileError(f"world file {path}: is not a SQLite database (not a world file)", path)
    if len(header) < 100:
        raise WorldFileError(f"world file {path}: is truncated ({size} bytes, header is 100)", path)
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    change_counter = int.from_bytes(header[24:28], "big")
    n_pages = int.from_bytes(header[28:32], "big")
    valid_for = int.from_bytes(header[92:96], "big")
    # The in-header size is authoritative when its "valid for" counter matches; pages may
    # also live in a WAL not yet checkpointed, so only a file without WAL is checked.
    if valid_for == change_counter and n_pages and not os.path.exists(path + "-wal"):
        expected = n_pages * page_size
        if size < expected:
            raise WorldFileError(
                f"world file {path}: is truncated ({size} bytes, its header says {expected})", path
            )


def _sqlite_error(path: str, exc: sqlite3.Error) -> WorldFileError:
    text = str(exc)
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        reason = f"is corrupt or truncated ({text})"
    else:
        reason = f"SQLite error: {text}"
    return WorldFileError(f"world file {path}: {reason}", path)


def _connect(path: str, mode: str) -> sqlite3.Connection:
    uri = f"file:{quote(os.path.abspath(path))}?mode={mode}"
    try:
        con = sqlite3.connect(uri, uri=True, timeout=10.0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise _sqlite_error(path, exc) from exc
    return con


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


def _new_metadata(extra: Optional[dict]) -> dict:
    now = time.time()
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "created": datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat(),
        "created_unix": now,
        "writer": "worldfm_ros",
    }
    for key, value in (extra or {}).items():
        if key in ("format", "version"):
            raise WorldFileError(f"metadata key {key!r} is reserved", key)
        meta[str(key)] = value
    return meta


def _build_file(tmp: str, keyframes: Iterable[Keyframe], metadata: Optional[dict], final_path: str) -> int:
    """Write a complete, self-contained world file (rollback journal, no WAL) to ``tmp``."""
    meta = _new_metadata(metadata)
    con = _connect(tmp, "rwc")
    n = 0
    try:
        con.execute("PRAGMA journal_mode=DELETE")
        con.execute(f"PRAGMA application_id={APPLICATION_ID}")
        con.execute("BEGIN")
        for stmt in _SCHEMA.split(";"):
            if stmt.strip():
                con.execute(stmt)
        con.executemany(
            "INSERT INTO metadata(key, value) VALUES (?, ?)",
            [(k, json.dumps(v, default=_json_default)) for k, v in meta.items()],
        )
        # Encoding dominates (PNG and zlib release the GIL): spread it over threads.
        with ThreadPoolExecutor(max_workers=_default_workers()) as pool:
            for row in pool.map(lambda kf: _encode_row(kf, final_path), keyframes):
                try:
                    con.execute(f"INSERT INTO keyframes({_COLUMNS}) VALUES ({','.join('?' * 15)})", row)
                except sqlite3.IntegrityError as exc:
                    raise WorldFileError(
                        f"world file {final_path}: keyframe id {row[0]} appears twice", row[0]
                    ) from exc
                n += 1
        con.execute("COMMIT")
    except sqlite3.Error as exc:
        raise _sqlite_error(final_path, exc) from exc
    finally:
        con.close()
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    return n


def _retire_wal(path: str) -> None:
    """Before renaming a new file over ``path``: make sure no WAL of the old file remains.

    SQLite replays a ``<path>-wal`` file into whatever database is at ``path``, so a stale
    WAL left beside the old file would corrupt the new one.
    """
    wal, shm = path + "-wal", path + "-shm"
    if not os.path.exists(wal) and not os.path.exists(shm):
        return
    try:
        is_sqlite = os.path.getsize(path) > 0 and open(path, "rb").read(16) == _SQLITE_MAGIC
    except OSError:
        is_sqlite = False
    if is_sqlite:
        # Leaving WAL mode needs exclusive access: it fails with "locked" while another
        # connection has the file open, and then the WAL is live and must stay.
        mode, error = None, None
        con = _connect(path, "rw")
        try:
            mode = con.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
        except sqlite3.Error as exc:
            error = exc
        finally:
            con.close()
        if (error is not None and ("locked" in str(error) or "busy" in str(error))) or (
            error is None and str(mode).lower() != "delete"
        ):
            raise WorldFileError(
                f"world file {path}: cannot be replaced while it is open elsewhere ({error or mode})", path
            )
        # Otherwise the WAL is folded in and gone, or the old file is damaged: its WAL is stale.
    for stale in (wal, shm):
        try:
            os.remove(stale)
        except FileNotFoundError:
            pass


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def remove_stale_temp_files(path) -> list[str]:
    """Remove the temporary files that :func:`write_world` left beside ``path`` when its
    process was killed (``.NAME.tmp-PID-XXXXXXXX`` and ``...-journal`` whose PID no longer
    runs on this host); returns the paths removed. Files of live writers are left alone."""
    path = os.path.abspath(_fspath(path))
    directory, name = os.path.split(path)
    pattern = re.compile(r"\." + re.escape(name) + r"\.tmp-(\d+)-[0-9a-f]{8}(-journal)?")
    removed = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or _pid_running(pid):
            continue
        try:
            os.remove(os.path.join(directory, entry))
            removed.append(os.path.join(directory, entry))
        except OSError:
            pass  # raced with another cleaner, or not ours to remove
    return removed


class _WriterLock:
    """Exclusive ``flock`` on ``<path>.lock``, held while a world file is open for writing."""

    def __init__(self, path: str):
        self.lock_path = path + ".lock"
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise WorldFileError(f"world file {path}: cannot create its lock file {self.lock_path}: "
                                 f"{exc.strerror or exc}", path) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown process"
            finally:
                os.close(fd)
            raise WorldFileError(
                f"world file {path}: is already open for writing by another process ({holder}); "
                f"two writers would mix their keyframes. Stop it or use another world_path", path) from None
        holder = f"pid {os.getpid()} on {socket.gethostname()}: {' '.join(sys.argv)[:300]}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode("utf-8"), 0)
        self._fd: Optional[int] = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock


def _atomic_write(path: str, keyframes: Iterable[Keyframe], metadata: Optional[dict]) -> int:
    directory = os.path.dirname(os.path.abspath(path))
    remove_stale_temp_files(path)
    if os.path.isdir(path):
        raise WorldFileError(f"world file {path}: is a directory", path)
    if not os.path.isdir(directory):
        raise WorldFileError(f"world file {path}: directory {directory} does not exist", path)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        n = _build_file(tmp, keyframes, metadata, path)
        _retire_wal(path)
        os.replace(tmp, path)
    except OSError as exc:
        if isinstance(exc, WorldFileError):
            raise
        raise WorldFileError(f"world file {path}: cannot be written: {exc}", path) from exc
    finally:
        for leftover in (tmp, tmp + "-journal"):
            try:
                os.remove(leftover)
            except FileNotFoundError:
                pass
    _fsync_dir(directory)
    return n


# ---------------------------------------------------------------------------- public API
def write_world(path, keyframes: Iterable[Keyframe], *, metadata: Optional[dict] = None) -> int:
    """Write a complete world file at exactly ``path`` (no extension added), atomically.

    The file is built beside ``path`` and renamed over it, so an existing file is replaced
    only once the new one is complete; on any error the old file is left as it was. Every
    keyframe needs a distinct ``id >= 0``. ``metadata`` adds JSON-serialisable entries.
    Returns the number of keyframes written. Raises :class:`WorldFileError` (empty path,
    missing directory, bad id, a file at ``path`` still open elsewhere, disk errors).
    """
    return _atomic_write(_fspath(path), keyframes, metadata)


def read_world(path) -> list[Keyframe]:
    """All keyframes of the world file at ``path``, in id order."""
    with WorldFile.open(path, read_only=True) as world:
        return world.load()


class WorldFile:
    """A world file opened for appending, evicting and loading keyframes.

    Use :meth:`create` or :meth:`open` (not the constructor); close with :meth:`close` or a
    ``with`` block. Methods are thread-safe (one lock around the SQLite connection).
    """

    def __init__(self, path: str, connection: sqlite3.Connection, metadata: dict, read_only: bool,
                 writer_lock: Optional[_WriterLock] = None):
        self._path = path
        self._writer_lock = writer_lock
        self._con: Optional[sqlite3.Connection] = connection
        self._metadata = metadata
        self._read_only = read_only
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path, *, overwrite: bool = False, metadata: Optional[dict] = None) -> "WorldFile":
        """Create an empty world file at ``path`` and open it.

        The file appears complete or not at all. An existing file is an error unless
        ``overwrite`` is set (then it is replaced atomically).
        """
        path = _fspath(path)
        if os.path.exists(path) and not overwrite:
            raise WorldFileError(f"world file {path}: already exists", path)
        _atomic_write(path, (), metadata)
        return cls.open(path)

    @classmethod
    def open(cls, path, *, create_if_missing: bool = False, read_only: bool = False) -> "WorldFile":
        """Open an existing world file (or create it with ``create_if_missing``).

        Validates the file: it must exist, be SQLite, not be truncated, carry metadata
        ``format == "worldfm_world"`` and a version this code reads. A read-write open
        switches the file to WAL mode (crash-safe appends). Raises :class:`WorldFileError`
        naming the file and the reason.
        """
        path = _fspath(path)
        if not os.path.exists(path):
            if create_if_missing and not read_only:
                return cls.create(path)
            raise WorldFileError(f"world file {path}: does not exist", path)
        if os.path.isdir(path):
            raise WorldFileError(f"world file {path}: is a directory", path)
        _check_header(path)
        lock = None
        if not read_only:
            lock = _WriterLock(path)
            remove_stale_temp_files(path)
        try:
            con = _connect(path, "ro" if read_only else "rw")
        except WorldFileError:
            if lock is not None:
                lock.release()
            raise
        try:
            metadata = cls._read_metadata(con, path)
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "keyframes" not in tables:
                raise WorldFileError(f"world file {path}: has no keyframes table (damaged)", path)
            if not read_only:
                mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise WorldFileError(f"world file {path}: cannot switch to WAL mode (got {mode})", path)
                con.execute("PRAGMA synchronous=FULL")
        except (sqlite3.Error, WorldFileError) as exc:
            con.close()
            if lock is not None:
                lock.release()
            if isinstance(exc, sqlite3.Error):
                raise _sqlite_error(path, exc) from exc
            raise
        return cls(path, con, metadata, read_only, lock)

    @staticmethod
    def _read_metadata(con: sqlite3.Connection, path: str) -> dict:
        try:
            rows = con.execute("SELECT key, value FROM metadata").fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                raise WorldFileError(
                    f"world file {path}: is a SQLite file without worldfm metadata (not a world file)", path
                ) from exc
            raise
        meta = {}
        for key, value in rows:
            try:
                meta[key] = json.loads(value)
            except (TypeError, ValueError):
                meta[key] = value
        if meta.get("format") != FORMAT_NAME:
            raise WorldFileError(
                f"world file {path}: has format {meta.get('format')!r}, expected {FORMAT_NAME!r} "
                "(not a world file)", meta.get("format"),
            )
        version = meta.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise WorldFileError(f"world file {path}: has an invalid format version {version!r}", version)
        if version > FORMAT_VERSION:
            raise WorldFileError(
                f"world file {path}: has format version {version}, newer than the supported "
                f"{FORMAT_VERSION}; update worldfm_ros to read it", version,
            )
        return meta

    # ------------------------------------------------------------------ plumbing
    @property
    def path(self) -> str:
        return self._path

    @property
    def metadata(self) -> dict:
        """A copy of the metadata entries (JSON-decoded values)."""
        return dict(self._metadata)

    @property
    def closed(self) -> bool:
        return self._con is None

    def __enter__(self) -> "WorldFile":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"WorldFile({self._path!r}{', closed' if self.closed else ''})"

    def close(self) -> None:
        """Close the file (idempotent); a clean close folds the WAL back into the file."""
        with self._lock:
            if self._con is not None:
                try:
                    self._con.close()
                finally:
                    self._con = None
                    if self._writer_lock is not None:
                        self._writer_lock.release()

    def _run(self, fn, *, write: bool):
        with self._lock:
            if self._con is None:
                raise WorldFileError(f"world file {self._path}: is closed", self._path)
            if write and self._read_only:
                raise WorldFileError(f"world file {self._path}: is opened read-only", self._path)
            try:
                return fn(self._con)
            except sqlite3.Error as exc:
                if self._con.in_transaction:
                    self._con.rollback()
                raise _sqlite_error(self._path, exc) from exc

    # ------------------------------------------------------------------ writing
    def append(self, keyframe: Keyframe, *, replace: bool = False) -> None:
        """Store one keyframe in its own committed transaction.

        ``keyframe.id`` must be an integer ``>= 0`` not yet in the file, unless ``replace``
        is set (then a stored keyframe of that id is overwritten).
        """
        row = _encode_row(keyframe, self._path)  # outside the lock: encoding is the slow part
        verb = "INSERT OR REPLACE" if replace else "INSERT"

        def op(con):
            try:
                con.execute(f"{verb} INTO keyframes({_COLUMNS}) VALUES ({','.join('?' * 15)})", row)
            except sqlite3.IntegrityError as exc:
                raise WorldFileError(
                    f"world file {self._path}: keyframe id {row[0]} is already stored", row[0]
                ) from exc

        self._run(op, write=True)

    def remove(self, keyframe_id: int) -> bool:
        """Delete one keyframe (eviction); returns whether it was stored."""
        return self._run(
            lambda con: con.execute("DELETE FROM keyframes WHERE id = ?", (int(keyframe_id),)).rowcount > 0,
            write=True,
        )

    def clear(self) -> None:
        """Delete every keyframe and give the space back to the file system."""
        def op(con):
            con.execute("DELETE FROM keyframes")
            con.execute("VACUUM")
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        self._run(op, write=True)

    def set_metadata(self, key: str, value: Any) -> None:
        """Set one JSON-serialisable metadata entry (``format`` and ``version`` are reserved)."""
        if key in ("format", "version"):
            raise WorldFileError(f"world file {self._path}: metadata key {key!r} is reserved", key)
        text = json.dumps(value, default=_json_default)
        self._run(lambda con: con.execute(
            "INSERT OR REPLACE INTO metadata(key, value) VALUES (?, ?)", (str(key), text)), write=True)
        self._metadata[str(key)] = json.loads(text)

    def checkpoint(self) -> None:
        """Fold the WAL into the main file, so that it alone is a complete copy."""
        self._run(lambda con: con.execute("PRAGMA wal_checkpoint(TRUNCATE)"), write=True)

    # ------------------------------------------------------------------ reading
    def count(self) -> int:
        """Number of stored keyframes."""
        return self._run(lambda con: con.execute("SELECT COUNT(*) FROM keyframes").fetchone()[0], write=False)

    def ids(self) -> list[int]:
        """Stored keyframe ids, ascending."""
        return self._run(
            lambda con: [r[0] for r in con.execute("SELECT id FROM keyframes ORDER BY id")], write=False
        )

    def get(self, keyframe_id: int) -> Keyframe:
        """One keyframe by id; :class:`WorldFileError` if it is not stored."""
        row = self._run(lambda con: con.execute(
            f"SELECT {_COLUMNS} FROM keyframes WHERE id = ?", (int(keyframe_id),)).fetchone(), write=False)
        if row is None:
            raise WorldFileError(f"world file {self._path}: has no keyframe {keyframe_id}", keyframe_id)
        return _decode_row(row, self._path)

    def iter_keyframes(self) -> Iterator[Keyframe]:
        """Stored keyframes one at a time, in id order (reads one row per step)."""
        for kid in self.ids():
            yield self.get(kid)

    def load(self, *, workers: Optional[int] = None) -> list[Keyframe]:
        """Every stored keyframe, in id order, ids preserved.

        Rows are decoded on ``workers`` threads (default: up to 4, one per CPU; PNG and zlib
        decoding release the GIL, so 2 threads load about 1.9x faster than 1).
        """
        rows = self._run(
            lambda con: con.execute(f"SELECT {_COLUMNS} FROM keyframes ORDER BY id").fetchall(), write=False
        )
        workers = workers or _default_workers()
        if workers <= 1 or len(rows) < 2:
            return [_decode_row(row, self._path) for row in rows]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda row: _decode_row(row, self._path), rows))
