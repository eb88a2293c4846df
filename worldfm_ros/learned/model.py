"""The frame model: K warped references + target geometry -> target colour.

Design (``FrameModel``, checkpoint version 2): per-reference blend weights with a sub-pixel
sharpness prior, plus a hole fill, a residual and a full-resolution refinement; the shipped
model also sees image-level context and the view's estimated reference misalignment.

* Inputs (:class:`worldfm_ros.learned.warp.WarpBundle`): per reference the colour inverse-warped
  (bicubic) through the splatted target depth, its visibility, its sub-pixel *phase*, depth
  disagreement, ray angle, scale change and the Plücker coordinates of the target rays in
  that reference's frame; for the target its inverse depth, coverage and unit ray directions.
* K = 8 references (the node retrieves as many as the model has slots).
* Everything heavy runs at **quarter resolution** (every 4th pixel): a shared per-reference
  encoder (1x1 convolutions; the target maps enter through their own weights, computed once
  and broadcast), a visibility-weighted mean and a max over references (order-invariant,
  works for any number of valid references), and a small U-Net (three scales).
* Heads: per reference a blend logit and a gate on the phase prior, a *fill* logit, a fill
  colour and a residual colour. The maps are upsampled to full resolution, and

      logit_k = head_k - gate_k * phase_k + min_j(gate_j * phase_j)   (usable references)
      rgb = sum_k softmax_k * warped_k + softmax_fill * fill + residual (+ refinement)

  ``phase_k`` (full resolution) is how far the sample lies from the reference's nearest pixel
  centre: a sample on a centre is that pixel, one between centres is an interpolation, i.e.
  blurred. Covered pixels keep the full-resolution detail of the warped references; holes are
  painted from context; seams and exposure differences are corrected by the residual.

Why this design: the budget is <= 60 ms per 320x240 view on two CPU cores end to end, and the
training budget about an hour of CPU. A network that regenerates the image (an encoder-decoder
producing RGB) has to learn texture copying and cannot keep full-resolution detail at coarse
cost; a blend-weight network starts as a blend of the warped references (its heads are
initialised near zero), so it is useful after minutes of training and never loses sharpness.

What was tried (leave-out protocol, 320x240, ``worldfm-eval`` or the same memory in a script;
"synthetic" = exported exact sequences of unseen worlds 3 / 7 / 11 / 23, geometric renderer
30.68 / 36.47 / 34.79 / 34.43 dB):

* Version 1 (K = 4, bilinear warps, half-resolution network, L1 + SSIM loss): redkitchen
  28.89 dB (geometric 26.01), synthetic only +0.25 to +0.50 dB over geometric. Its untrained
  blend already scored 28.72 dB on redkitchen: training hardly helped.
* Where the synthetic error is: 5 % of the pixels (texture edges) hold 57-76 % of the squared
  error. Oracles with the *true* target depth: bilinear mean of the 4 references 37.16 /
  30.96 dB (seeds 7 / 3), bicubic 38.11 / 32.05 dB: the depth is not the problem (the splatted
  depth loses 0.1 dB), interpolation blur is: bicubic +1.0 dB.
* A least-squares 5x5 sharpening filter on the bicubic blend: +0.1 dB. A 4-layer
  full-resolution CNN on it: +0.00 dB with an L1 loss after 7,000 steps (L1's optimum, the
  median, ignores the few large edge errors that decide PSNR), +0.4 dB with MSE: hence the
  MSE-dominated loss (``training.loss_fn``).
* More references and the phase prior (hand-set weights, no learning), seed 3 / 7 / 11 / 23:
  mean of 8 bicubic warps 32.35 / 38.28 / 36.63 / 36.46 dB, weighted by exp(-phase / 0.1)
  **32.97 / 38.83 / 37.33 / 37.11 dB** (+2.3 to +2.7 dB over geometric). The geometric
  renderer gains nothing from 8 references (30.70 against 30.68 dB on seed 3).
* On redkitchen (misregistered colour and depth) the same prior costs 0.2 dB and 8 uniformly
  blended references lose 1.7 dB against 4 (27.15 against 28.83 dB, untrained): there, the
  nearest references should dominate and samples should be averaged. Hence a *learned* gate
  on the prior and learned per-reference logits, trained on synthetic worlds with and
  without a simulated sensor.
* Trained 50 min (5,600 steps, one CPU thread) on synthetic worlds, session 2's
  model (step 4,200, best synthetic validation; without the inputs below) scores on the unseen seeds 3 / 7 /
  11 / 23 32.40 / 38.27 / 36.71 / 36.44 dB (+1.72 / +1.80 / +1.92 / +2.01 over geometric)
  and 28.68 dB / SSIM 0.874 on redkitchen (geometric 26.01 / 0.859). Along the run the
  synthetic margin shrank (step 400: +1.95 to +2.24) while redkitchen improved (27.82 dB /
  0.857 at step 400): the training worlds are three-quarters simulated-sensor worlds.
* On redkitchen the nearest references matter far more than in any simulated world: a
  single reference's warp loses 6 dB from the nearest to the eighth nearest (pose distance
  0.08 -> 0.37), on the simulated sensor 2-3 dB over 0.25 -> 1.1. Tried: a distance prior in
  the logits, initialised at exp(-10 d) and gated like the phase prior (``distance_prior``):
  28.11 dB untrained, but synthetic training moved it away (27.74 dB at step 400); and an
  uncorrected radial lens distortion in the simulated sensor (28.17 dB / 0.865 at step 400,
  32.43 on seed 3): neither was better, neither is in the shipped model. Half the worlds
  exact instead of a quarter (``worldfm-train --exact-fraction 0.5``, 27 min, best step
  1,800): +1.86 / +1.91 / +2.00 / +2.18 dB on the synthetic seeds and 28.41 dB / 0.872 on
  redkitchen; with lr 1e-3 +1.94 / +2.06 / +2.02 / +2.27 dB and 28.31 / 0.870. Not shipped:
  seed 3 stays below +2.0 and redkitchen loses 0.3-0.4 dB.
* Why redkitchen's references degrade with distance (``scripts/reference_misalignment.py``):
  a single reference warped to the target is misplaced by a near-global shift (median DIS
  flow) of 0.55 / 1.28 / 1.85 / 1.97 px at pose score 0-0.1 / 0.1-0.2 / 0.2-0.3 / 0.3-0.5,
  PSNR 28.80 / 25.88 / 23.87 / 22.96 dB. Warping as if the colour focal were 525 px (Kinect
  v1's colour camera) instead of the reported 585 (the depth camera's) halves the shift
  (0.33 / 0.58 / 0.91 / 0.62 px) and gains 1.9-3.2 dB per bucket: 7-Scenes' colour is wider
  than its intrinsics say. The simulated rig lacked this (0.17 / 0.24 / 0.35 / 0.63 px on a
  full-strength rig); half the simulated rigs are now unregistered like that (colour focal
  0.85-0.95 of depth's): 0.50 / 0.87 / 1.88 / 2.94 px, 31.6 / 30.5 / 29.3 / 27.0 dB, close to
  redkitchen.
* Trained 50 min like the version-2 model but with that rig, the per-sample ``log-mse`` loss
  and image-level context (``global_context``), best validation step 3,400: +1.83 / +2.14 /
  +2.27 / +2.23 dB on the synthetic seeds, 28.97 dB / 0.877 on redkitchen (the version-2
  model at the same step count with the old rig and loss: +1.75 / +1.87 / +1.92 / +2.04,
  28.35 / 0.871 at step 1,800). Along the run the trade-off stayed: step 1,600 +1.98 to
  +2.35 dB synthetic and 28.49 / 0.868; step 3,800 +1.62 to +1.94 and 29.06 / 0.880. Averaging
  those two checkpoints' weights lands between them (+1.80 to +2.15, 28.89 / 0.876).
* Hence an explicit view-level input (``misalignment_input``, :func:`view_misalignment`): the
  references' colour spread over the local gradient of their mean, about the shift between
  them in samples. Measured with 8 references: 0.03-0.07 on exact synthetic views, 0.11-0.49
  on simulated rigs, 0.22-0.50 on redkitchen: the network can tell an exact memory, where
  every reference helps, from a misregistered one, where the nearest should dominate.
  Trained 45 min with it (plus the rig, ``log-mse`` and ``global_context``; the shipped
  model, best validation = last step 5,221): **+2.10 / +2.42 / +2.52 / +2.54 dB** on the
  synthetic seeds and **28.95 dB / 0.877** on redkitchen, better on both than any checkpoint
  without it; redkitchen's SSIM still moves by +-0.01 between checkpoints (0.879 at step
  ~1,000, 0.860 at ~1,800). The network costs 1-2 ms more per view than without these inputs.
* Session 4: the same recipe with SSIM weight 0.4 instead of 0.1 (the shipped model, best
  validation step 3,400): +2.13 / +2.40 / +2.55 / +2.63 dB, redkitchen 28.98 dB / 0.8787
  (+0.0199 SSIM over geometric); with weight 1.0: +1.93 / +2.20 / +2.43 / +2.26 dB,
  28.86 / 0.8782. The SSIM weight does not clearly move redkitchen's SSIM.
* Session 5: registering 7-Scenes' depth to its colour camera
  (:mod:`worldfm_ros.core.colour_registration`, focal ratio 0.888 estimated from the memory
  frames) lets the same shipped model blend its eight references as on an exact memory:
  redkitchen 29.80 dB / 0.901 (unregistered 28.98 / 0.8787), central 60 % of the image
  31.02 dB against 30.22. The geometric renderer weights the nearest reference most and does
  not gain (29.21 against 29.18 dB there), and it loses the colour border that the narrower
  depth camera does not see (22.78 dB / 0.825 registered against 26.01 / 0.859).
* Also measured on that run family: ``log-mse`` alone or with an SSIM weight of 0.3 changed
  little at step 1,200 (+1.72 to +2.05 dB, 27.94-28.00 dB / 0.861-0.863 on redkitchen);
  the unregistered rig with batch MSE instead of ``log-mse``: +1.60 to +1.94 dB, 28.88 / 0.878
  at its best validation step.
* Speed (one thread, 320x240, K = 8): the version-1 network at K = 8 took 72 ms per forward;
  splitting the first layers (shared target maps computed once, no per-reference copies of
  the context) 56 ms; quarter instead of half resolution 28-35 ms (the per-reference 1x1
  layers are memory-bound: 20 MB per layer at half resolution). The 1-channel 3x3 heads as
  tap sums (:class:`_TapConv3x3`; 24 ms -> 0.8 ms in version 1). Tried and dropped: 1x1
  convolutions as batched matrix products (slower: torch copies the broadcast operand).
  Session 4 (same output bytes): upsampling only the samples that reach the image, and the
  full-resolution refinement channels-last (its 3x3 convolutions 4.4 -> 2.7 ms): forward
  42.6 -> 27.1 ms on one loaded thread.

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
from worldfm_ros.learned.warp import COARSE_STRIDE, GEOMETRY_CHANNELS, TARGET_CHANNELS, WarpBundle

#: ``format`` tag every checkpoint carries.
CHECKPOINT_FORMAT = "worldfm_ros.learned.FrameModel"
#: Checkpoint layout version this code reads and writes.
CHECKPOINT_VERSION = 2
#: The network's working resolution: every ``WORK_STRIDE``-th pixel of the target. Quarter
#: resolution: per-reference features of eight references at half resolution moved 20 MB per
#: layer (memory-bound, 56 ms per forward on one thread), at quarter resolution a fourth.
WORK_STRIDE = COARSE_STRIDE
#: Working-resolution maps are padded to a multiple of this (three U-Net scales).
UNET_MULTIPLE = 8


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of :class:`FrameModel`.

    Attributes:
        k: reference slots.
        ref_channels: width of the per-reference features.
        widths: U-Net widths at 1/4, 1/8, 1/16 and 1/32 of the target resolution.
        residual_scale: the residual colour is ``residual_scale * tanh(.)``.
        refine_channels: width of the full-resolution refinement (two 3x3 convolutions on
            the blended colour and the blend's peak weight, adding a detail residual); 0 = off.
        phase_log_scale: initial log weight of the references' sub-pixel phase in the blend
            logits (learned).
        distance_log_scale: initial log weight of the references' pose distance beyond the
            nearest one in the blend logits (learned).
        distance_prior: whether that prior exists (checkpoints written before it read as
            ``False``).
        global_context: whether the U-Net adds its deepest features' image mean back
            (checkpoints written before it read as ``False``).
        misalignment_input: whether the view's estimated reference misalignment (see
            :func:`view_misalignment`) is an input (checkpoints written before it read as
            ``False``).
    """

    k: int = 8
    ref_channels: int = 16
    widths: tuple = (16, 24, 32, 48)
    residual_scale: float = 0.25
    refine_channels: int = 12
    phase_log_scale: float = 2.3
    distance_log_scale: float = 2.3
    distance_prior: bool = False
    global_context: bool = False
    misalignment_input: bool = False
    #: Holes are filled with a push-pull continuation of the blended references (as the
    #: geometric renderer fills them) plus a learned correction, instead of a colour painted
    #: from context (checkpoints written before it read as ``False``). Off-trajectory views
    #: have large never-seen regions: the painted fill was a flat grey there.
    pushpull_fill: bool = False
    #: With ``pushpull_fill``: the continuation is computed at full resolution (sharp up to
    #: the hole's edge) instead of on the working-resolution samples (checkpoints written
    #: before it read as ``False``).
    pushpull_full_resolution: bool = False

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
        B, _, H, W = x.shape
        taps = torch.matmul(self.weight.permute(2, 3, 0, 1).reshape(9 * co, ci), x.reshape(B, ci, H * W))
        taps = taps.view(B, 9 * co, H, W)  # the tap responses (a 1x1 convolution as a matrix product)
        taps = F.pad(taps, (1, 1, 1, 1))
        H, W = x.shape[-2:]
        out = self.bias.view(1, -1, 1, 1).expand(x.shape[0], co, H, W)
        for i in range(3):
            for j in range(3):
                k = (i * 3 + j) * co
                out = out + taps[:, k:k + co, i:i + H, j:j + W]
        return out


