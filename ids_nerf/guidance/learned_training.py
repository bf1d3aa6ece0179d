"""Training the learned score model (:mod:`ids_nerf.guidance.learned`) on random scenes.

Epsilon MSE at timesteps drawn uniformly from [0, 1000) under SD 1.x's schedule, AdamW on the UNet and the caption
encoder together, captions dropped to the empty caption at a rate so that CFG has an unconditional model. The
training set is rendered once and kept in the model folder (``training-set/``); ``training.json`` records how the
model was made. Everything is written to a staging folder and renamed into place at the end.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ids_nerf.console import Stages
from ids_nerf.core import add_noise, sd_alphas_cumprod
from ids_nerf.errors import UserError
from ids_nerf.guidance.captions import CaptionEncoder, CaptionEncoderConfig
from ids_nerf.guidance.exact import PixelCodec
from ids_nerf.guidance.learned import KIND, MANIFEST, build_unet, save_learned
from ids_nerf.io import staged_output_dir
from ids_nerf.scenes.random_scenes import caption_words, render_training_set, rgb_on_white, single_object_captions

TRAINING_SET = "training-set"
TRAINING_FILE = "training.json"
GENERATOR = "ids_nerf.scenes.random_scenes 1"
"""Names the scene generator's version in the cache: a cache made by another version is rendered anew."""
EVAL_BATCH = 32
"""Images in the fixed batch whose loss is measured before and after training (same noise, same timesteps)."""


