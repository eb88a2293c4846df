"""Procedural textures: albedo as a deterministic function of 2-D surface coordinates.

A texture maps surface coordinates ``u, v`` [m] (``float32 [N]`` each) to linear RGB albedo
in [0, 1] (``float32 [N, 3]``). Nothing depends on the viewer, so a surface point has the
same albedo in every view. Randomness comes from a :class:`NoiseTable` (a seeded lattice
of values) and never from a global generator, so a world is fully determined by its seed.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

#: Side of the noise lattice; patterns built from it repeat every 256 cells.
NOISE_TABLE_SIDE = 256
_MASK = NOISE_TABLE_SIDE - 1

#: Texture kinds :func:`Texture.evaluate` understands.
TEXTURE_KINDS = ("plain", "checker", "stripes", "noise", "waves", "tiles", "bricks", "wood", "dots")


class NoiseTable:
    """A seeded ``256 x 256`` lattice of uniform values in [0, 1) for value noise.

    ``key`` arguments select an independent-looking part of the lattice (an integer shift),
    so different textures of one world share the table without sharing patterns.
    """

    def __init__(self, seed: int):
        rng = np.random.default_rng([int(seed), 0x5EED7E47])
        self.values = rng.random(NOISE_TABLE_SIDE * NOISE_TABLE_SIDE, dtype=np.float32)

    @staticmethod
    def _shift(key: int) -> tuple[int, int]:
        return (key * 97 + 13) & _MASK, (key * 61 + 151) & _MASK

    def lattice(self, iu: np.ndarray, iv: np.ndarray, key: int = 0) -> np.ndarray:
        """Value at integer lattice points ``(iu, iv)`` (any integer arrays, wrapped)."""
        su, sv = self._shift(key)
        return self.values[((iv + sv) & _MASK) * NOISE_TABLE_SIDE + ((iu + su) & _MASK)]

    def value_noise(self, u: np.ndarray, v: np.ndarray, key: int = 0) -> np.ndarray:
        """Smooth (C1) value noise in [0, 1] at lattice coordinates ``u, v`` (one cell = 1)."""
        fu = np.floor(u)
        fv = np.floor(v)
        tu = u - fu
        tv = v - fv
        iu = fu.astype(np.int32)
        iv = fv.astype(np.int32)
        su, sv = self._shift(key)
        iu0 = (iu + su) & _MASK
        iu1 = (iu0 + 1) & _MASK
        row0 = ((iv + sv) & _MASK) * NOISE_TABLE_SIDE
        row1 = (row0 + NOISE_TABLE_SIDE) & (NOISE_TABLE_SIDE * NOISE_TABLE_SIDE - 1)
        table = self.values
        a = table[row0 + iu0]
        b = table[row0 + iu1]
        c = table[row1 + iu0]
        d = table[row1 + iu1]
        wu = tu * tu * (3.0 - 2.0 * tu)
        wv = tv * tv * (3.0 - 2.0 * tv)
        top = a + (b - a) * wu
        bottom = c + (d - c) * wu
        return top + (bottom - top) * wv

    def fbm(self, u: np.ndarray, v: np.ndarray, octaves: int = 3, key: int = 0) -> np.ndarray:
        """Fractal sum of ``octaves`` value-noise octaves, normalised to [0, 1]."""
        total = np.zeros_like(u)
        amplitude = 1.0
        norm = 0.0
        for octave in range(octaves):
            scale = float(2**octave)
            total += amplitude * self.value_noise(u * scale, v * scale, key + 7 * octave)
            norm += amplitude
            amplitude *= 0.5
        return total / norm


@dataclass(frozen=True)
class Texture:
    """One procedural texture.

    Attributes:
        kind: one of :data:`TEXTURE_KINDS`.
        colours: two or three RGB triples in [0, 1]; the third is grout / dot / ring colour
            where the kind has one (defaults to a darkened first colour).
        period: main feature size [m] (checker square, stripe width, tile side, ...).
        angle: rotation of the pattern in its surface plane [rad].
        offset: shift of the pattern in the surface plane [m].
        key: which part of the world's :class:`NoiseTable` this texture uses.
        detail: relative amplitude of the fine multiplicative noise (0 = none).
        detail_period: cell size of the fine noise [m].
    """

    kind: str
    colours: tuple[tuple[float, float, float], ...]
    period: float = 0.25
    angle: float = 0.0
    offset: tuple[float, float] = (0.0, 0.0)
    key: int = 0
    detail: float = 0.08
    detail_period: float = 0.03

    def __post_init__(self) -> None:
        if self.kind not in TEXTURE_KINDS:
            raise ValueError(f"unknown texture kind {self.kind!r}; expected one of {TEXTURE_KINDS}")
        if not (self.period > 0 and self.detail_period > 0):
            raise ValueError(f"texture periods must be positive, got {self.period}, {self.detail_period}")
        if len(self.colours) < 2:
            raise ValueError(f"a texture needs at least two colours, got {self.colours}")

    def evaluate(self, u: np.ndarray, v: np.ndarray, noise: NoiseTable) -> np.ndarray:
        """Albedo ``float32 [N, 3]`` in [0, 1] at surface coordinates ``u, v`` ``[N]`` [m]."""
        u = np.asarray(u, dtype=np.float32)
        v = np.asarray(v, dtype=np.float32)
        if self.angle:
            c, s = np.float32(math.cos(self.angle)), np.float32(math.sin(self.angle))
            u, v = c * u - s * v, s * u + c * v
        u = u + np.float32(self.offset[0])
        v = v + np.float32(self.offset[1])
        a = np.asarray(self.colours[0], dtype=np.float32)
        b = np.asarray(self.colours[1], dtype=np.float32)
        third = np.asarray(self.colours[2] if len(self.colours) > 2 else a * 0.45, dtype=np.float32)
        p = self.period
        key = self.key
        if self.kind == "plain":
            rgb = np.broadcast_to(a, (u.shape[0], 3)).copy()
        elif self.kind == "checker":
            parity = (np.floor(u / p) + np.floor(v / p)) % 2.0
            rgb = _mix(a, b, parity)
        elif self.kind == "stripes":
            palette = np.stack([np.asarray(col, np.float32) for col in self.colours])
            rgb = palette[np.floor(u / p).astype(np.int64) % len(palette)]
        elif self.kind == "noise":
            f = noise.fbm(u / p, v / p, octaves=3, key=key)
            rgb = _mix(a, b, np.clip((f - 0.5) * 2.2 + 0.5, 0.0, 1.0))
        elif self.kind == "waves":
            phase = 2.0 * math.pi * u / p + 1.5 * np.sin(2.0 * math.pi * v / (1.7 * p))
            rgb = _mix(a, b, 0.5 + 0.5 * np.sin(phase))
        elif self.kind in ("tiles", "bricks"):
            rgb = self._tiles(u, v, a, b, third, noise)
        elif self.kind == "wood":
            warp = noise.fbm(u / (3.0 * p), v / (12.0 * p), octaves=2, key=key)
            f = (u / p + 3.0 * warp) % 1.0
            rgb = _mix(a, b, f * f)
        else:  # dots
            du = (u / p) % 1.0 - 0.5
            dv = (v / p) % 1.0 - 0.5
            inside = (du * du + dv * dv) < 0.09
            rgb = np.where(inside[:, None], third, _mix(a, b, noise.fbm(u / (4 * p), v / (4 * p), 2, key)))
        if self.detail > 0:
            fine = noise.value_noise(u / self.detail_period, v / self.detail_period, key + 101)
            rgb = rgb * (1.0 + self.detail * (2.0 * fine - 1.0))[:, None]
        return np.clip(rgb, 0.0, 1.0).astype(np.float32, copy=False)

    def _tiles(self, u, v, a, b, grout_colour, noise: NoiseTable) -> np.ndarray:
        p = self.period
        h = p if self.kind == "tiles" else 0.5 * p
        row = np.floor(v / h)
        if self.kind == "bricks":
            u = u + 0.5 * p * (row % 2.0)
        col = np.floor(u / p)
        fu = u / p - col
        fv = v / h - row
        grout = 0.04
        in_grout = (np.minimum(fu, 1.0 - fu) * p < grout * p) | (np.minimum(fv, 1.0 - fv) * h < grout * p)
        shade = noise.lattice(col.astype(np.int32), row.astype(np.int32), self.key)
        tile = _mix(a, b, shade)
        return np.where(in_grout[:, None], grout_colour, tile)


def _mix(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``a + (b - a) * f`` for colours ``[3]`` and weights ``[N]`` -> ``[N, 3]`` float32."""
    return (a[None, :] + (b - a)[None, :] * f.astype(np.float32)[:, None]).astype(np.float32)