class _UNet(nn.Module):
    """Three-scale U-Net on the working-resolution maps: ``[B, cin, h, w] -> [B, widths[0], h, w]``."""

    def __init__(self, cin: int, widths, global_context: bool = False):
        super().__init__()
        w0, w1, w2, w3 = widths
        # Image-level context: the deepest features' spatial mean, mixed and added back, so
        # every place knows what kind of view this is (e.g. whether the references agree
        # everywhere, as exact ones do, or disagree, as a real rig's do).
        self.global_mix = nn.Conv2d(w3, w3, 1) if global_context else None
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
        if self.global_mix is not None:
            x3 = x3 + F.relu(self.global_mix(x3.mean((2, 3), keepdim=True)))
        y2 = self.up2(torch.cat([self._up(x3, x2), x2], 1))
        y1 = self.up1(torch.cat([self._up(y2, x1), x1], 1))
        return self.up0(torch.cat([self._up(y1, x0), x0], 1))


class FrameModel(nn.Module):
    """Per-reference blend weights + hole fill + residual (see module docstring)."""

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        c = config.ref_channels
        w0 = config.widths[0]
        # Per-reference encoder. Its first layer is split into the part that sees the
        # reference (``ref_in``) and the part that sees the shared target maps (``target_in``),
        # computed once and broadcast over the K references: the same function as one 1x1
        # convolution of the concatenation, without K copies of the target maps.
        # + disagreement with the others, + pose distance beyond the nearest reference's
        self.ref_in = nn.Conv2d(3 + 2 + GEOMETRY_CHANNELS + 2, c, 1)
        n_ctx = TARGET_CHANNELS + 1 + int(config.misalignment_input)  # + spread (+ misalignment)
        self.target_in = nn.Conv2d(n_ctx, c, 1, bias=False)
        self.ref_mid = nn.Conv2d(c, c, 1)
        self.unet = _UNet(2 * c + n_ctx, config.widths, config.global_context)
        # Per reference: a blend logit and a gate on the sub-pixel phase prior (see forward);
        # first layer split likewise (reference features + broadcast context).
        self.head_ref = nn.Conv2d(c, c, 1)
        self.head_ctx = nn.Conv2d(w0, c, 1, bias=False)
        self.head_out = _TapConv3x3(c, 3 if config.distance_prior else 2)
        self.fill_head = nn.Conv2d(w0, 1 + 3 + 3, 3, padding=1)  # fill logit, fill rgb, residual rgb
        # log of the weight of the sub-pixel phase in the blend logits; exp(2.3) = 10, i.e. a
        # sample half a pixel off-centre in both axes counts e^-5 of one on a centre.
        self.phase_scale = nn.Parameter(torch.tensor(float(config.phase_log_scale)))
        # log of the weight of the distance prior (logit -= weight * distance beyond the
        # nearest reference); exp(2.3) = 10: on redkitchen exp(-10 d) weighting of 8
        # references gave 28.81 dB against 27.15 for their mean. Gated per reference and
        # place like the phase prior, so exact references can still all be averaged.
        self.distance_scale = (nn.Parameter(torch.tensor(float(config.distance_log_scale)))
                               if config.distance_prior else None)
        r = config.refine_channels
        self.refine = nn.Sequential(_conv(4, r), nn.Conv2d(r, 3, 3, padding=1)) if r else None
        with torch.no_grad():  # start (almost) as the phase-weighted blend
            # Tiny, not zero, head weights: Adam then moves every layer from the first step.
            for head in (self.head_out, self.fill_head):
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
        s = WORK_STRIDE
        # Samples cover pixels 0, s, 2s, ...; one more than ceil(H / s) when needed so that the
        # last sample lies at or beyond the last pixel (no padding at full resolution).
        # Ceilings as floor divisions of positive numbers: an ONNX export traces these sizes,
        # and ONNX integer division truncates (-(-x // s) would round the wrong way there).
        h, w = (H + s - 2) // s + 1, (W + s - 2) // s + 1
        m = UNET_MULTIPLE
        hp, wp = (h + m - 1) // m * m, (w + m - 1) // m * m

        def half(x: torch.Tensor, even: bool = True) -> torch.Tensor:
            """Samples at every ``s``-th pixel: of ``[..., C, H, W]`` full-resolution maps
            (``even``) or the warp's coarse maps (already sampled there) -> ``[N, C, hp, wp]``,
            padded to the U-Net's size multiple."""
            x = x[..., ::s, ::s] if even else x
            x = x.reshape(-1, *x.shape[-3:])
            if (hp, wp) != x.shape[-2:]:
                x = F.pad(x, (0, wp - x.shape[-1], 0, hp - x.shape[-2]), mode="replicate")
            return x

        v_h = half(bundle.valid)  # [B*K, 1, hp, wp]
        u_h = half(usable)
        col_h = half(colour)
        # Consensus: how far each reference's colour is from the mean of the usable ones. Exact
        # references agree up to interpolation; misregistered ones (a real RGB-D rig, pose
        # drift between visits) disagree, and then the nearest references should dominate and
        # samples be averaged rather than picked by their sub-pixel phase.
        u5 = u_h.view(B, K, 1, hp, wp)
        n = u5.sum(1).clamp_min(1.0)
        mean_rgb = (col_h.view(B, K, 3, hp, wp) * u5).sum(1, keepdim=True) / n[:, None]
        dev = (col_h.view(B, K, 3, hp, wp) - mean_rgb).abs().sum(2, keepdim=True) * u5 * 4.0  # [B, K, 1, hp, wp]
        spread = dev.sum(1) / n  # [B, 1, hp, wp]
        geometry = half(bundle.geometry, even=False)  # [B*K, 11, hp, wp]
        # How much farther (metres / 0.3 + degrees of rotation / 20, like the memory's ranking) this
        # reference is than the nearest one: on real rigs the nearest references should
        # dominate (redkitchen: weighting 8 references by exp(-20 distance) 29.10 dB against
        # 27.15 for their mean), on exact worlds all of them help (32.35 against 31.55).
        score = (geometry[:, 9, 0, 0] * (0.1 / 0.3) + geometry[:, 10, 0, 0] * (0.1 * 57.29578 / 20.0)).view(B, K)
        present = u_h.view(B, K, -1).amax(2) > 0
        nearest = score.masked_fill(~present, 1e4).amin(1, keepdim=True)
        farther = ((score - nearest).clamp(0.0, 3.0) * present).view(B * K, 1, 1, 1).expand(B * K, 1, hp, wp)
        per_ref = torch.cat([col_h, u_h, v_h, geometry, dev.view(B * K, 1, hp, wp), farther], dim=1)
        target_h = torch.cat([half(bundle.target, even=False), spread], dim=1)  # [B, 7, hp, wp]
        if self.config.misalignment_input:
            both = (n > 1.5).float()  # [B, 1, hp, wp]: places seen by two references or more
            target_h = torch.cat([target_h, view_misalignment(mean_rgb[:, 0], spread, both).expand(B, 1, hp, wp)], 1)
        c = self.config.ref_channels
        feats = self.ref_in(per_ref).view(B, K, c, hp, wp) + self.target_in(target_h)[:, None]
        feats = F.relu(self.ref_mid(F.relu(feats).view(B * K, c, hp, wp)))  # [B*K, c, hp, wp]
        f5 = feats.view(B, K, c, hp, wp)
        v5 = v_h.view(B, K, 1, hp, wp)
        mean = (f5 * v5).sum(1) / v5.sum(1).clamp_min(1e-3)
        mx = (f5 * v5).amax(1)
        ctx = self.unet(torch.cat([mean, mx, target_h], dim=1))  # [B, w0, hp, wp]
        z = F.relu(self.head_ref(feats).view(B, K, c, hp, wp) + self.head_ctx(ctx)[:, None])
        heads = self.head_out(z.view(B * K, c, hp, wp)).view(B, K, -1, hp, wp)
        fill = self.fill_head(ctx)  # [B, 7, hp, wp]
        extra = []
        if self.config.pushpull_fill and not self.config.pushpull_full_resolution:  # blend continued into holes
            extra = [_push_pull(mean_rgb[:, 0], (u5.sum(1) > 0).float())]  # [B, 3, hp, wp]
        ref_logits = heads[:, :, 0]
        if self.distance_scale is not None:
            distance_gate = (self.distance_scale + heads[:, :, 2]).clamp(-10.0, 5.0).exp()
            ref_logits = ref_logits - distance_gate * farther.view(B, K, hp, wp)
        if torch.onnx.is_in_onnx_export():
            return self._export_tail(bundle, usable, ref_logits, heads[:, :, 1], torch.cat([fill] + extra, dim=1),
                                     h, w)
        maps = torch.cat([ref_logits, heads[:, :, 1], fill] + extra, dim=1)
        # Samples -> full resolution (align_corners: sample i sits at pixel s * i). Only the
        # h x w samples that reach the image are upsampled (the U-Net padding is dropped
        # first: the same values, as the scale (h - 1) / (s (h - 1)) is 1 / s either way).
        maps = F.interpolate(maps[..., :h, :w], size=(s * (h - 1) + 1, s * (w - 1) + 1), mode="bilinear",
                             align_corners=True)[..., :H, :W]
        # Sharpness prior at full resolution: a sample near a reference pixel centre is nearly
        # that pixel, one between centres is an interpolation (blurred); the phase varies from
        # pixel to pixel, which the coarse logits cannot express. How much to trust
        # it is gated per reference and place (exact references: much; misregistered ones,
        # whose blend should rather average: little).
        # The penalty is relative to the best usable reference at the pixel, so the prior
        # only ranks references and never shifts weight to the hole fill.
        unusable = usable[:, :, 0] <= 0
        penalty = (self.phase_scale + maps[:, K:2 * K]).clamp(-10.0, 5.0).exp() * bundle.phase[:, :, 0]
        best = penalty.masked_fill(unusable, 1e4).amin(1, keepdim=True)
        logits = (maps[:, :K] - penalty + best).masked_fill_(unusable, -30.0)
        weights = torch.softmax(torch.cat([logits, maps[:, 2 * K:2 * K + 1]], dim=1), dim=1)  # [B, K+1, H, W]
        if self.config.pushpull_fill:  # continuation + learned correction
            if self.config.pushpull_full_resolution:
                n_full = usable.sum(1)  # [B, 1, H, W]
                blend = torch.mul(colour[:, 0], usable[:, 0])  # slot by slot: the broadcast [B, K, 3, H, W]
                for i in range(1, K):  # product took 2 ms a view, these 0.3 (same values, same order)
                    blend.addcmul_(colour[:, i], usable[:, i])
                blend = blend / n_full.clamp_min(1.0)
                base = _push_pull(blend, (n_full > 0).float(), max_levels=10)
            else:
                base = maps[:, 2 * K + 7:2 * K + 10]  # upsampled with the other maps
            # tanh of a contiguous copy: on the cropped map's strided rows it ran at half speed
            fill_rgb = (base + 0.5 * torch.tanh(maps[:, 2 * K + 1:2 * K + 4].contiguous())).clamp(0.0, 1.0)
        else:
            fill_rgb = torch.sigmoid(maps[:, 2 * K + 1:2 * K + 4])
        residual = self.config.residual_scale * torch.tanh(maps[:, 2 * K + 4:2 * K + 7].contiguous())
        rgb = torch.addcmul(residual, weights[:, K:K + 1], fill_rgb)
        for i in range(K):  # in place, slot by slot: no [B, K, 3, H, W] temporary
            rgb.addcmul_(weights[:, i:i + 1], colour[:, i])
        return self._refined(rgb, weights[:, :K])

    def _refined(self, rgb: torch.Tensor, ref_weights: torch.Tensor) -> torch.Tensor:
        """The refinement of the blend (when configured), clamped to [0, 1]."""
        if self.refine is not None:
            peak = ref_weights.amax(1, keepdim=True)  # how much one reference dominates
            # channels-last: oneDNN's 3x3 convolutions with 4 and 12 channels at full
            # resolution run 1.6x faster on CPU in that layout (same values).
            detail = self.refine(torch.cat([rgb, peak], dim=1).contiguous(memory_format=torch.channels_last))
            rgb = rgb + detail.contiguous()
        return rgb.clamp(0.0, 1.0)

    def _export_tail(self, bundle: WarpBundle, usable: torch.Tensor, ref_logits: torch.Tensor,
                     gates: torch.Tensor, fill: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """The full-resolution part of :meth:`forward` as traced into ONNX: the same values,
        spelled in operations ONNX Runtime's CPU provider runs fast. Each group of maps is
        upsampled on its own (no full-resolution channel slices of one stacked map), the
        reference axis of 5-D inputs is dropped by a reshape (not a gather), masks are
        arithmetic on 0/1 (its Where broadcasts slowly), the softmax over references and fill
        is spelled out (its Softmax over a non-last axis transposes) and the blend is one
        product and one sum (the in-place loop became 8 gathers, products and sums):
        with the session at ORT_ENABLE_EXTENDED, 20.3 -> 17.0 ms per 320x240 forward on 2 threads
        (docs/deployment.md)."""
        colour = bundle.colour
        B, K, _, H, W = colour.shape
        s = WORK_STRIDE

        def up(x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x[..., :h, :w], size=(s * (h - 1) + 1, s * (w - 1) + 1), mode="bilinear",
                                 align_corners=True)[..., :H, :W]

        usable_k = usable.reshape(B, K, H, W)
        off = (usable_k <= 0).float()
        penalty = (self.phase_scale + up(gates)).clamp(-10.0, 5.0).exp() * bundle.phase.reshape(B, K, H, W)
        best = (penalty + off * (1e4 - penalty)).amin(1, keepdim=True)
        logits = (up(ref_logits) - penalty + best) * (1.0 - off) - 30.0 * off
        fill_logit = up(fill[:, 0:1])
        top = torch.maximum(logits.amax(1, keepdim=True), fill_logit)
        e_refs = (logits - top).exp()
        e_fill = (fill_logit - top).exp()
        total = e_refs.sum(1, keepdim=True) + e_fill
        w_refs, w_fill = e_refs / total, e_fill / total
        if self.config.pushpull_fill:
            if self.config.pushpull_full_resolution:
                n_full = usable.sum(1)
                blend = (colour * usable).sum(1) / n_full.clamp_min(1.0)
                base = _push_pull(blend, (n_full > 0).float(), max_levels=10)
            else:
                base = up(fill[:, 7:10])
            fill_rgb = (base + 0.5 * torch.tanh(up(fill[:, 1:4]))).clamp(0.0, 1.0)
        else:
            fill_rgb = torch.sigmoid(up(fill[:, 1:4]))
        residual = self.config.residual_scale * torch.tanh(up(fill[:, 4:7]))
        rgb = residual + w_fill * fill_rgb + (w_refs[:, :, None] * colour).sum(1)
        return self._refined(rgb, w_refs)


def _push_pull(colour: torch.Tensor, weight: torch.Tensor, max_levels: int = 8) -> torch.Tensor:
    """Batched push-pull fill (as :func:`worldfm_ros.core.renderers.hole_filling.push_pull`):
    ``colour [B, C, h, w]`` where ``weight [B, 1, h, w]`` is 1, filled from the surroundings
    elsewhere; a view with no weight at all comes out 0.5."""
    c, w = colour * weight, weight
    pyramid = []
    for _ in range(max_levels):
        pyramid.append((c, w))
        if min(c.shape[-2:]) <= 1:
            break
        c = F.avg_pool2d(c, 2, ceil_mode=True)
        w = F.avg_pool2d(w, 2, ceil_mode=True)
        scale = torch.clamp(w * 4.0, max=1.0) / w.clamp(min=1e-12)  # a partly known cell counts as known
        c, w = c * scale, w * scale
    top_c, top_w = pyramid[-1]
    # The coarsest level's mean over the view (0.5 where nothing is known) behind everything.
    mean = top_c.sum((2, 3), keepdim=True) / top_w.sum((2, 3), keepdim=True).clamp(min=1e-12)
    mean = torch.where(top_w.sum((2, 3), keepdim=True) > 0, mean, torch.full_like(mean, 0.5))
    filled = top_c + (1.0 - top_w) * mean
    for c, w in reversed(pyramid[:-1]):
        up = F.interpolate(filled, size=c.shape[-2:], mode="bilinear", align_corners=False)
        filled = c + (1.0 - w) * up  # c is premultiplied by w
    return filled


def view_misalignment(mean_rgb: torch.Tensor, spread: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, 1, 1, 1]``: how far the references disagree in units of sample spacing, for
    the whole view: the references' colour spread divided by the local colour gradient of
    their mean, summed over ``mask``. A shift of d samples between references spreads a
    colour edge by about d times its gradient, so this is about d: small for exact references
    (interpolation only), large for a misregistered rig's (redkitchen: 1-2 pixels)."""
    gx = (mean_rgb[..., :, 1:] - mean_rgb[..., :, :-1]).abs().sum(1, keepdim=True)
    gy = (mean_rgb[..., 1:, :] - mean_rgb[..., :-1, :]).abs().sum(1, keepdim=True)
    grad = F.pad(gx, (0, 1, 0, 0)) + F.pad(gy, (0, 0, 0, 1))  # [B, 1, hp, wp]
    num = (spread * mask).sum((1, 2, 3), keepdim=True) / 4.0  # spread carries a factor 4
    return (num / ((grad * mask).sum((1, 2, 3), keepdim=True) + 1e-2)).clamp(0.0, 4.0)


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
        # Written before the prior was optional: it exists if its weight was saved.
        config.setdefault("distance_prior", "distance_scale" in payload["state_dict"])
        config.setdefault("global_context", False)
        config.setdefault("misalignment_input", False)
        config.setdefault("pushpull_fill", False)
        config.setdefault("pushpull_full_resolution", False)
        model = FrameModel(ModelConfig(**config))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"model file {path} does not match the frame model: {exc}", str(path)) from exc
    return model.to(device).eval(), payload
