"""Procedural indoor layouts: one room, an L-shaped room or two rooms joined by a doorway,
furnished with crates, cabinets, shelves, tables, chairs, barrels and pillars, with framed
pictures on the walls.

Everything is drawn from one ``numpy.random.Generator`` seeded by the world seed, in a fixed
order, so a seed always gives the same world (and the same bytes when rendered).
"""

from __future__ import annotations

import math

import numpy as np

from worldfm_ros.core.synthetic.scene import Box, Cylinder, Lighting, Room, SyntheticWorld
from worldfm_ros.core.synthetic.textures import Texture, random_texture
from worldfm_ros.core.synthetic.trajectory import free_loop_path

#: Layouts :func:`generate_world` can build.
LAYOUTS = ("single", "L", "two_room")
#: Object kinds and their relative frequency.
OBJECT_KINDS = (("crate", 3), ("stack", 2), ("cabinet", 2), ("shelf", 2), ("table", 2), ("chair", 2),
                ("barrel", 2), ("pillar", 1))
#: Structural parts reach this far into the walls and ceiling so no two faces coincide [m].
_OVERLAP = 0.05
#: Smallest gap kept between object footprints [m].
_GAP = 0.15
#: Half-width of the corridor kept free of furniture around one loop [m].
_CORRIDOR = 0.65


class _Builder:
    """Collects textures and primitives while a world is generated."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.textures: list[Texture] = []
        self.boxes: list[Box] = []
        self.cylinders: list[Cylinder] = []
        self.rects: list[tuple[np.ndarray, np.ndarray, float]] = []  # (centre xy, half xy, yaw)
        self.corridor: np.ndarray | None = None  # [M, 2] points furniture keeps away from

    def texture(self, role: str) -> int:
        self.textures.append(random_texture(self.rng, role, key=len(self.textures) * 5 + 1))
        return len(self.textures) - 1

    def box(self, centre, half, yaw, material, top=None) -> None:
        m = int(material)
        t = m if top is None else int(top)
        self.boxes.append(Box(tuple(float(x) for x in centre), tuple(float(x) for x in half), float(yaw),
                              (m, m, m, m, m, t)))

    def cylinder(self, centre, radius, half_height, material, top) -> None:
        self.cylinders.append(Cylinder(tuple(float(x) for x in centre), float(radius), float(half_height),
                                       float(self.rng.uniform(0, 2 * math.pi)), (int(material), int(top), int(top))))


def generate_world(
    seed: int,
    *,
    layout: str | None = None,
    n_objects: int | None = None,
    size: tuple[float, float] | None = None,
    height: float | None = None,
) -> SyntheticWorld:
    """A procedural indoor world determined by ``seed``.

    Args:
        seed: non-negative integer.
        layout: ``"single"``, ``"L"`` or ``"two_room"``; random when ``None``.
        n_objects: number of furniture objects (3-8 when ``None``; each may be several
            primitives); fewer are placed if the room is too full.
        size: room ``(width along x, depth along y)`` [m]; each 4-8 m when ``None``.
        height: ceiling height [m]; 2.4-3.2 m when ``None``.

    The room spans ``[-W/2, W/2] x [-D/2, D/2] x [0, height]``, floor at z = 0.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    rng = np.random.default_rng([int(seed), 0x5C3E])
    drawn_layout = LAYOUTS[int(rng.choice(len(LAYOUTS), p=[0.5, 0.25, 0.25]))]
    drawn_size = rng.uniform(4.0, 8.0, size=2)
    drawn_height = float(rng.uniform(2.4, 3.2))
    drawn_count = int(rng.integers(3, 9))
    layout = layout or drawn_layout
    width, depth = (float(size[0]), float(size[1])) if size is not None else map(float, drawn_size)
    height = drawn_height if height is None else float(height)
    n_objects = drawn_count if n_objects is None else int(n_objects)
    if not (width > 1.0 and depth > 1.0 and height > 1.0):
        raise ValueError(f"room size must exceed 1 m per side, got {width} x {depth} x {height}")

    b = _Builder(rng)
    floor = b.texture("floor")
    ceiling = b.texture("ceiling")
    wall = b.texture("wall")
    accent = b.texture("wall") if rng.random() < 0.6 else wall
    walls = [wall] * 4
    walls[int(rng.integers(4))] = accent
    room = Room((-width / 2, -depth / 2, 0.0), (width / 2, depth / 2, height), (*walls, floor, ceiling))

    if layout == "L":
        _add_corner_block(b, width, depth, height, wall)
    elif layout == "two_room":
        _add_partition(b, width, depth, height, accent)

    # Keep a driving corridor around one free loop clear, so a robot path always fits.
    structure = SyntheticWorld(room=room, boxes=list(b.boxes), cylinders=[], textures=b.textures, lighting=Lighting())
    b.corridor = free_loop_path(structure, rng, clearance=_CORRIDOR)
    for _ in range(n_objects):
        weights = np.array([w for _, w in OBJECT_KINDS], float)
        kind = OBJECT_KINDS[int(rng.choice(len(OBJECT_KINDS), p=weights / weights.sum()))][0]
        _add_object(b, kind, width, depth, height)

    _add_pictures(b, width, depth, height, int(rng.integers(2, 6)))
    lighting = _random_lighting(rng, b, width, depth, height)
    return SyntheticWorld(room=room, boxes=b.boxes, cylinders=b.cylinders, textures=b.textures,
                          lighting=lighting, noise_seed=int(seed), layout=layout, seed=int(seed))


