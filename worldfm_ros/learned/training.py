"""The training loop behind ``worldfm-train``: sources, loss, validation, logs, checkpoints.

* Sources: a rolling :class:`~worldfm_ros.learned.data.SyntheticPool` (new worlds keep
  arriving) and/or posed RGB-D scenes (:func:`~worldfm_ros.learned.data.dataset_scene`,
  self-supervised leave-one-out). Each step draws ``batch`` random samples, crops them to
  ``crop`` and takes one Adam step on ``L1 + 0.2 * (1 - SSIM)``.
* Validation every ``val_every`` steps on a fixed set: the leave-out protocol on validation
  worlds (synthetic) or on held-out frames of the data (fine-tuning); PSNR and SSIM of the
  model and of the plain visibility-weighted blend (the model's starting point).
* Output folder: ``last.pt`` (resumable: model, optimiser, step, time, RNG and pool state),
  ``best.pt`` (best validation PSNR), ``model.pt`` (final weights only, shippable),
  ``log.csv`` and ``learning_curve.png``.
* Seeded: ``seed`` fixes world seeds, sample order, crops and initial weights.
"""

from __future__ import annotations

import csv
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from worldfm_ros.learned.data import (
    Sample,
    Scene,
    SyntheticPool,
    VALIDATION_SEED_BASE,
    dataset_scene,
    make_sample,
    protocol_samples,
    random_sample,
    synthetic_scene,
)
from worldfm_ros.core.evaluation import is_target
from worldfm_ros.learned.model import FrameModel, ModelConfig, load_checkpoint, read_checkpoint, save_checkpoint
from worldfm_ros.learned.warp import COARSE_STRIDE, WarpBundle

LOG_FIELDS = ("step", "elapsed_s", "loss", "lr", "val_psnr", "val_ssim", "val_blend_psnr", "val_blend_ssim")


@dataclass
class TrainConfig:
    """Options of :func:`train` (the CLI flags of ``worldfm-train``).

    Attributes:
        out_dir: where checkpoints and logs go.
        steps: optimisation steps (the run also stops after ``minutes``).
        minutes: wall-time budget [min], None = no limit.
        batch: samples per step.
        crop: ``(height, width)`` of training crops [px]; None = whole frames.
        lr: peak learning rate (cosine decay over steps or time, whichever is further).
        seed: seeds everything.
        synthetic: train on synthetic worlds.
        data: ``[(path, format), ...]`` posed RGB-D sources.
        data_scale: image scale of the sources (0.5: 640x480 -> 320x240).
        exclude_eval_targets: drop the leave-out protocol's targets from the sources.
        colour_focal_ratio: colour/depth registration of the sources: a number, or ``"auto"``
            (estimated per source from its frames); 1 = as read.
        synthetic_fraction: share of synthetic samples when both kinds are given.
        pool_size: synthetic scenes in memory at once.
        exact_fraction: share of synthetic scenes without the simulated sensor.
        loss: ``mse`` or ``log-mse`` (see :func:`loss_fn`).
        ssim_weight: weight of ``1 - SSIM`` in the loss.
        refresh_every: steps between replacing one synthetic scene.
        val_every, ckpt_every: steps between validations / checkpoints.
        val_scenes: synthetic validation worlds.
        init: checkpoint to start from (fine-tuning); its architecture is kept.
        resume: continue from ``out_dir/last.pt`` if it exists.
        device: ``cpu`` or ``cuda``.
        model: architecture of a fresh model.
        offtrack: off-trajectory targets per synthetic scene (training and validation worlds;
            see :mod:`worldfm_ros.learned.data`); 0 = none (the leave-one-out recipe).
        offtrack_fraction: share of synthetic samples whose target is off-trajectory.
        pushpull_fill: with ``init``: give the loaded model the push-pull hole fill
            (:attr:`ModelConfig.pushpull_fill`) if it lacks it; its other weights are kept and
            the fill colour head restarts at "continue the references".
        pushpull_full_resolution: with ``init``: switch this :class:`ModelConfig` option on
            in the loaded model (no new weights).
    """

    out_dir: Path
    steps: int = 3000
    minutes: Optional[float] = None
    batch: int = 4
    crop: Optional[tuple] = (128, 160)
    lr: float = 2e-3
    seed: int = 0
    synthetic: bool = True
    data: list = field(default_factory=list)
    data_scale: float = 0.5
    exclude_eval_targets: bool = True
    colour_focal_ratio: object = 1.0
    synthetic_fraction: float = 0.5
    pool_size: int = 6
    exact_fraction: float = 0.25
    loss: str = "mse"
    ssim_weight: float = 0.1
    refresh_every: int = 50
    val_every: int = 200
    ckpt_every: int = 100
    val_scenes: int = 2
    init: Optional[Path] = None
    resume: bool = True
    device: str = "cpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    offtrack: int = 0
    offtrack_fraction: float = 0.0
    pushpull_fill: bool = False
    pushpull_full_resolution: bool = False


