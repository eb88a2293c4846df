"""The frame model: K warped references + target geometry -> target colour.

Design (``FrameModel``): per-reference blend weights plus a hole fill and a residual.

* Inputs (:class:`worldfm_ros.learned.warp.WarpBundle`): per reference the colour inverse-warped
  through the splatted target depth, its visibility, depth disagreement, ray angle, scale
  change and the Plücker coordinates of the target rays in that reference's frame; for the
  target its inverse depth, coverage and unit ray directions.
* Everything heavy runs at **half resolution**: a shared per-reference encoder (1x1 convs),
  a visibility-weighted mean and a max over references (order-invariant, works for any
  number of valid references), and a small U-Net on the pooled features (three scales).
* Heads: one logit per reference (from its features and the U-Net context), a *fill* logit,
  a fill colour and a residual colour. The maps are upsampled to full resolution, reference
  logits are masked by full-resolution visibility, and

      rgb = sum_k softmax_k * warped_k + softmax_fill * fill + residual

  so covered pixels keep the full-resolution detail of the warped references, while holes
  are painted from context and seams/exposure differences are corrected by the residual.

Why this design: the budget is <= 60 ms per 320x240 view on two CPU cores end to end, and the
training budget about an hour of CPU. A network that regenerates the image (an encoder-decoder
producing RGB) has to learn texture copying and cannot keep full-resolution detail at
half-resolution cost; a blend-weight network starts as the plain blend of the warped
references (its heads are initialised near zero), so it is useful after minutes of training
and never loses sharpness. What was tried (redkitchen_a, leave-out protocol, 320x240; the
memory policy changed while this was built, so each line names its keyframe count):

* Inputs without depth fill (splat only, grey holes), untrained (= uniform blend): 21.11 dB
  (63 keyframes). Adding the push-pull target-depth fill and "plausible" samples: 23.66 dB
  (same memory): +2.5 dB from geometry alone, no learning.
* Hand-made "nearest reference first" blend on the same inputs: 25.79 dB: which reference to
  trust matters more than averaging, hence learned per-reference weights.
* The blend-weight network trained 10 min on synthetic worlds: 25.02 dB (63 keyframes),
  28.85 dB / SSIM 0.879 (195 keyframes, parallax insertion; geometric 25.81 / 0.854); trained
  8 min on redkitchen's own memory frames instead: 26.37 dB (63) / 27.73 dB (105).
* Speed: geometry features computed at full resolution and pooled cost 37 ms per forward
  (one thread); computed directly at half resolution 20 ms. The one-channel 3x3 reference head
  as tap sums (:class:`_TapConv3x3`): 24 ms -> 0.8 ms for that layer. Tried and dropped:
  1x1 convolutions as matrix products with weights split so shared inputs are not copied
  per reference (37 ms against 25 ms CPU time, slower), TorchScript freezing (no change).
* The full-resolution refinement (``refine_channels``) costs ~4 ms; it was added together with
  a change of the memory policy, so there is no clean A/B figure for it.

Checkpoints (:func:`save_checkpoint` / :func:`load_checkpoint`) are plain ``torch.save``
dictionaries with a ``format`` tag and ``version``; loading checks both and raises
:class:`worldfm_ros.core.errors.ModelLoadError` naming the file.
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from worldfm_ros.core.errors import ModelLoadError
from worldfm_ros.learned.warp import GEOMETRY_CHANNELS, TARGET_CHANNELS, WarpBundle

#: ``format`` tag every checkpoint carries.
CHECKPOINT_FORMAT = "worldfm_ros.learned.FrameModel"
#: Checkpoint layout version this code reads and writes.
CHECKPOINT_VERSION = 1
#: Spatial sizes are padded to a multiple of this (half resolution + three U-Net scales).
SIZE_MULTIPLE = 16


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of :class:`FrameModel`.

    Attributes:
        k: reference slots.
        ref_channels: width of the per-reference features.
        widths: U-Net widths at 1/2, 1/4, 1/8 and 1/16 of the target resolution.
        residual_scale: the residual colour is ``residual_scale * tanh(.)``.
        refine_channels: width of the full-resolution refinement (two 3x3 convolutions on
            the blended colour and the blend's peak weight, adding a detail residual); 0 = off.
    """

    k: int = 4
    ref_channels: int = 16
    widths: tuple = (16, 24, 32, 48)
    residual_scale: float = 0.25
    refine_channels: int = 12

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be an integer >= 1, got {self.k!r}")
        if len(self.widths) != 4:
            raise ValueError(f"widths must have 4 entries, got {self.widths!r}")


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2), nn.ReLU(inplace=True))