@dataclass(frozen=True)
class TrainingSettings:
    """What ``ids-nerf train-score-model`` takes (its options, with their units and ranges)."""

    scenes: int = 2000
    """Random scenes to render (at least 1)."""
    views_per_scene: int = 8
    """Camera views per scene (at least 1): radius 4, elevations 15-60 degrees, as the evaluation scene's."""
    size: int = 32
    """Image side in pixels, the model's native size; at least 8 and a multiple of 2^(len(channels) - 1)."""
    steps: int = 4000
    """Optimizer steps (at least 1); fewer when --minutes runs out first. The default fits about an hour on a
    2-core CPU (0.7 s a step measured on an idle one)."""
    batch_size: int = 32
    """Images per step (at least 1)."""
    lr: float = 5e-4
    """AdamW peak learning rate (> 0): warmed up linearly over the first 2 % of --steps, then cosine-decayed to
    0 at --steps (diffusers' schedule)."""
    seed: int = 0
    """Seed of the scenes, cameras, initial weights and batches; the same seed on the same device repeats a run."""
    caption_dropout: float = 0.15
    """Share of training captions replaced by the empty one, in [0, 1): the unconditional model CFG needs."""
    single_object_captions: float = 0.0
    """Share of training captions, in [0, 1], cut to one object's half ("a blue ball on a table" or "a green box
    on a table", evenly), the other object's colour left unsaid: each colour word is then also seen with the one
    object it belongs to, which teaches the model which object a colour binds to. Drawn among the captions that
    are not dropped. 0: every caption names both objects (how ``learned:default`` was trained)."""
    cube_share: float = 0.0
    """Share of scenes, in [0, 1], with a cube in the ball's place (captioned "a red cube and ..."), for the
    structure-changing edit ball -> cube. Positive: the vocabulary gains the word "cube". 0: no cubes (how
    ``learned:default`` was trained)."""
    minutes: Optional[float] = None
    """Time budget in minutes (> 0), rendering included: training stops when it is spent and the model is saved
    (at least one step is done). None: no budget."""
    channels: Tuple[int, ...] = (32, 64, 64)
    """UNet block widths, multiples of 32; each block after the first halves the resolution."""
    layers_per_block: int = 1
    """ResNet layers per UNet block (at least 1)."""
    caption_dim: int = 64
    """Width of the caption encoder's word vectors and the UNet's cross-attention (a multiple of 4)."""
    caption_position_std: float = 0.02
    """Initial spread of the caption encoder's position embeddings (> 0; its word embeddings start at 1): how
    strongly the encoder sees word order from the start, which it needs to tell "a blue ball and a green box"
    from "a green ball and a blue box". 0.02: how ``learned:default`` was trained."""
    log_every: int = 50
    """Steps per logged mean loss in training.json (at least 1)."""
    device: str = "auto"
    """auto (cuda when there is one, else cpu), cpu, or cuda[:N]."""

    def check(self) -> None:
        """Refuse bad settings with one line, before any work."""
        positive = {
            "--scenes": self.scenes,
            "--views-per-scene": self.views_per_scene,
            "--steps": self.steps,
            "--batch-size": self.batch_size,
            "--layers-per-block": self.layers_per_block,
            "--log-every": self.log_every,
        }
        for flag, value in positive.items():
            if value < 1:
                raise UserError(f"{flag} must be a positive whole number, not {value}")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, not {self.lr}")
        if not 0 <= self.caption_dropout < 1:
            raise UserError(f"--caption-dropout must be in [0, 1), not {self.caption_dropout}")
        if not 0 <= self.single_object_captions <= 1:
            raise UserError(f"--single-object-captions must be in [0, 1], not {self.single_object_captions}")
        if not 0 <= self.cube_share <= 1:
            raise UserError(f"--cube-share must be in [0, 1], not {self.cube_share}")
        if self.minutes is not None and not self.minutes > 0:
            raise UserError(f"--minutes must be positive, not {self.minutes}")
        if not self.channels or any(c < 32 or c % 32 for c in self.channels):
            raise UserError(f"--channels must be multiples of 32 (the UNet's group norm), not {self.channels}")
        multiple = 2 ** (len(self.channels) - 1)
        if self.size < 8 or self.size % multiple:
            raise UserError(f"--size must be at least 8 and a multiple of {multiple} (the UNet's downsampling)")
        if self.caption_dim < 4 or self.caption_dim % 4:
            raise UserError(
                f"--caption-dim must be a positive multiple of 4 (its attention heads), not {self.caption_dim}"
            )
        if not self.caption_position_std > 0:
            raise UserError(f"--caption-position-std must be positive, not {self.caption_position_std}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise UserError(f"--device must be auto, cpu or cuda[:N], not {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"--device {self.device}: CUDA is not available here; pass --device cpu")

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


def check_output(out: Path, overwrite: bool) -> None:
    """Refuse an output that holds anything, unless ``overwrite`` and it is a learned model folder."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output '{out}' exists and is not a folder; pass another OUT")
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise UserError(f"output '{out}' already exists and is not empty; pass --overwrite or another OUT")
    try:
        kind = json.loads((out / MANIFEST).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None
    if kind != KIND:
        raise UserError(f"--overwrite replaces only a learned score model folder, and '{out}' is not one; remove it")


def _cache_meta(settings: TrainingSettings) -> dict:
    keys = ("scenes", "views_per_scene", "size", "seed")
    cubes = {"cube_share": settings.cube_share} if settings.cube_share > 0 else {}  # older caches have no key
    return {"generator": GENERATOR, **{k: getattr(settings, k) for k in keys}, **cubes}


def _cached_set(folder: Path, meta: dict) -> Optional[Tuple[np.ndarray, List[str]]]:
    try:
        stored = json.loads((folder / "captions.json").read_text())
        if stored.get("meta") != meta:
            return None
        with np.load(folder / "images.npz") as data:
            return data["images"], list(stored["captions"])
    except (OSError, ValueError, KeyError):
        return None


def training_set(
    settings: TrainingSettings, staging: Path, previous: Optional[Path], stages: Stages
) -> Tuple[np.ndarray, List[str]]:
    """The RGBA uint8 renders and captions: from ``previous``'s cache when it was made alike, else rendered;
    written to ``staging``'s cache either way."""
    meta = _cache_meta(settings)
    total = settings.scenes * settings.views_per_scene
    stages.start(f"rendering {total} training views of {settings.scenes} random scenes")
    cached = _cached_set(previous / TRAINING_SET, meta) if previous is not None else None
    if cached is None:
        images, captions = render_training_set(
            settings.scenes,
            settings.views_per_scene,
            settings.size,
            settings.seed,
            progress=stages.progress,
            cube_share=settings.cube_share,
        )
    else:
        images, captions = cached
    cache = staging / TRAINING_SET
    cache.mkdir(parents=True)
    np.savez_compressed(cache / "images.npz", images=images)
    (cache / "captions.json").write_text(json.dumps({"meta": meta, "captions": captions}) + "\n")
    stages.done("reused the cache" if cached is not None else "")
    return images, captions


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions() -> dict:
    import diffusers

    import ids_nerf

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "numpy": np.__version__,
        "ids_nerf": getattr(ids_nerf, "__version__", "unknown"),
    }


