"""Contact sheets: a grid of labelled images saved as one PNG (OpenCV underneath)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

_LABEL_HEIGHT = 18


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], labels: Sequence[str], gap: int = 4) -> np.ndarray:
    """Compose ``rows`` of RGB uint8 images (each row: one image per label) into one image.

    Images in a column are resized to the first row's size. Returns ``uint8 [H, W, 3]`` RGB.
    """
    if not rows:
        raise ValueError("contact_sheet needs at least one row of images")
    n_cols = len(labels)
    if any(len(r) != n_cols for r in rows):
        raise ValueError(f"every row needs {n_cols} images (one per label)")
    h, w = rows[0][0].shape[:2]
    H = _LABEL_HEIGHT + len(rows) * (h + gap) + gap
    W = n_cols * (w + gap) + gap
    sheet = np.full((H, W, 3), 255, np.uint8)
    for c, label in enumerate(labels):
        x = gap + c * (w + gap)
        cv2.putText(sheet, label, (x, _LABEL_HEIGHT - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for r, row in enumerate(rows):
            img = row[c]
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            y = _LABEL_HEIGHT + gap + r * (h + gap)
            sheet[y : y + h, x : x + w] = img
    return sheet


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG (creating parent folders); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write PNG {path}")
    return path