class _TapConv3x3(nn.Conv2d):
    """A 3x3, stride-1, zero-padded convolution computed as one 1x1 convolution to the
    ``9 * out_channels`` tap responses plus nine shifted sums: the same function (and the
    same parameters) as ``nn.Conv2d``, but 30x faster on CPU for one output channel, where
    PyTorch takes its slow im2col path (24 ms against 0.8 ms measured on [4, 16, 120, 160])."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        co, ci = self.weight.shape[:2]
        taps = F.conv2d(x, self.weight.permute(2, 3, 0, 1).reshape(9 * co, ci, 1, 1))  # [B, 9co, H, W]
        taps = F.pad(taps, (1, 1, 1, 1))
        H, W = x.shape[-2:]
        out = self.bias.view(1, -1, 1, 1).expand(x.shape[0], co, H, W)
        for i in range(3):
            for j in range(3):
                k = (i * 3 + j) * co
                out = out + taps[:, k:k + co, i:i + H, j:j + W]
        return out


class _UNet(nn.Module):
    """Three-scale U-Net on half-resolution maps: ``[B, cin, h, w] -> [B, widths[0], h, w]``."""

    def __init__(self, cin: int, widths):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = _conv(cin, w0, 1)
        self.down1 = nn.Sequential(_conv(w0, w1, 3, 2), _conv(w1, w1))
        self.down2 = nn.Sequential(_conv(w1, w2, 3, 2), _conv(w2, w2))
        self.down3 = nn.Sequential(_conv(w2, w3, 3, 2), _conv(w3, w3))
        self.up2 = _conv(w3 + w2, w2)
        self.up1 = _conv(w2 + w1, w1)
        self.up0 = _conv(w1 + w0, w0)

    @staticmethod
    def _up(x, like):
        return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x):
        x0 = self.stem(x)
        x1 = self.down1(x0)
        x2 = self.down2(x1)
        x3 = self.down3(x2)
        y2 = self.up2(torch.cat([self._up(x3, x2), x2], 1))
        y1 = self.up1(torch.cat([self._up(y2, x1), x1], 1))
        return self.up0(torch.cat([self._up(y1, x0), x0], 1))


class FrameModel(nn.Module):
    """Per-reference blend weights + hole fill + residual (see module docstring)."""

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        c = config.ref_channels
        per_ref_in = 3 + 2 + GEOMETRY_CHANNELS + TARGET_CHANNELS
        self.ref_encoder = nn.Sequential(_conv(per_ref_in, c, 1), _conv(c, c, 1))
        self.unet = _UNet(2 * c + TARGET_CHANNELS, config.widths)
        w0 = config.widths[0]
        self.ref_head = nn.Sequential(_conv(c + w0, c, 1), _TapConv3x3(c, 1))
        self.fill_head = nn.Conv2d(w0, 1 + 3 + 3, 3, padding=1)  # fill logit, fill rgb, residual rgb
        r = config.refine_channels
        self.refine = nn.Sequential(_conv(4, r), nn.Conv2d(r, 3, 3, padding=1)) if r else None
        with torch.no_grad():  # start (almost) as the plain visibility-weighted blend
            # Tiny, not zero, head weights: Adam then moves every layer from the first step.
            for head in (self.ref_head[-1], self.fill_head):
                head.weight.normal_(0.0, 1e-4)
                head.bias.zero_()
            self.fill_head.bias[0] = -6.0
            if self.refine is not None:
                self.refine[-1].weight.normal_(0.0, 1e-4)
                self.refine[-1].bias.zero_()

    @property
    def k(self) -> int:
        return self.config.k

    def forward(self, bundle: WarpBundle) -> torch.Tensor:
        """``rgb [B, 3, H, W]`` in [0, 1] for the bundle's targets."""
        colour = bundle.colour  # [B, K, 3, H, W]
        usable = bundle.valid + bundle.plausible  # [B, K, 1, H, W], 0 or 1
        B, K, _, H, W = colour.shape
        if K != self.k:
            raise ValueError(f"model has {self.k} reference slots, bundle has {K}")
        ph, pw = (-H) % SIZE_MULTIPLE, (-W) % SIZE_MULTIPLE

        def pooled(x: torch.Tensor) -> torch.Tensor:  # [B, K, C, H, W] -> [B*K, C, h, w]
            x = x.reshape(B * K, -1, H, W)
            if ph or pw:
                x = F.pad(x, (0, pw, 0, ph), mode="replicate")
            return F.avg_pool2d(x, 2)

        # Pool first, concatenate at half resolution (4x less copying than the other way round).
        per_ref = torch.cat([pooled(colour), pooled(usable), pooled(bundle.valid)], dim=1)  # [B*K, 5, h, w]
        h, w = per_ref.shape[-2:]
        geometry, target_h = bundle.geometry, bundle.target  # half resolution
        gh, gw = geometry.shape[-2:]
        if (gh, gw) != (h, w):
            geometry = F.pad(geometry.reshape(B * K, -1, gh, gw), (0, w - gw, 0, h - gh), mode="replicate")
            target_h = F.pad(target_h, (0, w - gw, 0, h - gh), mode="replicate")
        geometry = geometry.reshape(B * K, -1, h, w)
        v_h = per_ref[:, 3:4]
        rgb_h = per_ref[:, :3] / v_h.clamp_min(1e-3)  # mean colour of the usable samples
        glob = target_h.unsqueeze(1).expand(B, K, -1, h, w).reshape(B * K, -1, h, w)
        feats = self.ref_encoder(torch.cat([rgb_h, per_ref[:, 3:], geometry, glob], dim=1))  # [B*K, c, h, w]
        c = feats.shape[1]
        f5 = feats.view(B, K, c, h, w)
        v5 = v_h.view(B, K, 1, h, w)
        mean = (f5 * v5).sum(1) / v5.sum(1).clamp_min(1e-3)
        mx = (f5 * v5).amax(1)
        ctx = self.unet(torch.cat([mean, mx, target_h], dim=1))  # [B, w0, h, w]
        ctx_k = ctx.unsqueeze(1).expand(B, K, -1, h, w).reshape(B * K, -1, h, w)
        ref_logits = self.ref_head(torch.cat([feats, ctx_k], dim=1)).view(B, K, h, w)
        fill = self.fill_head(ctx)  # [B, 7, h, w]
        maps = torch.cat([ref_logits, fill], dim=1)
        maps = F.interpolate(maps, scale_factor=2, mode="bilinear", align_corners=False)[..., :H, :W]
        logits = torch.where(usable[:, :, 0] > 0, maps[:, :K], torch.full_like(maps[:, :K], -30.0))
        weights = torch.softmax(torch.cat([logits, maps[:, K:K + 1]], dim=1), dim=1)  # [B, K+1, H, W]
        fill_rgb = torch.sigmoid(maps[:, K + 1:K + 4])
        residual = self.config.residual_scale * torch.tanh(maps[:, K + 4:K + 7])
        rgb = torch.einsum("bkhw,bkchw->bchw", weights[:, :K], colour) + weights[:, K:K + 1] * fill_rgb + residual
        if self.refine is not None:
            peak = weights[:, :K].amax(1, keepdim=True)  # how much one reference dominates
            rgb = rgb + self.refine(torch.cat([rgb, peak], dim=1))
        return rgb.clamp(0.0, 1.0)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------- checkpoints
