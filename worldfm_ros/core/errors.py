"""Typed errors of the core. Each carries the offending value so callers can report it."""

from __future__ import annotations

from typing import Any


class WorldFMError(Exception):
    """Base class of every error the core raises on purpose."""

    def __init__(self, message: str, value: Any = None):
        super().__init__(message)
        self.value = value


class InvalidPoseError(WorldFMError, ValueError):
    """A pose with non-finite entries, a degenerate quaternion or a non-rigid matrix."""


class InvalidIntrinsicsError(WorldFMError, ValueError):
    """Camera intrinsics that cannot describe a pinhole camera (zero/non-finite focal, bad size)."""


class InvalidImageError(WorldFMError, ValueError):
    """An image of the wrong shape, dtype or size (e.g. depth and colour sizes differ)."""


class InvalidSizeError(WorldFMError, ValueError):
    """A requested render size outside the supported range."""


class EmptyMemoryError(WorldFMError, RuntimeError):
    """A render was asked of a memory that holds no keyframe."""


class WorldFileError(WorldFMError, OSError):
    """A world file that is missing, truncated, foreign or of a newer format version."""


class ModelLoadError(WorldFMError, RuntimeError):
    """A learned-renderer checkpoint that is missing, corrupted or of an unknown format."""