def random_colour(rng: np.random.Generator, saturation=(0.15, 0.75), value=(0.35, 0.95)) -> tuple:
    """A random RGB triple in [0, 1] with hue uniform and the given HSV ranges."""
    h = float(rng.random())
    s = float(rng.uniform(*saturation))
    v = float(rng.uniform(*value))
    return tuple(float(x) for x in colorsys.hsv_to_rgb(h, s, v))


def _shifted(colour: tuple, rng: np.random.Generator, amount: float) -> tuple:
    """The colour with its value changed by up to ``amount`` and a slight hue change."""
    h, s, v = colorsys.rgb_to_hsv(*colour)
    h = (h + rng.uniform(-0.06, 0.06)) % 1.0
    v = float(np.clip(v + rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 1.0) * amount, 0.08, 1.0))
    return tuple(float(x) for x in colorsys.hsv_to_rgb(h, s, v))


#: Kinds that suit each surface role, with feature-size ranges [m].
_ROLE_KINDS = {
    "floor": (("tiles", (0.2, 0.6)), ("checker", (0.2, 0.5)), ("wood", (0.08, 0.2)),
              ("noise", (0.15, 0.5)), ("bricks", (0.2, 0.4))),
    "wall": (("bricks", (0.2, 0.35)), ("stripes", (0.06, 0.3)), ("waves", (0.3, 0.9)),
             ("noise", (0.2, 0.6)), ("tiles", (0.15, 0.3)), ("dots", (0.1, 0.25))),
    "ceiling": (("noise", (0.3, 0.8)), ("tiles", (0.5, 0.7)), ("plain", (1.0, 1.0))),
    "object": (("checker", (0.05, 0.2)), ("stripes", (0.03, 0.12)), ("noise", (0.05, 0.2)),
               ("wood", (0.03, 0.08)), ("dots", (0.04, 0.1)), ("tiles", (0.05, 0.15)),
               ("waves", (0.08, 0.3))),
}


