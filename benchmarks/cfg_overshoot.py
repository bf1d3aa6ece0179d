"""Where DDS's direction points under CFG, with the exact-score model: its zero along the straight path from
the source view to the edited one, and how much of it lands outside the edited object.

    python -m benchmarks.cfg_overshoot --scene SCENE [--appearance edited] [--scales 1,3,7.5] [--noises 4]

SCENE is an ``ids-nerf make-scene`` scene. The render of each training view is put at ``z = z_src + s (z_tgt
- z_src)`` for s in ``--positions`` (0: the source view, 1: the ground-truth edit), scored as an edit step
scores it (DDS, the same noise for both branches, the stored source render as the reference). Per CFG scale
and position it prints, on the edited object's pixels, the mean cosine between the direction and
``z - z_tgt`` (1: it points exactly at the per-view edit, as the oracle's squared error does), the signed
step along the path that the direction asks for, and the share of the direction's norm outside the object.

Why (derived in docs/results-nerf.md): while both unconditional posteriors sit on the source view, the
direction is ``sqrt(a)/sqrt(1-a) ((z - z_src) - s_cfg (z_tgt - z_src))``, so its zero lies ``s_cfg`` times
past the edit until the render is nearer the edited view than the source one.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Sequence

import torch

from ids_nerf.core import alpha_bar, dds_step
from ids_nerf.guidance.exact import ExactScoreGuidance, load_exact_score

TIMESTEPS = (100, 300, 500, 700, 900)
POSITIONS = (0.0, 0.3, 0.6, 0.9, 1.2)


def cfg_overshoot(
    model: ExactScoreGuidance,
    z_src: torch.Tensor,
    z_tgt: torch.Tensor,
    edited: torch.Tensor,
    caption_src: str,
    caption_tgt: str,
    scales: Sequence[float] = (1.0, 7.5),
    positions: Sequence[float] = POSITIONS,
    timesteps: Sequence[int] = TIMESTEPS,
    noises: int = 4,
    seed: int = 0,
) -> List[Dict[str, float]]:
    """One row per (CFG scale, position): over views, timesteps and noises, the mean cosine of the direction
    with ``z - z_tgt`` on ``edited`` (``[V, 1, H, W]`` bool), where on the path it aims (``aims_at``: the
    position plus ``-<direction, z_tgt - z_src> / |z_tgt - z_src|^2`` on the object, in units of the noise
    level's ``sqrt(a)/sqrt(1-a)``; 1 is the edit), and its norm share outside the object."""
    inside = edited.to(z_src.dtype).expand_as(z_src)
    path = (z_tgt - z_src) * inside
    cond_src = model.embed_prompt(caption_src).expand(len(z_src))
    cond_tgt = model.embed_prompt(caption_tgt).expand(len(z_src))
    rows = []
    for scale in scales:
        model.guidance_scale = scale
        for position in positions:
            z = z_src + position * (z_tgt - z_src)
            generator = torch.Generator().manual_seed(seed)
            cosines, steps, outside = [], [], []
            for step in timesteps:
                t = torch.full((len(z_src),), step, dtype=torch.long)
                for _ in range(noises):
                    noise = torch.randn(z_src.shape, generator=generator)
                    direction = dds_step(model.score_fn, z_src, z, cond_src, cond_tgt, t, noise, model.alphas_cumprod)
                    d, ideal = (direction.direction * inside).flatten(1), ((z - z_tgt) * inside).flatten(1)
                    cosines.append((d * ideal).sum(1) / (d.norm(dim=1) * ideal.norm(dim=1)).clamp_min(1e-12))
                    # the direction is a gradient: the render moves along -direction; divided by
                    # sqrt(a)/sqrt(1-a), the step is in path lengths, so position + step is where it aims
                    a = alpha_bar(model.alphas_cumprod, t, z_src).flatten()
                    along = -(d * path.flatten(1)).sum(1) / path.flatten(1).square().sum(1).clamp_min(1e-12)
                    steps.append(position + along * (1 - a).sqrt() / a.sqrt())
                    full = direction.direction.flatten(1).norm(dim=1).clamp_min(1e-12)
                    outside.append((direction.direction * (1 - inside)).flatten(1).norm(dim=1) / full)
            rows.append(
                {
                    "scale": scale,
                    "position": position,
                    "cosine": torch.cat(cosines).mean().item(),
                    "aims_at": torch.cat(steps).mean().item(),
                    "outside": torch.cat(outside).mean().item(),
                }
            )
    return rows


def table(rows: List[Dict[str, float]]) -> str:
    lines = [
        "| CFG | render at (0 source, 1 edit) | cos(direction, render - edit) on the object | where it aims on the "
        "path | norm share outside the object |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['scale']:g} | {row['position']:g} | {row['cosine']:+.3f} | {row['aims_at']:+.2f} | "
            f"{row['outside']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    from ids_nerf.images import read_rgb_on_white
    from ids_nerf.scenes.edit_scene import appearance_images, edited_object, read_masks, read_scene_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", type=Path, required=True, help="an ids-nerf make-scene folder")
    parser.add_argument("--appearance", default="edited", help="the target appearance")
    parser.add_argument("--scales", default="1,3,7.5", help="CFG scales, comma-separated")
    parser.add_argument("--noises", type=int, default=4, help="noise draws per view and timestep")
    args = parser.parse_args()
    info = read_scene_info(args.scene)
    model = load_exact_score(f"exact:{args.scene}")

    def latents(appearance: str) -> torch.Tensor:
        return model.encode(torch.stack([read_rgb_on_white(p) for p in appearance_images(args.scene, appearance)]))

    masks = torch.from_numpy(read_masks(args.scene))
    edited = (masks == edited_object(info, args.appearance))[:, None]
    captions = info["appearances"]
    rows = cfg_overshoot(
        model,
        latents(info["source"]),
        latents(args.appearance),
        edited,
        captions[info["source"]],
        captions[args.appearance],
        scales=[float(s) for s in args.scales.split(",")],
        noises=args.noises,
    )
    print(f"{len(masks)} training views of {args.scene}, t in {TIMESTEPS}, {args.noises} noises each\n")
    print(table(rows))


if __name__ == "__main__":
    main()