def with_pushpull_fill(model: FrameModel) -> FrameModel:
    """A copy of ``model`` with :attr:`ModelConfig.pushpull_fill` on: every weight kept, the
    fill colour outputs (which meant a sigmoid colour, now a correction of the continuation)
    restarted near zero, so the copy starts as "the references' blend, continued into the holes"."""
    from dataclasses import replace

    new = FrameModel(replace(model.config, pushpull_fill=True))
    new.load_state_dict(model.state_dict())
    with torch.no_grad():
        new.fill_head.weight[1:4].normal_(0.0, 1e-4)
        new.fill_head.bias[1:4].zero_()
    return new


def with_options(model: FrameModel, **options) -> FrameModel:
    """A copy of ``model`` with :class:`ModelConfig` ``options`` changed that add no weights."""
    from dataclasses import replace

    new = FrameModel(replace(model.config, **options))
    new.load_state_dict(model.state_dict())
    return new


# ---------------------------------------------------------------------------- metrics
def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM per pixel of ``[B, 3, H, W]`` images in [0, 1] (7x7 uniform window, as scikit-image)."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    pool = lambda x: F.avg_pool2d(x, 7, 1, 0)  # noqa: E731
    mu_a, mu_b = pool(a), pool(b)
    n = 49.0 / 48.0  # scikit-image uses the sample covariance
    var_a = (pool(a * a) - mu_a * mu_a) * n
    var_b = (pool(b * b) - mu_b * mu_b) * n
    cov = (pool(a * b) - mu_a * mu_b) * n
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


#: Training losses (``worldfm-train --loss``); both add ``ssim_weight * (1 - SSIM)``.
LOSSES = ("mse", "log-mse")


