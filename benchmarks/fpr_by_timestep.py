"""Where FPR acts, by timestep: the posterior distance before and after FPR on a source's own renders, and
how sure the exact-score model is of which training view was noised.

    python -m benchmarks.fpr_by_timestep --source-run RUN --scene SCENE [--model learned:default]
        [--fpr-scale 0.1] [--noises 4]

RUN is a source run (its config.yml folder) trained on SCENE, an ``ids-nerf make-scene`` scene. A score model
(by default SCENE's exact-score model; ``--model`` takes any ``--pipeline.diffusion-model`` name) scores the
renders (CFG 7.5, the source caption, as in an edit). For each timestep it prints, over the training views and
``--noises`` noise draws each, the mean distance ``||z_src - z_{0|t}||`` before FPR and after its N steps, the
share of draws FPR changed by less than 0.1 %, and, for the exact model, the mean largest posterior weight (1.0:
the model is certain which view was noised, so its posterior mean is that view and does not move with ``z_t``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Optional

import torch

from ids_nerf.core import add_noise, alpha_bar, ids_step
from ids_nerf.guidance.exact import ExactScoreGuidance, posterior_weights
from ids_nerf.guidance.score_model import ScoreModel

TIMESTEPS = (50, 100, 200, 300, 400, 500, 600, 700, 800, 949)
UNCHANGED = 1e-3
"""Relative change of the distance below which FPR counts as having done nothing."""


def fpr_by_timestep(
    model: ScoreModel,
    z_src: torch.Tensor,
    caption: str,
    timesteps=TIMESTEPS,
    noises: int = 4,
    fpr_scale: float = 0.1,
    fpr_steps: int = 3,
    seed: int = 0,
) -> List[Dict[str, float]]:
    """One row per timestep: mean distance before/after FPR, the share of (view, noise) draws it left
    unchanged, and (exact model only, else NaN) the mean largest posterior weight of the caption's views.
    ``z_src`` ``[V, C, H, W]``."""
    generator = torch.Generator().manual_seed(seed)
    cond = model.embed_prompt(caption)
    cond = cond.expand(len(z_src), *cond.shape[1:])
    support = _support(model, cond)
    rows = []
    for step in timesteps:
        t = torch.full((len(z_src),), step, dtype=torch.long)
        before, after, unchanged, certainty = [], [], [], []
        for _ in range(noises):
            noise = torch.randn(z_src.shape, generator=generator)
            # the edit's own step (target = source: only the source half is read), as the study logs it
            result = ids_step(
                model.score_fn, z_src, z_src, cond, cond, t, noise, model.alphas_cumprod, fpr_steps, fpr_scale
            )
            before.append(result.distance_before)
            after.append(result.distance_after)
            change = (result.distance_before - result.distance_after).abs() / result.distance_before
            unchanged.append((change < UNCHANGED).float())
            a_t = alpha_bar(model.alphas_cumprod, t, z_src)
            if support is not None:
                z_t = add_noise(z_src, noise, t, model.alphas_cumprod)
                certainty.append(posterior_weights(z_t, a_t, support).max(1).values)
        rows.append(
            {
                "t": step,
                "before": torch.cat(before).mean().item(),
                "after": torch.cat(after).mean().item(),
                "unchanged": torch.cat(unchanged).mean().item(),
                "certainty": torch.cat(certainty).mean().item() if certainty else float("nan"),
            }
        )
    return rows


def _support(model: ScoreModel, cond: torch.Tensor) -> Optional[torch.Tensor]:
    """The exact model's views of the caption (its condition is the caption's index); None for other models."""
    return model.sets[int(cond[0])] if isinstance(model, ExactScoreGuidance) else None


def table(rows: List[Dict[str, float]]) -> str:
    lines = [
        "| t | distance before FPR | after | FPR changed < 0.1 % | largest posterior weight |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['t']} | {row['before']:.3f} | {row['after']:.3f} | {row['unchanged']:.0%} | "
            f"{'-' if row['certainty'] != row['certainty'] else format(row['certainty'], '.3f')} |"
        )
    return "\n".join(lines)


def main() -> None:
    from ids_nerf.guidance.loading import load_guidance
    from ids_nerf.nerfstudio.compare import render_run_views
    from ids_nerf.scenes.edit_scene import read_scene_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-run", type=Path, required=True, help="folder with the source's config.yml")
    parser.add_argument("--scene", type=Path, required=True, help="the make-scene folder it was trained on")
    parser.add_argument("--model", help="the score model (default: exact:SCENE), e.g. learned:default")
    parser.add_argument("--fpr-scale", type=float, default=0.1, help="lambda, FPR's step size")
    parser.add_argument("--noises", type=int, default=4, help="noise draws per view and timestep")
    args = parser.parse_args()
    model = load_guidance(args.model or f"exact:{args.scene}", guidance_scale=7.5)
    renders = torch.stack(render_run_views(args.source_run / "config.yml", "train"))
    caption = read_scene_info(args.scene)["appearances"]["source"]
    rows = fpr_by_timestep(model, model.encode(renders), caption, noises=args.noises, fpr_scale=args.fpr_scale)
    print(
        f"{args.model or 'exact:' + str(args.scene)}: {len(renders)} training views of {args.source_run}, "
        f"lambda {args.fpr_scale:g}, N = 3\n"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
