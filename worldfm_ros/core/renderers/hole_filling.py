"""Push-pull hole filling: a weighted image pyramid, coarse levels fill what fine ones miss.

Fast (a few ms at 320x240 on a CPU), smooth, and deterministic. Pixels it fills are guesses:
the renderers mark them as not covered.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def push_pull(image: torch.Tensor, weight: torch.Tensor, levels: int = 10) -> torch.Tensor:
    """Fill the pixels of ``image`` where ``weight`` is 0 from their surroundings.

    Args:
        image: ``[C, H, W]`` float values (meaningful where ``weight > 0``).
        weight: ``[H, W]`` float in [0, 1], confidence of each pixel.
        levels: pyramid depth; holes up to about ``2**levels`` pixels across are filled.

    Returns ``[C, H, W]``: ``image`` where ``weight == 1``, blended or filled elsewhere.
    """
    colour = image * weight
    w = weight[None]
    pyramid = []
    for _ in range(levels):
        pyramid.append((colour, w))
        if min(colour.shape[-2:]) <= 1:
            break
        colour = F.avg_pool2d(colour[None], 2, ceil_mode=True)[0]
        w = F.avg_pool2d(w[None], 2, ceil_mode=True)[0]
        # A coarse cell that is partly known counts as known: saturate its weight.
        scale = torch.clamp(w * 4.0, max=1.0) / w.clamp(min=1e-12)
        colour, w = colour * scale, w * scale
    filled = pyramid[-1][0] / pyramid[-1][1].clamp(min=1e-12)
    for colour, w in reversed(pyramid[:-1]):
        up = F.interpolate(filled[None], size=colour.shape[-2:], mode="bilinear", align_corners=False)[0]
        filled = colour + (1.0 - w) * up  # colour is premultiplied by w
    return filled