# ---------------------------------------------------------------------- structure
def _add_corner_block(b: _Builder, width, depth, height, material) -> None:
    """Fill one corner floor to ceiling, turning the room into an L."""
    rng = b.rng
    sx, sy = rng.choice([-1.0, 1.0], size=2)
    bx = rng.uniform(0.3, 0.45) * width
    by = rng.uniform(0.3, 0.45) * depth
    # Spans from the inner corner (bx, by into the room) to _OVERLAP behind the walls.
    half = np.array([bx / 2 + _OVERLAP / 2, by / 2 + _OVERLAP / 2, height / 2 + _OVERLAP])
    centre = np.array([sx * (width / 2 - bx / 2 + _OVERLAP / 2), sy * (depth / 2 - by / 2 + _OVERLAP / 2), height / 2])
    b.box(centre, half, 0.0, material)
    b.rects.append((centre[:2], half[:2], 0.0))


def _add_partition(b: _Builder, width, depth, height, material) -> None:
    """A wall across the longer side with a doorway (and a lintel above it)."""
    rng = b.rng
    along_x = width >= depth  # the partition cuts the longer axis
    long_half, short_half = (width / 2, depth / 2) if along_x else (depth / 2, width / 2)
    cut = rng.uniform(-0.2, 0.2) * 2 * long_half
    thickness = rng.uniform(0.1, 0.16)
    door = rng.uniform(1.1, 1.6)
    door_centre = rng.uniform(-short_half + door / 2 + 0.3, short_half - door / 2 - 0.3)
    door_height = min(rng.uniform(2.0, 2.2), height - 0.2)
    segments = [(-short_half - _OVERLAP, door_centre - door / 2), (door_centre + door / 2, short_half + _OVERLAP)]
    parts = []
    for lo, hi in segments:
        parts.append(((lo + hi) / 2, (hi - lo) / 2, height / 2, height / 2 + _OVERLAP))
    lintel_lo, lintel_hi = door_height, height + _OVERLAP
    parts.append((door_centre, door / 2 + 0.01, (lintel_lo + lintel_hi) / 2, (lintel_hi - lintel_lo) / 2))
    for along, half_along, zc, hz in parts:
        if along_x:
            centre, half = (cut, along, zc), (thickness / 2, half_along, hz)
        else:
            centre, half = (along, cut, zc), (half_along, thickness / 2, hz)
        b.box(centre, half, 0.0, material)
    for along, half_along, _, _ in parts[:2]:  # the lintel is above every camera
        if along_x:
            b.rects.append((np.array([cut, along]), np.array([thickness / 2, half_along]), 0.0))
        else:
            b.rects.append((np.array([along, cut]), np.array([half_along, thickness / 2]), 0.0))