def save_checkpoint(path, model: FrameModel, *, extra: Optional[dict] = None,
                    optimizer: Optional[torch.optim.Optimizer] = None) -> None:
    """Write ``model`` (and optionally optimiser state and training bookkeeping) atomically."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_checkpoint(path) -> dict:
    """The checked payload of a checkpoint file (see :func:`load_checkpoint`)."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist", str(path))
    try:
        data = path.read_bytes()
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise ModelLoadError(f"model file {path} is not a readable checkpoint ({type(exc).__name__}: {exc})",
                             str(path)) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(f"model file {path} is not a worldfm_ros frame-model checkpoint", str(path))
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ModelLoadError(f"model file {path} has checkpoint version {payload.get('version')!r}; "
                             f"this code reads version {CHECKPOINT_VERSION}", str(path))
    return payload


def load_checkpoint(path, device="cpu") -> tuple[FrameModel, dict]:
    """``(model in eval mode on device, payload)``; :class:`ModelLoadError` naming the file
    when it is missing, damaged, foreign, of another version or does not fit the architecture."""
    payload = read_checkpoint(path)
    try:
        config = dict(payload["config"])
        config["widths"] = tuple(config["widths"])
        config.setdefault("refine_channels", 0)  # written before the refinement existed
        model = FrameModel(ModelConfig(**config))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"model file {path} does not match the frame model: {exc}", str(path)) from exc
    return model.to(device).eval(), payload
