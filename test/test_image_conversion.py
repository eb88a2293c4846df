"""Image <-> numpy conversions: round trips, padded rows, byte order, and every typed error.

Oracles: messages are assembled by hand from known arrays (channel permutations, padding
bytes, explicit byte orders), independently of the code under test.
"""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image

from worldfm_ros.core.errors import InvalidImageError, InvalidIntrinsicsError, InvalidSizeError
from worldfm_ros.ros.image_conversion import (
    ImageConversionError,
    camera_info_to_intrinsics,
    depth_to_image,
    image_to_depth,
    image_to_rgb,
    rgb_to_image,
    undistort_rgbd,
)

RNG = np.random.default_rng(7)
PAD = 0xAB  # padding byte: must never leak into pixels


def padded_message(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False,
                   drop_last_padding: bool = False) -> SimpleNamespace:
    """A duck-typed Image with rows ``pad`` bytes longer than the pixels, in the given byte order."""
    height, width = pixels.shape[:2]
    dtype = pixels.dtype.newbyteorder(">" if bigendian else "<")
    rows = np.ascontiguousarray(pixels.astype(dtype)).reshape(height, -1).view(np.uint8)
    padding = np.full((height, pad), PAD, dtype=np.uint8)
    data = np.concatenate([rows, padding], axis=1).tobytes()
    if drop_last_padding and pad:
        data = data[:-pad]
    return SimpleNamespace(
        height=height, width=width, encoding=encoding, is_bigendian=int(bigendian),
        step=rows.shape[1] + pad, data=data,
    )


@pytest.fixture
def rgb() -> np.ndarray:
    return RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def test_rgb_round_trip_through_a_real_message(rgb):
    msg = rgb_to_image(rgb, frame_id="cam")
    assert isinstance(msg, Image)
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("rgb8", 7, 5, 21)
    assert msg.header.frame_id == "cam"
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


@pytest.mark.parametrize(
    "encoding, make",
    [
        ("rgb8", lambda c: c),
        ("bgr8", lambda c: c[:, :, ::-1]),
        ("rgba8", lambda c: np.dstack([c, np.full(c.shape[:2], 9, np.uint8)])),
        ("bgra8", lambda c: np.dstack([c[:, :, ::-1], np.full(c.shape[:2], 9, np.uint8)])),
    ],
)
@pytest.mark.parametrize("pad", [0, 3])
def test_colour_encodings_with_padded_rows_give_rgb(rgb, encoding, make, pad):
    out = image_to_rgb(padded_message(make(rgb), encoding, pad=pad))
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    np.testing.assert_array_equal(out, rgb)


def test_mono8_is_replicated_to_three_channels():
    grey = RNG.integers(0, 256, size=(4, 6), dtype=np.uint8)
    out = image_to_rgb(padded_message(grey[:, :, None], "mono8", pad=2))
    np.testing.assert_array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))


def test_result_is_a_copy_independent_of_the_message(rgb):
    msg = padded_message(rgb, "rgb8")
    msg.data = bytearray(msg.data)
    out = image_to_rgb(msg)
    msg.data[0] ^= 0xFF
    assert out[0, 0, 0] == rgb[0, 0, 0]
    out[0, 0, 0] ^= 0xFF  # writable
    assert out.flags.writeable


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pad", [0, 6])
def test_16uc1_millimetres_to_metres_in_either_byte_order(bigendian, pad):
    mm = RNG.integers(0, 65536, size=(4, 5), dtype=np.uint16)
    mm[0, 0] = 0
    mm[1, 2] = 1234
    mm[3, 4] = 65535
    depth = image_to_depth(padded_message(mm[:, :, None], "16UC1", pad=pad, bigendian=bigendian))
    assert depth.dtype == np.float32 and depth.shape == (4, 5)
    expected = np.where(mm == 65535, 0.0, mm.astype(np.float64) / 1000.0)  # 65535: no measurement
    np.testing.assert_allclose(depth, expected, rtol=1e-6)
    assert depth[0, 0] == 0.0 and depth[3, 4] == 0.0
    assert depth[1, 2] == np.float32(1.234)


@pytest.mark.parametrize("bigendian", [False, True])
def test_32fc1_metres_with_invalid_values_mapped_to_zero(bigendian):
    metres = np.array([[1.5, 0.0, np.nan], [np.inf, -np.inf, -2.0], [0.25, 7.0, 3.125]], np.float32)
    depth = image_to_depth(padded_message(metres[:, :, None], "32FC1", pad=4, bigendian=bigendian))
    expected = np.array([[1.5, 0, 0], [0, 0, 0], [0.25, 7.0, 3.125]], np.float32)
    np.testing.assert_array_equal(depth, expected)


def test_depth_round_trip_through_a_real_message():
    depth = RNG.uniform(0.2, 8.0, size=(6, 9)).astype(np.float32)
    depth[2, 3] = 0.0
    msg = depth_to_image(depth, frame_id="cam")
    assert (msg.encoding, msg.step, msg.width, msg.height) == ("32FC1", 36, 9, 6)
    np.testing.assert_array_equal(image_to_depth(msg), depth)


def test_depth_to_image_writes_non_finite_as_zero():
    depth = np.array([[np.nan, 1.0], [np.inf, -1.0]], np.float32)
    np.testing.assert_array_equal(image_to_depth(depth_to_image(depth)), [[0, 1.0], [0, 0]])


def test_last_row_may_lack_its_padding(rgb):
    out = image_to_rgb(padded_message(rgb, "rgb8", pad=5, drop_last_padding=True))
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("data_kind", ["bytes", "list", "numpy"])
def test_data_may_be_bytes_a_list_or_a_numpy_array(rgb, data_kind):
    msg = padded_message(rgb, "rgb8")
    if data_kind == "list":
        msg.data = list(msg.data)
    elif data_kind == "numpy":
        msg.data = np.frombuffer(msg.data, np.uint8)
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


