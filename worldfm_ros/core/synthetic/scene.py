"""A synthetic indoor world: geometry, materials, lighting, exact rendering, free space.

World frame: ROS (x forward, y left, z up), floor at ``z = 0``. Every surface colour is
``albedo(surface point) * lighting(surface point, normal)``; neither depends on the viewer,
so one surface point has the same colour in every view (up to uint8 rounding and, with
``supersample > 1``, the pixel footprint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from worldfm_ros.core.camera import Intrinsics
from worldfm_ros.core.errors import InvalidIntrinsicsError, InvalidPoseError
from worldfm_ros.core.pose import validate_pose_matrix
from worldfm_ros.core.synthetic import raycast
from worldfm_ros.core.synthetic.raycast import KIND_BOX, KIND_CYLINDER, KIND_ROOM, CompiledScene
from worldfm_ros.core.synthetic.textures import NoiseTable, Texture


#: Pixels (sub-samples) rendered per band; bounds the size of the per-pixel temporaries.
TILE_PIXELS = 32768

#: Primitives whose bottom is at least this high (door lintels) are not floor obstacles [m].
OBSTACLE_HEIGHT = 1.8


@dataclass(frozen=True)
class Room:
    """The axis-aligned room interior, seen from inside.

    ``materials``: texture index of each face ``-x, +x, -y, +y, -z (floor), +z (ceiling)``.
    """

    minimum: tuple[float, float, float]
    maximum: tuple[float, float, float]
    materials: tuple[int, int, int, int, int, int]


@dataclass(frozen=True)
class Box:
    """A solid box rotated by ``yaw`` [rad] about world +z around its ``centre`` [m].

    ``half_size`` [m] is along the box's own axes. ``materials``: texture index of each
    face ``-x, +x, -y, +y, -z, +z`` of the box frame.
    """

    centre: tuple[float, float, float]
    half_size: tuple[float, float, float]
    yaw: float
    materials: tuple[int, int, int, int, int, int]


@dataclass(frozen=True)
class Cylinder:
    """A solid vertical cylinder; ``centre`` [m] is the middle of its axis.

    ``yaw`` [rad] only turns its texture. ``materials``: ``(side, bottom, top)``.
    """

    centre: tuple[float, float, float]
    radius: float
    half_height: float
    yaw: float
    materials: tuple[int, int, int]


@dataclass(frozen=True)
class Lighting:
    """View-independent Lambertian lighting: ambient + point lights + one directional light.

    Irradiance at a point ``p`` with normal ``n`` (RGB, ``[3]``)::

        ambient + sum_i colour_i * max(0, n . l_i) / (1 + (|p_i - p| / falloff)^2)
                + sun_colour * max(0, n . sun_direction)

    Attributes:
        ambient: ``[3]`` RGB.
        positions: ``[L, 3]`` point-light positions [m].
        colours: ``[L, 3]`` point-light RGB intensities.
        falloff: distance at which a point light's intensity halves [m].
        sun_direction: ``[3]`` unit vector towards the directional light.
        sun_colour: ``[3]`` RGB.
    """

    ambient: tuple[float, float, float] = (0.35, 0.35, 0.35)
    positions: tuple[tuple[float, float, float], ...] = ()
    colours: tuple[tuple[float, float, float], ...] = ()
    falloff: float = 3.0
    sun_direction: tuple[float, float, float] = (0.0, 0.0, 1.0)
    sun_colour: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def irradiance(self, points, normals) -> np.ndarray:
        """``float32 [N, 3]`` RGB irradiance at ``points`` and unit ``normals``, each given
        as three ``float32 [N]`` coordinate arrays ``(x, y, z)``."""
        px, py, pz = points
        nx, ny, nz = normals
        gains = np.empty((px.shape[0], len(self.positions) + 1), np.float32)  # [N, L + 1]
        inv_falloff2 = np.float32(1.0 / (self.falloff * self.falloff))
        for i, (lx, ly, lz) in enumerate(self.positions):
            dx = np.float32(lx) - px
            dy = np.float32(ly) - py
            dz = np.float32(lz) - pz
            dist2 = dx * dx + dy * dy + dz * dz
            cos = (dx * nx + dy * ny + dz * nz) / np.sqrt(dist2)
            gains[:, i] = np.maximum(cos, np.float32(0.0)) / (np.float32(1.0) + dist2 * inv_falloff2)
        sx, sy, sz = (np.float32(x) for x in self.sun_direction)
        gains[:, -1] = np.maximum(nx * sx + ny * sy + nz * sz, np.float32(0.0))
        colours = np.asarray([*self.colours, self.sun_colour], np.float32).reshape(-1, 3)  # [L + 1, 3]
        return gains @ colours + np.asarray(self.ambient, np.float32)


@dataclass(frozen=True)
class Footprint:
    """2-D obstacle outline on the floor: a yaw-rotated rectangle or a disc [m]."""

    centre: tuple[float, float]
    half_size: tuple[float, float]  # discs: (radius, radius)
    yaw: float
    disc: bool


@dataclass(eq=False)
class SyntheticWorld:
    """A room with solid boxes and cylinders, textures and lights; renders exact RGB-D.

    Build one with :meth:`generate` (procedural, seeded) or directly from its parts (tests).
    ``textures`` are indexed by the ``materials`` fields of the room and primitives. Treat a
    world as immutable: its geometry is compiled into flat tables on construction.
    """

    room: Room
    boxes: list[Box]
    cylinders: list[Cylinder]
    textures: list[Texture]
    lighting: Lighting
    noise_seed: int = 0
    layout: str = "custom"
    seed: int | None = None
    _compiled: CompiledScene = field(init=False, repr=False)
    _noise: NoiseTable = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n_textures = len(self.textures)
        if not np.all(np.asarray(self.room.maximum) > np.asarray(self.room.minimum)):
            raise ValueError(f"room maximum must exceed its minimum on every axis: {self.room}")
        for part in [*self.boxes, *self.cylinders]:
            sizes = (part.radius, part.half_height) if isinstance(part, Cylinder) else part.half_size
            values = np.asarray([*part.centre, *sizes, part.yaw], np.float64)
            if not np.all(np.isfinite(values)) or min(sizes) <= 0:
                raise ValueError(f"primitive needs finite values and positive sizes: {part}")
        for part in [self.room, *self.boxes, *self.cylinders]:
            bad = [m for m in part.materials if not 0 <= m < n_textures]
            if bad:
                raise ValueError(f"material index {bad[0]} of {part} outside 0..{n_textures - 1}")
        self._noise = NoiseTable(self.noise_seed)
        self._compiled = self._compile()
        self._footprints = [
            self._footprint(p) for p in (*self.boxes, *self.cylinders)
            if p.centre[2] - (p.half_height if isinstance(p, Cylinder) else p.half_size[2]) < OBSTACLE_HEIGHT
        ]

    @classmethod
    def generate(cls, seed: int, **options) -> "SyntheticWorld":
        """A procedural world fully determined by ``seed`` (see :func:`generate.generate_world`
        for ``options``: ``layout``, ``n_objects``, ``size``...)."""
        from worldfm_ros.core.synthetic.generate import generate_world

        return generate_world(seed, **options)

    # ------------------------------------------------------------------ geometry tables
    def _compile(self) -> CompiledScene:
        kinds = [KIND_ROOM]
        lo = np.asarray(self.room.minimum, np.float64)
        hi = np.asarray(self.room.maximum, np.float64)
        centres = [(lo + hi) / 2]
        yaws = [0.0]
        halves = [(hi - lo) / 2]
        materials = [list(self.room.materials)]
        for box in self.boxes:
            kinds.append(KIND_BOX)
            centres.append(np.asarray(box.centre, np.float64))
            yaws.append(float(box.yaw))
            halves.append(np.asarray(box.half_size, np.float64))
            materials.append(list(box.materials))
        for cyl in self.cylinders:
            kinds.append(KIND_CYLINDER)
            centres.append(np.asarray(cyl.centre, np.float64))
            yaws.append(float(cyl.yaw))
            halves.append(np.array([cyl.radius, cyl.radius, cyl.half_height], np.float64))
            materials.append(list(cyl.materials) + [cyl.materials[0]] * 3)
        centre = np.stack(centres)
        yaw = np.asarray(yaws)
        half = np.stack(halves)
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64)
        c, s = np.cos(yaw), np.sin(yaw)
        R = np.zeros((len(yaw), 3, 3))
        R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 2] = c, -s, s, c, 1.0
        local = signs[None] * half[:, None, :]  # [P, 8, 3]
        corners = np.einsum("pij,pkj->pki", R, local) + centre[:, None, :]
        self._material_table = np.asarray(materials, np.int16)  # [P, 6]
        self._cos_yaw = c.astype(np.float32)
        self._sin_yaw = s.astype(np.float32)
        self._radius = half[:, 0].astype(np.float32)
        return CompiledScene(kind=np.asarray(kinds, np.int8), centre=centre, yaw=yaw, half_size=half, corners=corners)

    @staticmethod
    def _footprint(part) -> Footprint:
        if isinstance(part, Cylinder):
            return Footprint(part.centre[:2], (part.radius, part.radius), 0.0, True)
        return Footprint(part.centre[:2], part.half_size[:2], part.yaw, False)

    @property
    def footprints(self) -> list[Footprint]:
        """Floor outlines of the boxes and cylinders that reach below :data:`OBSTACLE_HEIGHT`."""
        return list(self._footprints)

    @property
    def n_primitives(self) -> int:
        """Number of solid primitives (boxes + cylinders), not counting the room."""
        return len(self.boxes) + len(self.cylinders)

    # ------------------------------------------------------------------ rendering
    def cast(self, T_world_cam: np.ndarray, intrinsics: Intrinsics) -> raycast.Hits:
        """Nearest-hit buffers of one view (depth, primitive index, face, local point)."""
        T = validate_pose_matrix(T_world_cam)
        _check_intrinsics(intrinsics)
        return raycast.cast(self._compiled, T, intrinsics)[0]

    def render(self, T_world_cam, intrinsics: Intrinsics, *, supersample: int = 1):
        """Exact colour and z-depth of the world seen from ``T_world_cam``.

        Args:
            T_world_cam: ``[4, 4]`` or ``[B, 4, 4]`` camera optical poses in the world.
            intrinsics: pinhole intrinsics of the output images.
            supersample: ``k >= 1``: colour is the mean of ``k x k`` sub-pixel samples
                (deterministic anti-aliasing); depth is always the exact pixel-centre value.

        Returns:
            ``(colour, depth)``: ``uint8 [H, W, 3]`` RGB and ``float32 [H, W]`` z-depth [m]
            (0 where a ray hits nothing, i.e. the camera is outside the room), with a
            leading ``[B]`` axis when ``T_world_cam`` has one.
        """
        poses = np.asarray(T_world_cam, dtype=np.float64)
        batched = poses.ndim == 3
        if poses.ndim not in (2, 3):
            raise InvalidPoseError(f"T_world_cam must be [4, 4] or [B, 4, 4], got shape {poses.shape}", poses.shape)
        _check_intrinsics(intrinsics)
        if not isinstance(supersample, (int, np.integer)) or isinstance(supersample, bool) or not 1 <= supersample <= 8:
            raise ValueError(f"supersample must be an integer in [1, 8], got {supersample!r}")
        poses = poses.reshape(-1, *poses.shape[-2:])
        colours, depths = [], []
        for T in poses:
            colour, depth = self._render_one(validate_pose_matrix(T), intrinsics, int(supersample))
            colours.append(colour)
            depths.append(depth)
        if batched:
            return np.stack(colours), np.stack(depths)
        return colours[0], depths[0]

    def _render_one(self, T: np.ndarray, intrinsics: Intrinsics, k: int):
        h, w = intrinsics.height, intrinsics.width
        colour = np.empty((h, w, 3), np.uint8)
        depth = np.empty((h, w), np.float32)
        # Bands of rows keep the working set in cache (large images would otherwise cost
        # more than their pixel count); each band is a camera with the principal point moved.
        rows = max(1, TILE_PIXELS // (w * k * k))
        for r0 in range(0, h, rows):
            band = Intrinsics(intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy - r0, w, min(rows, h - r0))
            colour[r0 : r0 + band.height], depth[r0 : r0 + band.height] = self._render_band(T, band, k)
        return colour, depth

    def _render_band(self, T: np.ndarray, intrinsics: Intrinsics, k: int):
        if k == 1:
            hits, origin, directions = raycast.cast(self._compiled, T, intrinsics)
            rgb = self._shade(hits, origin, directions)
            return _to_uint8(rgb), hits.depth
        fine = intrinsics.resized(intrinsics.width * k, intrinsics.height * k)
        hits, origin, directions = raycast.cast(self._compiled, T, fine)
        rgb = self._shade(hits, origin, directions)
        h, w = intrinsics.height, intrinsics.width
        rgb = rgb.reshape(h, k, w, k, 3).mean(axis=(1, 3))
        if k % 2 == 1:  # the middle sub-sample sits exactly on the pixel centre
            depth = hits.depth[k // 2 :: k, k // 2 :: k]
        else:
            depth = raycast.cast(self._compiled, T, intrinsics)[0].depth
        return _to_uint8(rgb), depth

    def _shade(self, hits: raycast.Hits, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """Linear RGB ``float32 [H, W, 3]`` (0 where nothing is hit)."""
        h, w = hits.depth.shape
        out = np.zeros((h * w, 3), np.float32)
        prim = hits.prim.reshape(-1)
        if prim.min() >= 0:  # camera inside the room: every ray hits something
            idx = slice(None)
            n = h * w
        else:
            idx = np.flatnonzero(prim >= 0)
            n = idx.size
            if n == 0:
                return out.reshape(h, w, 3)
            prim = prim[idx]
        face = hits.face.reshape(-1)[idx]
        local = [hits.local[k].reshape(-1)[idx] for k in range(3)]
        depth = hits.depth.reshape(-1)[idx]
        points = [float(origin[k]) + depth * directions[k].reshape(-1)[idx] for k in range(3)]
        u, v, normal_local = _surface_frame(self._compiled.kind[prim], face, local, self._radius[prim])
        c, s = self._cos_yaw[prim], self._sin_yaw[prim]
        nlx, nly, nlz = normal_local
        normals = (c * nlx - s * nly, s * nlx + c * nly, nlz)
        material = self._material_table.reshape(-1)[prim.astype(np.int32) * 6 + face]
        albedo = np.empty((n, 3), np.float32)
        used = np.unique(material)
        if used.size == 1:
            albedo[:] = self.textures[int(used[0])].evaluate(u, v, self._noise)
        else:
            for m in used:
                sel = np.flatnonzero(material == m)
                albedo[sel] = self.textures[int(m)].evaluate(u[sel], v[sel], self._noise)
        out[idx] = albedo * self.lighting.irradiance(points, normals)
        return out.reshape(h, w, 3)

    # ------------------------------------------------------------------ free space
    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Room interior ``(minimum [3], maximum [3])`` [m]."""
        return np.asarray(self.room.minimum, np.float64), np.asarray(self.room.maximum, np.float64)

    def clearance(self, xy) -> np.ndarray:
        """Signed 2-D distance [m] from floor points ``[..., 2]`` to the nearest wall or
        obstacle footprint: positive in free space, negative inside an obstacle or outside
        the room. Obstacles count at every height up to :data:`OBSTACLE_HEIGHT` (a camera
        never passes over a table or under a shelf)."""
        xy = np.asarray(xy, dtype=np.float64)
        lo, hi = self.bounds
        d = np.minimum.reduce([xy[..., 0] - lo[0], hi[0] - xy[..., 0], xy[..., 1] - lo[1], hi[1] - xy[..., 1]])
        for fp in self._footprints:
            rel = xy - np.asarray(fp.centre)
            if fp.disc:
                dist = np.linalg.norm(rel, axis=-1) - fp.half_size[0]
            else:
                c, s = math.cos(fp.yaw), math.sin(fp.yaw)
                lx = np.abs(c * rel[..., 0] + s * rel[..., 1]) - fp.half_size[0]
                ly = np.abs(-s * rel[..., 0] + c * rel[..., 1]) - fp.half_size[1]
                outside = np.hypot(np.maximum(lx, 0.0), np.maximum(ly, 0.0))
                dist = outside + np.minimum(np.maximum(lx, ly), 0.0)
            d = np.minimum(d, dist)
        return d

    def is_free(self, xy, margin: float = 0.3) -> np.ndarray:
        """``bool [...]``: floor points ``[..., 2]`` at least ``margin`` [m] from walls and obstacles."""
        return self.clearance(xy) >= margin

    def sample_free_position(self, rng: np.random.Generator, margin: float = 0.3, height: float = 0.0,
                             max_tries: int = 10000) -> np.ndarray:
        """A uniformly random point ``[3]`` (z = ``height``) whose floor position is free
        by ``margin`` [m]; raises ``ValueError`` if none is found in ``max_tries``."""
        lo, hi = self.bounds
        for _ in range(max(1, max_tries // 256)):
            xy = rng.uniform(lo[:2], hi[:2], size=(256, 2))
            ok = np.flatnonzero(self.is_free(xy, margin))
            if ok.size:
                return np.array([xy[ok[0], 0], xy[ok[0], 1], height])
        raise ValueError(f"no free position with margin {margin} m found in {max_tries} tries")


def _surface_frame(kind: np.ndarray, face: np.ndarray, local, radius: np.ndarray):
    """Texture coordinates ``u, v`` ``[N]`` [m] and primitive-frame normals ``(x, y, z)``
    (each ``[N]``) of hits with ``local`` hit coordinates ``(x, y, z)``."""
    lx, ly, lz = local
    axis = face >> 1
    # Box and room faces: x faces -> (y, z), y faces -> (x, z), z faces -> (x, y),
    # so u runs horizontally and v upwards on walls.
    u = np.where(axis == 0, ly, lx)
    v = np.where(axis == 2, ly, lz)
    sign = np.where((face & 1) == 1, np.float32(1.0), np.float32(-1.0))
    sign = np.where(kind == KIND_ROOM, -sign, sign)  # room faces look inwards
    zero = np.float32(0.0)
    nx = np.where(axis == 0, sign, zero)
    ny = np.where(axis == 1, sign, zero)
    nz = np.where(axis == 2, sign, zero)
    cyl = np.flatnonzero(kind == KIND_CYLINDER)
    if cyl.size:
        f = face[cyl]
        cx, cy, cz = lx[cyl], ly[cyl], lz[cyl]
        r = radius[cyl]
        side = f == 0
        u[cyl] = np.where(side, np.arctan2(cy, cx) * r, cx)
        v[cyl] = np.where(side, cz, cy)
        nx[cyl] = np.where(side, cx / r, zero)
        ny[cyl] = np.where(side, cy / r, zero)
        nz[cyl] = np.where(side, zero, np.where(f == 1, np.float32(-1.0), np.float32(1.0)))
    return u, v, (nx, ny, nz)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)


def _check_intrinsics(intrinsics) -> None:
    if not isinstance(intrinsics, Intrinsics):
        raise InvalidIntrinsicsError(f"intrinsics must be an Intrinsics, got {type(intrinsics).__name__}", intrinsics)
