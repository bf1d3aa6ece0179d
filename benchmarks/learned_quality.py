"""How good the learned score model is, and how it errs: held-out denoising loss by t, whether its samples
follow the caption, and the posterior-mean error that FPR exists to correct.

    python -m benchmarks.learned_quality --scene SCENE [--model learned:default] [--source-run RUN] [--out DIR]
        [--sweep 8]

SCENE is an ``ids-nerf make-scene`` scene (the evaluation layout, which no training scene has). It prints:

1. **Denoising loss by t** (epsilon MSE, no CFG) on ``--held-out`` random scenes drawn with a seed the model was
   not trained on, beside the same count of its own training scenes: the gap is what it memorised.
2. **Caption following.** SDEdit (DDIM from t = ``--sdedit-t``, CFG 7.5) of SCENE's test views under a few
   captions, each object's colour read inside SCENE's own object masks as the palette colour of nearest
   chromaticity; and samples from pure noise for the figure ``DIR/samples.png``. ``--sweep V`` repeats it on
   V training views at CFG 1, 3, 7.5 and t = 400, 600.
3. **The posterior-mean error** ``||z_src - z_0|t(z_src)||`` on the source's training views (RUN's renders, or
   SCENE's ground-truth source views without ``--source-run``), before and after FPR, for this model and for
   SCENE's exact-score model (``benchmarks.fpr_by_timestep``).
4. **Shape following**, when SCENE has the "cube" appearance (``make-scene --appearances cube``) and the model
   knows the word: SDEdit of the source's test views under the source caption and the cube caption, and the
   mean redness where only the cube stands (its corners) and where only the ball does (its top).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ids_nerf.core import add_noise
from ids_nerf.guidance.score_model import ScoreModel
from ids_nerf.scenes.random_scenes import PALETTE

LOSS_TIMESTEPS = (20, 50, 100, 200, 300, 500, 700, 900, 980)
CAPTIONS = (
    "a red ball and a green box on a table",
    "a blue ball and a green box on a table",
    "a yellow ball and a green box on a table",
    "a red ball and a purple box on a table",
)
"""The evaluation scene's source and edit captions, and two more the training set's palette names."""
OBJECTS = {"ball": 2, "box": 3}
"""Object ids in a make-scene mask (``scene.json`` "objects")."""


def ddim_scheduler(steps: int):
    """diffusers' DDIM sampler on SD 1.x's schedule, the one every score model here uses."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    scheduler.set_timesteps(steps)
    return scheduler


@torch.no_grad()
def sample(
    model: ScoreModel,
    caption: str,
    z_start: torch.Tensor,
    t_start: int = 999,
    steps: int = 50,
    seed: int = 0,
) -> torch.Tensor:
    """DDIM samples ``[B, 3, H, W]`` in [0, 1] of ``caption`` with the model's own CFG: from ``z_start`` noised
    to the first of ``steps`` timesteps at or below ``t_start`` (SDEdit), or from pure noise of its shape when
    ``t_start`` is 999 or more."""
    scheduler = ddim_scheduler(steps)
    timesteps = [t for t in scheduler.timesteps if int(t) <= t_start]
    noise = torch.randn(z_start.shape, generator=torch.Generator().manual_seed(seed))
    if t_start >= 999:
        z = noise
    else:
        z = add_noise(z_start, noise, timesteps[0].reshape(1).expand(len(z_start)), model.alphas_cumprod)
    cond = model.embed_prompt(caption)
    cond = cond.expand(len(z), *cond.shape[1:])
    for t in timesteps:
        eps = model.score_fn(z, t.reshape(1).expand(len(z)), cond)
        step = scheduler.step(eps, t, z)
        z = step.prev_sample
    # the last step's x0 prediction: its prev_sample keeps the noise of alpha_bar(0) < 1 (SD's DDIM config)
    return model.decode(step.pred_original_sample).clamp(0, 1)


SWAPPED = ("a blue ball and a green box on a table", "a green ball and a blue box on a table")