def random_texture(rng: np.random.Generator, role: str, key: int) -> Texture:
    """A random texture suited to ``role`` (``floor``, ``wall``, ``ceiling`` or ``object``)."""
    options = _ROLE_KINDS[role]
    kind, (lo, hi) = options[int(rng.integers(len(options)))]
    if role == "ceiling":
        base = random_colour(rng, saturation=(0.0, 0.15), value=(0.75, 0.95))
        contrast = 0.12
    elif role == "wall":
        base = random_colour(rng, saturation=(0.1, 0.55), value=(0.45, 0.9))
        contrast = float(rng.uniform(0.2, 0.45))
    else:
        base = random_colour(rng)
        contrast = float(rng.uniform(0.25, 0.6))
    colours = [base, _shifted(base, rng, contrast)]
    if kind == "stripes" and rng.random() < 0.5:
        colours.append(random_colour(rng))
    elif kind in ("tiles", "bricks", "dots"):
        colours.append(_shifted(base, rng, 0.5) if rng.random() < 0.6 else random_colour(rng))
    aligned = kind in ("tiles", "bricks", "stripes", "checker", "wood") and rng.random() < 0.75
    return Texture(
        kind=kind,
        colours=tuple(colours),
        period=float(rng.uniform(lo, hi)),
        angle=0.0 if aligned else float(rng.uniform(0.0, math.pi)),
        offset=(float(rng.uniform(0.0, 10.0)), float(rng.uniform(0.0, 10.0))),
        key=int(key),
        detail=float(rng.uniform(0.04, 0.14)),
        detail_period=float(rng.uniform(0.015, 0.05)),
    )