# ---------------------------------------------------------------------- furniture
def _add_object(b: _Builder, kind: str, width, depth, height) -> bool:
    """Place one object of ``kind`` where it fits; returns False if no place was found."""
    rng = b.rng
    against_wall = kind in ("cabinet", "shelf")
    if kind in ("crate", "stack"):
        half = rng.uniform(0.15, 0.4, size=2)
    elif kind == "cabinet":
        half = np.array([rng.uniform(0.3, 0.7), rng.uniform(0.18, 0.3)])
    elif kind == "shelf":
        half = np.array([rng.uniform(0.4, 0.6), rng.uniform(0.15, 0.2)])
    elif kind == "table":
        half = np.array([rng.uniform(0.4, 0.8), rng.uniform(0.3, 0.5)])
    elif kind == "chair":
        half = np.full(2, rng.uniform(0.2, 0.25))
    elif kind == "barrel":
        half = np.full(2, rng.uniform(0.15, 0.35))
    else:  # pillar
        half = np.full(2, rng.uniform(0.12, 0.3))
    for _ in range(60):
        if against_wall:
            centre, yaw = _wall_slot(rng, half, width, depth)
        else:
            centre = rng.uniform([-width / 2, -depth / 2], [width / 2, depth / 2])
            yaw = rng.uniform(0, math.pi) if rng.random() < 0.6 else rng.choice([0.0, math.pi / 2])
        if _fits(b, centre, half, yaw, width, depth):
            break
    else:
        return False
    b.rects.append((centre, half, yaw))
    builder = {"crate": _crate, "stack": _stack, "cabinet": _cabinet, "shelf": _shelf, "table": _table,
               "chair": _chair, "barrel": _barrel, "pillar": _pillar}[kind]
    builder(b, centre, half, yaw, height)
    return True


def _wall_slot(rng, half, width, depth):
    """A footprint centre and yaw that put the object's back (its local +y face) against
    one of the four room walls."""
    side = int(rng.integers(4))
    gap = 0.02
    if side in (0, 1):  # walls at x = -W/2 and x = +W/2; the object's long side along y
        x = (-1 if side == 0 else 1) * (width / 2 - half[1] - gap)
        y = rng.uniform(-depth / 2 + half[0], depth / 2 - half[0])
        return np.array([x, y]), (math.pi / 2 if side == 0 else -math.pi / 2)
    y = (-1 if side == 2 else 1) * (depth / 2 - half[1] - gap)
    x = rng.uniform(-width / 2 + half[0], width / 2 - half[0])
    return np.array([x, y]), (math.pi if side == 2 else 0.0)


def _rect_corners(centre, half, yaw) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    return local @ np.array([[c, s], [-s, c]]) + centre


def _fits(b: _Builder, centre, half, yaw, width, depth) -> bool:
    corners = _rect_corners(centre, half, yaw)
    if (np.abs(corners[:, 0]) > width / 2 - 0.01).any() or (np.abs(corners[:, 1]) > depth / 2 - 0.01).any():
        return False
    for other in b.rects:
        if _rects_overlap(corners, _rect_corners(*other), _GAP):
            return False
    if b.corridor is not None and _rect_distance(b.corridor, centre, half, yaw).min() < _CORRIDOR:
        return False
    return True


def _rect_distance(points: np.ndarray, centre, half, yaw) -> np.ndarray:
    """Signed distance [m] of ``points`` ``[M, 2]`` to a yaw-rotated rectangle."""
    c, s = math.cos(yaw), math.sin(yaw)
    rel = points - centre
    lx = np.abs(c * rel[:, 0] + s * rel[:, 1]) - half[0]
    ly = np.abs(-s * rel[:, 0] + c * rel[:, 1]) - half[1]
    return np.hypot(np.maximum(lx, 0.0), np.maximum(ly, 0.0)) + np.minimum(np.maximum(lx, ly), 0.0)