def word_order_sensitivity(encoder) -> float:
    """How differently ``encoder`` (a :class:`CaptionEncoder`) encodes the two captions of :data:`SWAPPED` than a
    swap of their colour words' vectors would: the relative norm of the difference. Near 0 the encoder sees the
    colour words but not which noun each stands before, and the UNet's cross-attention, which takes the
    caption's vectors as a set, cannot bind a colour to its object."""
    from ids_nerf.guidance.captions import split_words

    words = split_words(SWAPPED[0])
    first, second = words.index("blue"), words.index("green")
    with torch.no_grad():
        a, b = encoder.encode(list(SWAPPED))
    swapped = a.clone()
    swapped[[first, second]] = a[[second, first]]
    return float((swapped - b).norm() / b.norm())


@torch.no_grad()
def loss_by_timestep(
    model: ScoreModel, images: torch.Tensor, captions: Sequence[str], timesteps=LOSS_TIMESTEPS, seed: int = 0
) -> Dict[int, float]:
    """Mean epsilon MSE at each timestep of ``images`` ``[N, 3, H, W]`` in [0, 1] under their ``captions``, with
    the same noise at every t; the model's CFG should be 1 (the trained conditional prediction)."""
    z0 = model.encode(images)
    cond = torch.cat([model.embed_prompt(c) for c in captions])
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(seed))
    losses = {}
    for step in timesteps:
        t = torch.full((len(z0),), step, dtype=torch.long)
        eps = model.score_fn(add_noise(z0, noise, t, model.alphas_cumprod), t, cond)
        losses[step] = torch.mean((eps - noise) ** 2).item()
    return losses


def _chromaticity(rgb: np.ndarray) -> np.ndarray:
    return rgb / np.maximum(rgb.sum(-1, keepdims=True), 1e-6)


PALETTE_NAMES = tuple(PALETTE)
PALETTE_CHROMA = _chromaticity(np.array([PALETTE[n] for n in PALETTE_NAMES]))


def object_colour(image: torch.Tensor, mask: torch.Tensor) -> str:
    """The palette name nearest in chromaticity (shading divided out) to the median colour of ``image``
    ``[3, H, W]`` inside ``mask`` ``[H, W]`` (the median: edge pixels are blended with what lies behind)."""
    median = image[:, mask].median(1).values.numpy()
    return PALETTE_NAMES[int(np.argmin(((PALETTE_CHROMA - _chromaticity(median)) ** 2).sum(1)))]


def redness(images: torch.Tensor) -> torch.Tensor:
    """``[..., H, W]`` how far each pixel's red exceeds its green and blue, ``max(0, r - max(g, b))``, of
    ``images`` ``[..., 3, H, W]`` in [0, 1]: about 0.25-0.75 on the red ball or cube (by shading), 0 on the grey
    table and the white background, and partial on edge pixels blended with either (which a nearest-colour
    reading would call pink)."""
    return (images[..., 0, :, :] - images[..., 1:, :, :].amax(-3)).clamp(min=0)


SHAPE_CAPTIONS = ("a red ball and a green box on a table", "a red cube and a green box on a table")
"""The evaluation scene's source caption and its structure-changing edit's (the ``cube`` appearance)."""


def shape_following(
    model: ScoreModel, views: torch.Tensor, ball: torch.Tensor, cube: torch.Tensor, t_start: int, seed: int = 0
) -> List[dict]:
    """Per caption of :data:`SHAPE_CAPTIONS`: the mean :func:`redness` of SDEdit outputs of ``views``
    ``[V, 3, H, W]`` where only the cube stands (``cube & ~ball``, masks ``[V, H, W]``: its corners) and where
    only the ball does (``ball & ~cube``: its top). A model that draws the caption's shape turns the corners red
    and the top not under the cube caption, and the reverse under the ball's."""
    rows = []
    for caption in SHAPE_CAPTIONS:
        red = redness(sample(model, caption, model.encode(views), t_start=t_start, seed=seed))
        rows.append(
            {"caption": caption, "corners": red[cube & ~ball].mean().item(), "top": red[ball & ~cube].mean().item()}
        )
    return rows


def shape_table(rows_by_start: Dict[int, List[dict]]) -> str:
    lines = ["| start t | caption | redness where only the cube stands | redness where only the ball stands |"]
    lines.append("| --- | --- | --- | --- |")
    for start, rows in rows_by_start.items():
        lines += [f"| {start} | {r['caption']} | {r['corners']:.2f} | {r['top']:.2f} |" for r in rows]
    return "\n".join(lines)


