"""``sensor_msgs/Image`` / ``CameraInfo`` <-> numpy, in one place and without cv_bridge.

(cv_bridge for ROS 2 is not on PyPI, and PyPI's ``cv-bridge`` is the ROS 1 one.)

Incoming messages are read duck-typed: anything with the fields ``height``, ``width``,
``encoding``, ``is_bigendian``, ``step`` and ``data`` (bytes, ``array.array('B')``, a numpy
``uint8`` array or a list of ints) works, e.g. a rosbags message. Outgoing messages are
``sensor_msgs.msg`` instances, imported only when a message is built.

Conventions (../shared/CONTRACT.md):
- colour: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8`` in -> ``uint8 [H, W, 3]`` RGB out
  (alpha dropped, grey replicated); rendered colour goes out as ``rgb8``;
- depth: ``16UC1`` (also ``mono16``) millimetres, 0 and 65535 (the drivers' "no return"
  / saturated value) = invalid; ``32FC1`` metres, 0 / NaN /
  +-inf = invalid -> ``float32 [H, W]`` metres with 0 = invalid (negative values, which no
  sensor measures, count as invalid too); rendered depth goes out as ``32FC1`` metres;
- ``step`` (row length in bytes, padding included) and ``is_bigendian`` are honoured.

Every malformed input raises :class:`ImageConversionError` (an ``InvalidImageError``) naming
the encoding and size.
"""

from __future__ import annotations

import array
import sys
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from worldfm_ros.core.camera import MAX_IMAGE_SIDE, Intrinsics
from worldfm_ros.core.errors import InvalidImageError, InvalidIntrinsicsError
from worldfm_ros.core.undistort import Undistorter, needs_undistortion

#: Depth encodings: millimetres in unsigned 16 bit.
DEPTH_MM_ENCODINGS = ("16UC1", "mono16")
#: 16-bit depth value that means "no measurement" (besides 0).
DEPTH_MM_UNKNOWN = 65535
#: Depth encodings: metres in 32-bit float.
DEPTH_M_ENCODINGS = ("32FC1",)


class ImageConversionError(InvalidImageError):
    """A message that cannot be converted: unknown encoding, bad size or step, short buffer."""


@dataclass(frozen=True)
class _Layout:
    channels: int
    itemsize: int  # bytes per channel value
    kind: str  # numpy kind: "u" unsigned int, "f" float


#: Channel order of each colour encoding, as indices into (R, G, B) taken from the source.
_COLOUR_ENCODINGS = {
    "rgb8": (_Layout(3, 1, "u"), (0, 1, 2)),
    "rgba8": (_Layout(4, 1, "u"), (0, 1, 2)),
    "bgr8": (_Layout(3, 1, "u"), (2, 1, 0)),
    "bgra8": (_Layout(4, 1, "u"), (2, 1, 0)),
    "mono8": (_Layout(1, 1, "u"), (0, 0, 0)),
}
_DEPTH_LAYOUTS = {
    **{encoding: _Layout(1, 2, "u") for encoding in DEPTH_MM_ENCODINGS},
    **{encoding: _Layout(1, 4, "f") for encoding in DEPTH_M_ENCODINGS},
}

COLOUR_ENCODINGS = tuple(_COLOUR_ENCODINGS)
DEPTH_ENCODINGS = DEPTH_MM_ENCODINGS + DEPTH_M_ENCODINGS


def _describe(msg: Any) -> str:
    return f"{getattr(msg, 'encoding', '?')!r} image of {getattr(msg, 'width', '?')}x{getattr(msg, 'height', '?')}"