def _rects_overlap(a: np.ndarray, b: np.ndarray, gap: float) -> bool:
    """Separating-axis test of two convex quads ``[4, 2]``, each grown by ``gap / 2``."""
    for poly in (a, b):
        for i in range(4):
            edge = poly[(i + 1) % 4] - poly[i]
            axis = np.array([-edge[1], edge[0]]) / np.linalg.norm(edge)
            pa, pb = a @ axis, b @ axis
            if pa.max() + gap / 2 < pb.min() - gap / 2 or pb.max() + gap / 2 < pa.min() - gap / 2:
                return False
    return True


def _place(centre, yaw, dx, dy):
    """World xy of the object-frame offset ``(dx, dy)``."""
    c, s = math.cos(yaw), math.sin(yaw)
    return centre[0] + c * dx - s * dy, centre[1] + s * dx + c * dy


def _crate(b, centre, half, yaw, height):
    h = b.rng.uniform(0.3, 0.85)
    b.box((*centre, h / 2), (*half, h / 2), yaw, b.texture("object"))


def _stack(b, centre, half, yaw, height):
    rng = b.rng
    h1 = rng.uniform(0.3, 0.6)
    b.box((*centre, h1 / 2), (*half, h1 / 2), yaw, b.texture("object"))
    top_half = half * rng.uniform(0.5, 0.7)
    h2 = rng.uniform(0.2, 0.45)
    b.box((*centre, h1 + h2 / 2), (*top_half, h2 / 2), yaw + rng.uniform(-0.3, 0.3), b.texture("object"))


def _cabinet(b, centre, half, yaw, height):
    h = min(b.rng.uniform(0.8, 2.0), height - 0.1)
    b.box((*centre, h / 2), (*half, h / 2), yaw, b.texture("object"), top=b.texture("object"))


def _shelf(b, centre, half, yaw, height):
    rng = b.rng
    frame = b.texture("object")
    h = min(rng.uniform(1.2, 2.0), height - 0.1)
    t = 0.025
    w, d = half
    for side in (-1, 1):  # side panels
        x, y = _place(centre, yaw, side * (w - t), 0.0)
        b.box((x, y, h / 2), (t, d, h / 2), yaw, frame)
    x, y = _place(centre, yaw, 0.0, d - t)  # back panel against the wall
    b.box((x, y, h / 2), (w - 2 * t, t, h / 2), yaw, frame)
    n_boards = int(rng.integers(3, 6))
    for k in range(n_boards):
        z = 0.05 + k * (h - 0.1) / (n_boards - 1)
        b.box((*centre, z), (w - 2 * t, d - 2 * t, t / 2 * 1.5), yaw, frame)
    for k in range(n_boards - 1):  # a block of "books" on some boards
        if rng.random() < 0.7:
            bw = rng.uniform(0.15, w - 0.1)
            bx = rng.uniform(-w + 2 * t + bw, w - 2 * t - bw)
            bh = rng.uniform(0.5, 0.8) * min(0.3, (h - 0.1) / (n_boards - 1) - 0.06)
            x, y = _place(centre, yaw, bx, 0.0)
            z0 = 0.05 + k * (h - 0.1) / (n_boards - 1) + t * 0.75
            b.box((x, y, z0 + bh / 2), (bw, d * 0.7, bh / 2), yaw, b.texture("object"))


def _table(b, centre, half, yaw, height):
    rng = b.rng
    top = b.texture("object")
    legs = top if rng.random() < 0.5 else b.texture("object")
    h = rng.uniform(0.68, 0.78)
    t = rng.uniform(0.02, 0.035)
    b.box((*centre, h - t), (*half, t), yaw, top)
    leg = rng.uniform(0.02, 0.04)
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = _place(centre, yaw, sx * (half[0] - leg - 0.04), sy * (half[1] - leg - 0.04))
            b.box((x, y, (h - 2 * t) / 2), (leg, leg, (h - 2 * t) / 2), yaw, legs)


def _chair(b, centre, half, yaw, height):
    rng = b.rng
    material = b.texture("object")
    seat_h = rng.uniform(0.42, 0.48)
    t = 0.025
    b.box((*centre, seat_h - t), (*half, t), yaw, material)
    back_h = rng.uniform(0.35, 0.5)
    x, y = _place(centre, yaw, 0.0, half[1] - t)
    b.box((x, y, seat_h + back_h / 2), (half[0], t, back_h / 2), yaw, material)
    leg = 0.02
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = _place(centre, yaw, sx * (half[0] - leg), sy * (half[1] - leg))
            b.box((x, y, (seat_h - 2 * t) / 2), (leg, leg, (seat_h - 2 * t) / 2), yaw, material)