def caption_colours(caption: str) -> Dict[str, str]:
    """``{"ball": colour, "box": colour}`` named by a plain template caption."""
    words = caption.split()
    return {name: words[words.index(name) - 1] for name in OBJECTS}


def caption_following(
    model: ScoreModel, views: torch.Tensor, masks: torch.Tensor, captions=CAPTIONS, t_start: int = 600, seed: int = 0
) -> List[dict]:
    """Per caption: SDEdit outputs of ``views`` ``[V, 3, H, W]``, and the share of views whose ball and box come
    out in the caption's colours, read inside ``masks`` ``[V, H, W]`` (object ids)."""
    rows = []
    for caption in captions:
        out = sample(model, caption, model.encode(views), t_start=t_start, seed=seed)
        wanted = caption_colours(caption)
        read = {
            name: [object_colour(image, mask == OBJECTS[name]) for image, mask in zip(out, masks)] for name in OBJECTS
        }
        hits = {name: float(np.mean([c == wanted[name] for c in read[name]])) for name in OBJECTS}
        rows.append({"caption": caption, "images": out, "read": read, "hits": hits})
    return rows


def sweep_table(spec: str, views: torch.Tensor, masks: torch.Tensor, scales=(1.0, 3.0, 7.5), starts=(400, 600)) -> str:
    """Caption following of :data:`CAPTIONS` over CFG scales and SDEdit starts: ball/box hit shares."""
    from ids_nerf.guidance.loading import load_guidance

    lines = ["| CFG, start t | " + " | ".join(CAPTIONS) + " |", "| --- |" + " --- |" * len(CAPTIONS)]
    for scale in scales:
        model = load_guidance(spec, guidance_scale=scale)
        for start in starts:
            rows = caption_following(model, views, masks, t_start=start)
            cells = [f"{r['hits']['ball']:.2f}/{r['hits']['box']:.2f}" for r in rows]
            lines.append(f"| {scale:g}, {start} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def loss_table(held_out: Dict[int, float], training: Dict[int, float]) -> str:
    lines = ["| t | held-out scenes | training scenes |", "| --- | --- | --- |"]
    lines += [f"| {t} | {held_out[t]:.4f} | {training[t]:.4f} |" for t in held_out]
    return "\n".join(lines)


def following_table(rows: List[dict]) -> str:
    lines = [
        "| caption | ball in its colour | box in its colour | colours read (ball; box) |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        read = "; ".join(", ".join(row["read"][name]) for name in OBJECTS)
        lines.append(f"| {row['caption']} | {row['hits']['ball']:.0%} | {row['hits']['box']:.0%} | {read} |")
    return "\n".join(lines)


def _training_seed(spec: str) -> int:
    from ids_nerf.guidance.learned import resolve_folder

    try:
        return int(json.loads((resolve_folder(spec) / "training.json").read_text())["seed"])
    except (OSError, ValueError, KeyError):
        return 0


def main(argv: Optional[Sequence[str]] = None) -> None:

    from benchmarks.fpr_by_timestep import fpr_by_timestep, table
    from ids_nerf.guidance.loading import load_guidance
    from ids_nerf.images import labeled_grid, read_rgb_on_white
    from ids_nerf.scenes.edit_scene import appearance_images, appearance_masks, read_masks, read_scene_info
    from ids_nerf.scenes.random_scenes import render_training_set, rgb_on_white

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", type=Path, required=True, help="an ids-nerf make-scene folder")
    parser.add_argument("--model", default="learned:default", help="a learned model: learned:FOLDER or default")
    parser.add_argument("--source-run", type=Path, help="a source run on SCENE (its config.yml folder)")
    parser.add_argument("--held-out", type=int, default=64, help="held-out random scenes (4 views each)")
    parser.add_argument("--sdedit-t", type=int, default=600, help="SDEdit's starting timestep")
    parser.add_argument("--noises", type=int, default=4, help="noise draws per view and t for the FPR table")
    parser.add_argument("--out", type=Path, help="folder for samples.png")
    parser.add_argument("--sweep", type=int, default=0, help="also sweep CFG and t on this many training views")
    args = parser.parse_args(argv)

    plain = load_guidance(args.model, guidance_scale=1.0)
    guided = load_guidance(args.model, guidance_scale=7.5)
    size = plain.native_size
    seed = _training_seed(args.model)
    held = {}
    for name, draw_seed in (("held-out", seed + 1), ("training", seed)):
        rgba, captions = render_training_set(args.held_out, 4, size, draw_seed)
        images = torch.from_numpy(rgb_on_white(rgba)).permute(0, 3, 1, 2)
        held[name] = loss_by_timestep(plain, images, captions)
    print(f"## Denoising loss by t ({args.model}, {args.held_out} scenes x 4 views each, epsilon MSE)\n")
    print(loss_table(held["held-out"], held["training"]) + "\n")

    order = word_order_sensitivity(plain.caption_encoder)
    print(f"## Word order\n\nword_order_sensitivity: {order:.4f} (0: the encoder cannot tell {SWAPPED[0]!r} from")
    print(f"{SWAPPED[1]!r} but by which colours it names)\n")

    info = read_scene_info(args.scene)
    views = torch.stack([read_rgb_on_white(p) for p in appearance_images(args.scene, info["source"], "test")])
    masks = torch.from_numpy(read_masks(args.scene, "test"))
    rows = caption_following(guided, views, masks, t_start=args.sdedit_t)
    print(f"## Caption following: SDEdit from t = {args.sdedit_t}, CFG 7.5, {len(views)} test views of {args.scene}\n")
    print(following_table(rows) + "\n")
    if args.sweep:
        train_views = torch.stack(
            [read_rgb_on_white(p) for p in appearance_images(args.scene, info["source"])[: args.sweep]]
        )
        train_masks = torch.from_numpy(read_masks(args.scene))
        print(f"## Caption following over CFG and t: {len(train_views)} training views, ball/box in colour\n")
        print(sweep_table(args.model, train_views, train_masks[: args.sweep]) + "\n")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        free = [sample(guided, row["caption"], plain.encode(views), seed=1) for row in rows]
        grid_rows = [[views[i] for i in range(len(views))]] + [
            [*row["images"], *noise_samples] for row, noise_samples in zip(rows, free)
        ]
        grid_rows[0] += [torch.ones_like(views[0])] * len(views)
        columns = [f"SDEdit view {i}" for i in range(len(views))] + [f"from noise {i}" for i in range(len(views))]
        labels = ["source (input)"] + [row["caption"].replace(" on a table", "") for row in rows]
        labeled_grid(grid_rows, columns, labels, tile=96).save(args.out / "samples.png")
        print(f"wrote {args.out / 'samples.png'}\n")

    if "cube" in info.get("own_masks", []):
        if "cube" in plain.vocabulary:
            ball = masks == OBJECTS["ball"]
            cube = torch.from_numpy(appearance_masks(args.scene, "cube", "test")) == OBJECTS["ball"]
            found = {start: shape_following(guided, views, ball, cube, start) for start in (400, 600)}
            print(f"## Shape following: SDEdit, CFG 7.5, {len(views)} test views, mean max(0, r - max(g, b))\n")
            print(shape_table(found) + "\n")
        else:
            print(f"## Shape following\n\n{args.model} does not know the word cube (train with --cube-share)\n")

    if args.source_run is not None:
        from ids_nerf.nerfstudio.compare import render_run_views

        renders = torch.stack(render_run_views(args.source_run / "config.yml", "train"))
        where = f"renders of {args.source_run}'s training views"
    else:
        renders = torch.stack([read_rgb_on_white(p) for p in appearance_images(args.scene, info["source"])])
        where = "ground-truth source training views"
    caption = info["appearances"][info["source"]]
    for spec in (args.model, f"exact:{args.scene}"):
        model = load_guidance(spec, guidance_scale=7.5)
        found = fpr_by_timestep(model, model.encode(renders), caption, noises=args.noises)
        print(f"## Posterior-mean error, {spec}: {len(renders)} {where}, lambda 0.1, N = 3, CFG 7.5\n")
        print(table(found) + "\n")


if __name__ == "__main__":
    main()