def test_short_buffer_is_a_typed_error_naming_encoding_and_size(rgb):
    msg = padded_message(rgb, "bgr8", pad=2)
    msg.data = msg.data[: msg.step * 4]  # one row missing
    with pytest.raises(ImageConversionError, match=r"'bgr8' image of 7x5.*needs") as info:
        image_to_rgb(msg)
    assert isinstance(info.value, InvalidImageError)
    assert info.value.value == 4 * msg.step


def test_step_shorter_than_a_row_is_an_error(rgb):
    msg = padded_message(rgb, "rgb8")
    msg.step = 20
    with pytest.raises(ImageConversionError, match="step 20"):
        image_to_rgb(msg)


def test_unknown_encoding_is_an_error(rgb):
    msg = padded_message(rgb, "yuv422")
    with pytest.raises(ImageConversionError, match="'yuv422'.*unsupported colour encoding"):
        image_to_rgb(msg)


def test_colour_and_depth_encodings_are_not_interchangeable(rgb):
    colour = padded_message(rgb, "rgb8")
    depth = padded_message(np.ones((5, 7, 1), np.float32), "32FC1")
    with pytest.raises(ImageConversionError, match="unsupported depth encoding"):
        image_to_depth(colour)
    with pytest.raises(ImageConversionError, match="unsupported colour encoding"):
        image_to_rgb(depth)


@pytest.mark.parametrize("width, height", [(0, 5), (7, 0), (9000, 1)])
def test_zero_or_oversized_images_are_errors(width, height):
    msg = SimpleNamespace(height=height, width=width, encoding="rgb8", is_bigendian=0,
                          step=3 * width, data=b"\x00" * (3 * width * height))
    with pytest.raises(ImageConversionError, match=f"{width}x{height}"):
        image_to_rgb(msg)


@pytest.mark.parametrize(
    "array", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)]
)
def test_rgb_to_image_rejects_wrong_arrays(array):
    with pytest.raises(ImageConversionError):
        rgb_to_image(array)


def test_depth_to_image_rejects_wrong_arrays():
    with pytest.raises(ImageConversionError):
        depth_to_image(np.zeros((4, 4, 1), np.float32))
    with pytest.raises(ImageConversionError):
        depth_to_image(np.zeros((4, 4), np.uint16))


def camera_info(width=640, height=480, fx=525.0, fy=520.0, cx=319.5, cy=239.5, d=(), model="plumb_bob"):
    msg = CameraInfo()
    msg.width, msg.height = width, height
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.d = list(d)
    msg.distortion_model = model
    return msg


def test_camera_info_to_intrinsics():
    intrinsics = camera_info_to_intrinsics(camera_info())
    assert (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy) == (525.0, 520.0, 319.5, 239.5)
    assert intrinsics.size == (640, 480)


def test_camera_info_errors_are_typed():
    with pytest.raises(InvalidIntrinsicsError):
        camera_info_to_intrinsics(camera_info(fx=0.0))
    with pytest.raises(InvalidIntrinsicsError):
        camera_info_to_intrinsics(camera_info(fy=float("nan")))
    zero_k = camera_info()
    zero_k.k = [0.0] * 9
    with pytest.raises(InvalidIntrinsicsError, match="pinhole"):
        camera_info_to_intrinsics(zero_k)
    with pytest.raises(InvalidSizeError):
        camera_info_to_intrinsics(camera_info(width=0))


def test_undistort_without_distortion_returns_the_inputs():
    colour = np.zeros((48, 64, 3), np.uint8)
    depth = np.ones((48, 64), np.float32)
    info = camera_info(64, 48, 50.0, 50.0, 31.5, 23.5, d=[0.0] * 5)
    out_colour, out_depth, intrinsics = undistort_rgbd(colour, depth, info)
    assert out_colour is colour and out_depth is depth
    assert intrinsics.size == (64, 48)


def test_undistort_moves_a_marked_pixel_to_its_pinhole_position_and_keeps_depth_values():
    width, height = 160, 120
    K = np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])
    d = np.array([-0.3, 0.1, 0.001, -0.002, 0.0])
    target = (130, 95)  # (u, v) in the undistorted image, far from the centre
    ray = np.array([[(target[0] - K[0, 2]) / K[0, 0], (target[1] - K[1, 2]) / K[1, 1], 1.0]])
    distorted_uv, _ = cv2.projectPoints(ray, np.zeros(3), np.zeros(3), K, d)
    u, v = np.round(distorted_uv.reshape(2)).astype(int)
    assert (u, v) != target  # the distortion really moves it

    depth = np.full((height, width), 2.0, np.float32)
    depth[v - 1:v + 2, u - 1:u + 2] = 5.0
    colour = np.zeros((height, width, 3), np.uint8)
    colour[v - 1:v + 2, u - 1:u + 2] = 255

    info = camera_info(width, height, 100.0, 100.0, 79.5, 59.5, d=d)
    out_colour, out_depth, intrinsics = undistort_rgbd(colour, depth, info)
    assert intrinsics.matrix.tolist() == K.tolist()
    assert out_depth[target[1], target[0]] == 5.0
    assert out_colour[target[1], target[0]].min() > 128
    # nearest-neighbour depth: only source values (or 0 outside the source), never blends
    assert set(np.unique(out_depth).tolist()) <= {0.0, 2.0, 5.0}
    # far from the mark nothing changed colour
    assert out_colour[10, 10].max() == 0