def loss_fn(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse", ssim_weight: float = 0.1) -> torch.Tensor:
    """``mse``: ``20 MSE`` over the batch; ``log-mse``: ``0.02 ln(MSE_i + 1e-5)`` averaged over
    the samples ``i``, i.e. minus the mean PSNR up to a scale, so a sample's weight does not grow
    with its error (with plain MSE an exact world at 37 dB weighs ten times less than a noisy one
    at 27 dB, and the exact worlds' margin is what the synthetic acceptance measures). Both add
    ``ssim_weight (1 - SSIM)``.

    Squared error, not L1: PSNR is decided by the few pixels with large errors (on synthetic
    worlds 5 % of the pixels, at texture edges, hold 57-76 % of the squared error), and L1's
    optimum, the median, ignores them: a full-resolution refinement trained with L1 on
    blends of warped references learned nothing in 7,000 steps (+0.00 dB), with MSE +0.4 dB."""
    structure = ssim_weight * (1.0 - ssim_map(pred, target).mean())
    if kind == "mse":
        return 20.0 * ((pred - target) ** 2).mean() + structure
    if kind == "log-mse":
        per_sample = ((pred - target) ** 2).flatten(1).mean(1)
        return 0.02 * torch.log(per_sample + 1e-5).mean() + structure
    raise ValueError(f"unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")


def psnr_t(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR [dB] of images quantised to uint8 as the renderer delivers them."""
    p = torch.round(pred * 255.0) / 255.0
    mse = float(((p - target) ** 2).mean())
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def blend_baseline(bundle: WarpBundle) -> torch.Tensor:
    """The mean of the usable (visible or plausible) warped references, grey where there is
    none (``[B, 3, H, W]``): the fresh model's output, and the baseline validation reports."""
    w = (bundle.valid + bundle.plausible).sum(1)
    mean = bundle.colour.sum(1) / w.clamp_min(1.0)
    return torch.where(w > 0, mean, torch.full_like(mean, 0.5))


# ---------------------------------------------------------------------------- sources
class Sources:
    """Draws random training samples from the synthetic pool and/or the data scenes."""

    def __init__(self, config: TrainConfig, rng: np.random.Generator, k: int, counter: int = 0,
                 log: Callable[[str], None] = print):
        self.config = config
        self.rng = rng
        self.k = k
        self.pool = None
        self.scenes: list[Scene] = []
        for path, fmt in config.data:
            scene = dataset_scene(path, fmt, scale=config.data_scale, exclude_eval_targets=config.exclude_eval_targets,
                                  colour_focal_ratio=config.colour_focal_ratio)
            # Every 20th remaining frame is a validation target: out of the memories, never trained on.
            held = frozenset(i for i in range(len(scene.frames)) if i % 20 == 10)
            scene = Scene.build(scene.frames, scene.name, held)
            log(f"data {scene.name}: {len(scene.frames)} frames, {len(scene.memories[0])} keyframes, "
                f"{len(held)} validation targets")
            self.scenes.append(scene)
        if config.synthetic:
            log(f"generating {config.pool_size} synthetic scenes ...")
            options = {"offtrack": config.offtrack} if config.offtrack else {}
            self.pool = SyntheticPool(config.pool_size, stream=config.seed, counter=counter,
                                      exact_fraction=config.exact_fraction, **options)
        if self.pool is None and not self.scenes:
            raise ValueError("no training source: enable synthetic worlds or give --data")

    @property
    def counter(self) -> int:
        return self.pool.counter if self.pool is not None else 0

    def sample(self) -> Sample:
        use_synthetic = self.pool is not None and (not self.scenes or self.rng.random() < self.config.synthetic_fraction)
        if use_synthetic:
            scene = self.pool.scenes[int(self.rng.integers(len(self.pool.scenes)))]
        else:
            scene = self.scenes[int(self.rng.integers(len(self.scenes)))]
        if use_synthetic and self.config.offtrack:
            return random_sample(scene, self.rng, self.k, offtrack_fraction=self.config.offtrack_fraction)
        return random_sample(scene, self.rng, self.k)

    def validation_set(self) -> list[Sample]:
        samples: list[Sample] = []
        for scene in self.scenes:
            samples += protocol_samples(scene, self.k)
        if self.pool is not None:
            for n in range(self.config.val_scenes):
                seed = VALIDATION_SEED_BASE + n
                # Alternately a simulated sensor and exact frames: the model must serve both.
                probe = synthetic_scene(seed, sensor_strength=0.7 if n % 2 == 0 else 0.0, offtrack=self.config.offtrack)
                path = [i for i in range(len(probe.frames)) if i not in probe.offtrack]
                held = [i for i in path if is_target(i)]
                scene = Scene.build(probe.frames, probe.name, held, offtrack=probe.offtrack)
                samples += protocol_samples(scene, self.k, memories=(0, 1))  # node default + sparse
                if scene.offtrack:
                    samples += [make_sample(scene, i, self.k) for i in sorted(scene.offtrack)]
        return samples


# ---------------------------------------------------------------------------- loop
def _crop(sample: Sample, crop, rng: np.random.Generator) -> Sample:
    if crop is None:
        return sample
    ch, cw = crop
    H, W = sample.target.shape[-2:]
    if ch >= H and cw >= W:
        return sample
    ch, cw = min(ch, H), min(cw, W)
    s = COARSE_STRIDE  # offsets on the coarse grid: the coarse maps stay aligned
    y0 = s * int(rng.integers(0, (H - ch) // s + 1))
    x0 = s * int(rng.integers(0, (W - cw) // s + 1))
    return sample.crop(y0, x0, ch, cw)


def evaluate_samples(model: FrameModel, samples: list[Sample], device) -> dict:
    """Mean PSNR / SSIM of the model and of the plain blend over ``samples``."""
    model.eval()
    out = {"val_psnr": [], "val_ssim": [], "val_blend_psnr": [], "val_blend_ssim": []}
    with torch.inference_mode():
        for s in samples:
            b = s.bundle.to(device)
            t = s.target.to(device)
            pred = model(b)
            base = blend_baseline(b)
            for name, img in (("val", pred), ("val_blend", base)):
                q = torch.round(img * 255.0) / 255.0
                out[f"{name}_psnr"].append(psnr_t(img, t))
                out[f"{name}_ssim"].append(float(ssim_map(q, t).mean()))
    model.train()
    return {k: float(np.mean(v)) for k, v in out.items()}


def plot_curve(csv_path: Path, png_path: Path) -> None:
    """Training loss and validation PSNR against step, as a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(csv_path)))
    if not rows:
        return
    step = np.array([float(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) if r["loss"] else np.nan for r in rows])
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ok = np.isfinite(loss)
    ax[0].plot(step[ok], loss[ok], lw=0.8)
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("training loss")
    if ok.any() and (loss[ok] > 0).all():  # log-mse losses are negative: keep a linear axis
        ax[0].set_yscale("log")
    val = [(float(r["step"]), float(r["val_psnr"]), float(r["val_blend_psnr"])) for r in rows if r["val_psnr"]]
    if val:
        v = np.array(val)
        ax[1].plot(v[:, 0], v[:, 1], "o-", label="model")
        ax[1].plot(v[:, 0], v[:, 2], "--", label="visibility-weighted blend")
        ax[1].legend()
    ax[1].set_xlabel("step")
    ax[1].set_ylabel("validation PSNR [dB]")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def train(config: TrainConfig, *, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Run training; returns the last validation figures and the paths written."""
    from tqdm import tqdm

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(config.device)
    random.seed(config.seed)
    np.random.seed(config.seed % 2**32)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng([config.seed, 0x7A1])

    last = out / "last.pt"
    state = None
    if config.resume and last.exists():
        state = read_checkpoint(last)
        model, _ = load_checkpoint(last, device)
        log(f"resuming from {last} at step {state['extra']['step']}")
    elif config.init is not None:
        model, payload = load_checkpoint(config.init, device)
        log(f"fine-tuning from {config.init} (step {payload['extra'].get('step', '?')} of its run)")
        if config.pushpull_fill and not model.config.pushpull_fill:
            model = with_pushpull_fill(model).to(device)
            log("push-pull hole fill added; fill colour head restarts at the continuation")
        switches = {name: True for name in ("pushpull_full_resolution",)
                    if getattr(config, name) and not getattr(model.config, name)}
        if switches:
            model = with_options(model, **switches).to(device)
            log(f"model options switched on: {', '.join(switches)}")
    else:
        model = FrameModel(config.model).to(device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    step, elapsed, counter, best = 0, 0.0, 0, -math.inf
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        extra = state["extra"]
        step, elapsed, counter, best = extra["step"], extra["elapsed_s"], extra["counter"], extra.get("best", -math.inf)
        rng.bit_generator.state = extra["rng"]
        torch.set_rng_state(extra["torch_rng"])

    sources = Sources(config, rng, model.k, counter, log)
    val_set = sources.validation_set()
    log(f"validation: {len(val_set)} targets")
    csv_path = out / "log.csv"
    new_log = not csv_path.exists() or state is None
    csv_file = open(csv_path, "w" if new_log else "a", newline="")
    writer = csv.DictWriter(csv_file, fieldnames=LOG_FIELDS)
    if new_log:
        writer.writeheader()

    def checkpoint(path: Path, with_optimizer: bool, figures: Optional[dict] = None) -> None:
        extra = {"step": step, "elapsed_s": elapsed, "counter": sources.counter, "best": best,
                 "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                 "train_config": {k: str(v) for k, v in asdict(config).items()}}
        if figures:
            extra["validation"] = figures
        save_checkpoint(path, model, extra=extra, optimizer=optimizer if with_optimizer else None)

    def validate() -> dict:
        nonlocal best
        figures = evaluate_samples(model, val_set, device)
        writer.writerow({"step": step, "elapsed_s": f"{elapsed:.1f}", "loss": "", "lr": "",
                         **{k: f"{v:.4f}" for k, v in figures.items()}})
        csv_file.flush()
        log(f"step {step}: validation PSNR {figures['val_psnr']:.2f} dB (blend {figures['val_blend_psnr']:.2f}), "
            f"SSIM {figures['val_ssim']:.4f} (blend {figures['val_blend_ssim']:.4f})")
        if figures["val_psnr"] > best:
            best = figures["val_psnr"]
            checkpoint(out / "best.pt", False, figures)
        return figures

    budget = None if config.minutes is None else config.minutes * 60.0
    figures = validate() if step == 0 else {}
    bar = tqdm(total=config.steps, initial=step, disable=not progress, unit="step", dynamic_ncols=True)
    losses: list[float] = []
    t_start = time.monotonic() - elapsed
    while step < config.steps and (budget is None or elapsed < budget):
        frac = max(step / config.steps, 0.0 if budget is None else elapsed / budget)
        lr = config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        for g in optimizer.param_groups:
            g["lr"] = lr
        batch = Sample.stack([_crop(sources.sample(), config.crop, rng) for _ in range(config.batch)])
        pred = model(batch.bundle.to(device))
        loss = loss_fn(pred, batch.target.to(device), config.loss, config.ssim_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        elapsed = time.monotonic() - t_start
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lr=f"{lr:.1e}")
        if step % 10 == 0:
            writer.writerow({"step": step, "elapsed_s": f"{elapsed:.1f}", "loss": f"{np.mean(losses[-10:]):.5f}",
                             "lr": f"{lr:.2e}"})
            csv_file.flush()
        if sources.pool is not None and step % config.refresh_every == 0:
            sources.pool.refresh()
        if step % config.val_every == 0:
            figures = validate()
            plot_curve(csv_path, out / "learning_curve.png")
        if step % config.ckpt_every == 0:
            checkpoint(last, True)
    bar.close()
    if step % config.val_every != 0 or not figures:
        figures = validate()
    checkpoint(last, True)
    checkpoint(out / "model.pt", False, figures)
    csv_file.close()
    plot_curve(csv_path, out / "learning_curve.png")
    log(f"done: {step} steps in {elapsed / 60:.1f} min; model {out / 'model.pt'}")
    return {"figures": figures, "steps": step, "elapsed_s": elapsed, "model": str(out / "model.pt"),
            "best": str(out / "best.pt")}