def _barrel(b, centre, half, yaw, height):
    h = b.rng.uniform(0.4, 1.1)
    b.cylinder((*centre, h / 2), half[0], h / 2, b.texture("object"), b.texture("object"))


def _pillar(b, centre, half, yaw, height):
    material = b.texture("object")
    b.cylinder((*centre, height / 2), half[0], height / 2 + _OVERLAP, material, material)


def _add_pictures(b: _Builder, width, depth, height, count: int) -> None:
    """Framed pictures (thin boxes) on free stretches of the room walls: fine detail at eye
    level, where forward-looking cameras spend most of their pixels."""
    rng = b.rng
    for _ in range(count):
        w = rng.uniform(0.4, 1.2)
        h = rng.uniform(0.3, 0.9)
        z0 = rng.uniform(0.7, max(0.75, min(1.6, height - h - 0.2)))
        side = int(rng.integers(4))
        thickness = 0.02
        if side < 2:  # walls x = -W/2 (side 0) and x = +W/2 (side 1); the picture faces inwards
            sign = -1.0 if side == 0 else 1.0
            along = rng.uniform(-depth / 2 + w / 2 + 0.1, depth / 2 - w / 2 - 0.1)
            centre = np.array([sign * (width / 2 - thickness / 2 + 0.005), along])
            half = np.array([thickness / 2, w / 2])
            front = 0 if side == 1 else 1
        else:
            sign = -1.0 if side == 2 else 1.0
            along = rng.uniform(-width / 2 + w / 2 + 0.1, width / 2 - w / 2 - 0.1)
            centre = np.array([along, sign * (depth / 2 - thickness / 2 + 0.005)])
            half = np.array([w / 2, thickness / 2])
            front = 2 if side == 3 else 3
        if any(_rects_overlap(_rect_corners(centre, half, 0.0), _rect_corners(*r), 0.05) for r in b.rects):
            continue  # behind furniture or inside a structural block
        frame = b.texture("object")
        materials = [frame] * 6
        materials[front] = b.texture("object")
        b.boxes.append(Box((float(centre[0]), float(centre[1]), float(z0 + h / 2)),
                           (float(half[0]), float(half[1]), float(h / 2)), 0.0, tuple(materials)))
        b.rects.append((centre, half, 0.0))


# ---------------------------------------------------------------------- lights
def _random_lighting(rng, b: _Builder, width, depth, height) -> Lighting:
    n = int(rng.integers(2, 4))
    positions = []
    colours = []
    for _ in range(n):
        for _ in range(50):  # keep lights out of solid parts (they cast no shadows)
            xy = rng.uniform(-0.4, 0.4, size=2) * (width, depth)
            if not any(_rects_overlap(_rect_corners(xy, (0.05, 0.05), 0.0), _rect_corners(*r), 0.0) for r in b.rects):
                break
        positions.append((float(xy[0]), float(xy[1]), float(height - rng.uniform(0.2, 0.5))))
        warmth = rng.uniform(-0.08, 0.08)
        intensity = rng.uniform(0.45, 0.8)
        colours.append(tuple(float(intensity * (1 + k * warmth)) for k in (1, 0, -1)))
    ambient = float(rng.uniform(0.3, 0.42))
    tilt = rng.uniform(0.2, 0.7)
    azimuth = rng.uniform(0, 2 * math.pi)
    sun = (math.sin(tilt) * math.cos(azimuth), math.sin(tilt) * math.sin(azimuth), math.cos(tilt))
    sun_gain = float(rng.uniform(0.1, 0.25))
    return Lighting(
        ambient=(ambient, ambient, ambient * 1.02),
        positions=tuple(positions),
        colours=tuple(colours),
        falloff=float(rng.uniform(2.5, 4.0)),
        sun_direction=sun,
        sun_colour=(sun_gain, sun_gain, sun_gain),
    )