class _EpsilonLoss:
    """The epsilon MSE of a batch, and of one fixed batch (the same images, noise and timesteps each time)."""

    def __init__(self, x0: torch.Tensor, ids: torch.Tensor, alphas: torch.Tensor, seed: int) -> None:
        self.x0, self.ids, self.alphas = x0, ids, alphas
        g = torch.Generator().manual_seed(seed + 1)
        pick = torch.randperm(len(x0), generator=g)[:EVAL_BATCH].to(x0.device)
        self.fixed = (
            pick,
            torch.linspace(0, 999, len(pick)).round().long().to(x0.device),  # timesteps spread over the range
            torch.randn(len(pick), *x0.shape[1:], generator=g).to(x0.device),
        )

    def __call__(self, unet, encoder, rows, t, noise, ids) -> torch.Tensor:
        z_t = add_noise(self.x0[rows], noise, t, self.alphas)
        return F.mse_loss(unet(z_t, t, encoder_hidden_states=encoder(ids)).sample, noise)

    @torch.no_grad()
    def fixed_batch(self, unet, encoder) -> float:
        rows, t, noise = self.fixed
        return float(self(unet, encoder, rows, t, noise, self.ids[rows]))


@dataclass
class CaptionDraw:
    """Each step's captions as word ids: the rows' own, some cut to one object's half
    (``single_object_captions``), some dropped to the empty caption (``caption_dropout``)."""

    settings: TrainingSettings
    ids: torch.Tensor
    """``[N, W]`` every training view's whole caption."""
    halves: List[torch.Tensor]
    """The ball's and the box's halves, each ``[N, W]``."""
    null: torch.Tensor
    """``[1, W]`` the empty caption."""

    def __call__(self, rows: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, device = len(rows), self.ids.device
        drop = (torch.rand(n, generator=g) < self.settings.caption_dropout).to(device)
        batch = self.ids[rows]
        if self.settings.single_object_captions > 0:  # drawn only then: a run without halves repeats bit for bit
            cut = (torch.rand(n, generator=g) < self.settings.single_object_captions).to(device)
            ball = (torch.rand(n, generator=g) < 0.5).to(device)
            half = torch.where(ball[:, None], self.halves[0][rows], self.halves[1][rows])
            batch = torch.where(cut[:, None], half, batch)
        return torch.where(drop[:, None], self.null, batch)


def train_score_model(
    out: Path, settings: TrainingSettings, command: str, overwrite: bool = False, stages: Optional[Stages] = None
) -> dict:
    """Render, train and write the model folder ``out``; returns what ``training.json`` holds."""
    from diffusers.optimization import get_cosine_schedule_with_warmup

    settings.check()
    out = Path(out)
    check_output(out, overwrite)
    started = time.time()
    deadline = started + settings.minutes * 60 if settings.minutes is not None else None
    stages = stages or Stages(3, sys.stdout)  # looked up now: a redirected stdout (tests, logs) gets it
    device = settings.resolved_device()
    previous = out if out.is_dir() and (out / TRAINING_SET).is_dir() else None
    with staged_output_dir(out, flag="OUT", replace=overwrite) as staging:
        images, captions = training_set(settings, staging, previous, stages)
        rendered = time.time()

        torch.manual_seed(settings.seed)
        encoder_config = CaptionEncoderConfig(
            caption_words(settings.cube_share > 0), dim=settings.caption_dim, position_std=settings.caption_position_std
        )
        encoder = CaptionEncoder(encoder_config).to(device)
        unet = build_unet(settings.size, settings.channels, settings.layers_per_block, settings.caption_dim).to(device)
        x0 = PixelCodec(1).encode(torch.from_numpy(rgb_on_white(images)).permute(0, 3, 1, 2)).to(device)
        ids = encoder.tokenize(captions)
        halves = [encoder.tokenize(list(h)) for h in zip(*map(single_object_captions, captions))]
        draw_captions = CaptionDraw(settings, ids, halves, encoder.tokenize([""]))
        alphas = sd_alphas_cumprod().float().to(device)
        loss_of = _EpsilonLoss(x0, ids, alphas, settings.seed)
        params = [*unet.parameters(), *encoder.parameters()]
        optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=1e-2)
        schedule = get_cosine_schedule_with_warmup(optimizer, max(1, settings.steps // 50), settings.steps)
        g = torch.Generator().manual_seed(settings.seed)

        stages.start(f"training on {len(x0)} views ({device})")
        initial_eval = loss_of.fixed_batch(unet, encoder)
        log, window, step = [], [], 0
        while step < settings.steps and (deadline is None or step == 0 or time.time() < deadline):
            rows = torch.randint(len(x0), (settings.batch_size,), generator=g).to(device)
            t = torch.randint(0, 1000, (settings.batch_size,), generator=g).to(device)
            noise = torch.randn(settings.batch_size, *x0.shape[1:], generator=g).to(device)
            batch_ids = draw_captions(rows, g)
            loss = loss_of(unet, encoder, rows, t, noise, batch_ids)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)  # the first steps' large losses must not blow up AdamW
            optimizer.step()
            schedule.step()
            step += 1
            window.append(float(loss.detach()))
            if step % settings.log_every == 0 or step == settings.steps:
                log.append([step, sum(window) / len(window)])
                window = []
            stages.progress(step, settings.steps)
        if window:  # stopped by the time budget between two logs
            log.append([step, sum(window) / len(window)])
        final_eval = loss_of.fixed_batch(unet, encoder)
        stopped_early = step < settings.steps
        stages.done(f"stopped at the time budget after {step} steps" if stopped_early else f"{step} steps")
        trained = time.time()

        stages.start("saving")
        save_learned(staging, unet.cpu(), encoder.cpu(), {"training": TRAINING_FILE})
        files = sorted(p for p in staging.rglob("*") if p.is_file() and TRAINING_SET not in p.parts)
        record = {
            "command": command,
            "seed": settings.seed,
            "settings": {**asdict(settings), "channels": list(settings.channels)},
            "device": str(device),
            "versions": _versions(),
            "steps_requested": settings.steps,
            "steps_done": step,
            "stopped_at_time_budget": stopped_early,
            "final_loss": log[-1][1],
            "loss_log": log,
            "fixed_batch_loss": {"before": initial_eval, "after": final_eval, "images": min(EVAL_BATCH, len(x0))},
            "training_views": len(x0),
            "seconds": {"rendering": round(rendered - started, 2), "training": round(trained - rendered, 2)},
            "sha256": {str(p.relative_to(staging)): _sha256(p) for p in files},
        }
        (staging / TRAINING_FILE).write_text(json.dumps(record, indent=2) + "\n")
        stages.done()
    return record