def _pixels(msg: Any, layout: _Layout) -> np.ndarray:
    """The message's pixels as ``[H, W, C]`` in the native byte order, copied out of ``data``."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    what = _describe(msg)
    if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
        raise ImageConversionError(
            f"{what}: width and height must be in [1, {MAX_IMAGE_SIDE}]", (width, height)
        )
    row_bytes = width * layout.channels * layout.itemsize
    if step < row_bytes:
        raise ImageConversionError(
            f"{what}: step {step} is shorter than a row ({row_bytes} bytes)", step
        )
    data = msg.data
    if isinstance(data, np.ndarray):
        buffer = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    elif isinstance(data, (bytes, bytearray, memoryview, array.array)):
        buffer = np.frombuffer(data, dtype=np.uint8)
    else:
        buffer = np.asarray(data, dtype=np.uint8).reshape(-1)
    needed = step * (height - 1) + row_bytes  # the last row's padding may be left out
    if buffer.size < needed:
        raise ImageConversionError(
            f"{what}: data holds {buffer.size} bytes, step {step} x {height} rows needs {needed}",
            buffer.size,
        )
    rows = np.lib.stride_tricks.as_strided(buffer, shape=(height, row_bytes), strides=(step, 1))
    order = ">" if int(msg.is_bigendian) else "<"
    dtype = np.dtype(f"{order}{layout.kind}{layout.itemsize}")
    values = np.ascontiguousarray(rows).view(dtype).reshape(height, width, layout.channels)
    return values.astype(dtype.newbyteorder("="), copy=False)


def image_to_rgb(msg: Any) -> np.ndarray:
    """Colour ``Image`` -> ``uint8 [H, W, 3]`` RGB (a copy, independent of the message)."""
    entry = _COLOUR_ENCODINGS.get(msg.encoding)
    if entry is None:
        raise ImageConversionError(
            f"{_describe(msg)}: unsupported colour encoding (supported: {', '.join(COLOUR_ENCODINGS)})",
            msg.encoding,
        )
    layout, order = entry
    pixels = _pixels(msg, layout)
    return np.ascontiguousarray(pixels[:, :, list(order)])


def image_to_depth(msg: Any) -> np.ndarray:
    """Depth ``Image`` -> ``float32 [H, W]`` metres, 0 = invalid (a copy).

    ``16UC1``/``mono16`` are millimetres (0 and 65535 are invalid); ``32FC1`` is metres
    with 0, NaN, +-inf and negative values mapped to 0. (The node's ``depth.min_m`` /
    ``depth.max_m`` range is applied later, by the world service.)
    """
    layout = _DEPTH_LAYOUTS.get(msg.encoding)
    if layout is None:
        raise ImageConversionError(
            f"{_describe(msg)}: unsupported depth encoding (supported: {', '.join(DEPTH_ENCODINGS)})",
            msg.encoding,
        )
    values = _pixels(msg, layout)[:, :, 0]
    if msg.encoding in DEPTH_MM_ENCODINGS:
        depth = values.astype(np.float32) / np.float32(1000.0)
        depth[values == DEPTH_MM_UNKNOWN] = 0.0
        return depth
    depth = values.astype(np.float32, copy=True)
    depth[~(np.isfinite(depth) & (depth > 0))] = 0.0
    return depth


def _new_image(height: int, width: int, encoding: str, step: int, pixels: np.ndarray,
               stamp: Any, frame_id: str):
    from sensor_msgs.msg import Image  # ROS import kept out of module import

    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = height, width
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == "big")  # pixels are written in native order
    msg.step = step
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(pixels).reshape(-1).view(np.uint8).data)
    msg.data = data
    return msg


def rgb_to_image(rgb: np.ndarray, stamp: Any = None, frame_id: str = ""):
    """``uint8 [H, W, 3]`` RGB -> ``sensor_msgs/Image`` ``rgb8``.

    ``stamp`` is a ``builtin_interfaces/Time`` (left at zero when None).
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageConversionError(
            f"rgb8 needs a uint8 [H, W, 3] array, got {rgb.dtype} {rgb.shape}", rgb.shape
        )
    height, width = rgb.shape[:2]
    _check_size(width, height, "rgb8")
    return _new_image(height, width, "rgb8", 3 * width, rgb, stamp, frame_id)


def depth_to_image(depth: np.ndarray, stamp: Any = None, frame_id: str = ""):
    """``float32 [H, W]`` metres (0 = unknown) -> ``sensor_msgs/Image`` ``32FC1`` metres.

    Non-finite and negative values are written as 0 (unknown).
    """
    depth = np.asarray(depth)
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
        raise ImageConversionError(
            f"32FC1 needs a float [H, W] array, got {depth.dtype} {depth.shape}", depth.shape
        )
    height, width = depth.shape
    _check_size(width, height, "32FC1")
    out = depth.astype(np.float32, copy=True)
    out[~(np.isfinite(out) & (out > 0))] = 0.0
    return _new_image(height, width, "32FC1", 4 * width, out, stamp, frame_id)


def _check_size(width: int, height: int, encoding: str) -> None:
    if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
        raise ImageConversionError(
            f"{encoding} image of {width}x{height}: width and height must be in [1, {MAX_IMAGE_SIDE}]",
            (width, height),
        )


def camera_info_to_intrinsics(msg: Any) -> Intrinsics:
    """``CameraInfo`` (``width``, ``height``, ``k``) -> :class:`Intrinsics`.

    Raises :class:`InvalidIntrinsicsError` (zero / non-finite focal length, non-pinhole
    ``k``) or :class:`InvalidSizeError` (zero or oversized image). ``d`` is not applied here:
    see :func:`undistort_rgbd`.
    """
    k = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    if k.size != 9:
        raise InvalidIntrinsicsError(f"CameraInfo.k must have 9 entries, got {k.size}", k)
    if k[1] != 0.0 or k[3] != 0.0 or k[6] != 0.0 or k[7] != 0.0 or k[8] != 1.0:
        raise InvalidIntrinsicsError(
            f"CameraInfo.k is not a pinhole matrix [fx 0 cx; 0 fy cy; 0 0 1]: {k.tolist()}", k
        )
    return Intrinsics.from_matrix(k, int(msg.width), int(msg.height))


def undistort_rgbd(
    colour: np.ndarray,  # uint8 [H, W, 3]
    depth: np.ndarray,  # float32 [H, W] metres, 0 = invalid
    camera_info: Any,
    undistorter: Optional[Undistorter] = None,
) -> tuple[np.ndarray, np.ndarray, Intrinsics]:
    """Undistort a registered colour + depth pair described by ``camera_info``.

    Returns ``(colour, depth, intrinsics)``: the undistorted pinhole images and their
    intrinsics. The output keeps the image size and ``K`` of ``camera_info`` (the new K is the
    old K), colour is resampled bilinearly and depth by nearest neighbour (blending depths
    across an edge would invent surfaces); pixels that map outside the source become 0.
    With all of ``d`` zero the inputs come back unchanged. Pass a long-lived
    :class:`~worldfm_ros.core.undistort.Undistorter` to reuse its remap tables.
    """
    intrinsics = camera_info_to_intrinsics(camera_info)
    d = np.asarray(camera_info.d, dtype=np.float64).reshape(-1)
    if not needs_undistortion(d):
        return colour, depth, intrinsics
    undistorter = undistorter if undistorter is not None else Undistorter()
    colour, depth = undistorter(colour, depth, intrinsics, d, camera_info.distortion_model)
    return colour, depth, intrinsics
