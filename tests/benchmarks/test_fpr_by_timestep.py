"""The FPR-by-timestep probe on a small exact-score model: near t = 0 the model is certain which view was
noised, so its posterior mean is that view, does not move with z_t, and FPR can do nothing; at large t
it is unsure and FPR pulls the posterior mean towards the render."""

import torch

from benchmarks.fpr_by_timestep import fpr_by_timestep, table
from ids_nerf.guidance.exact import ExactScoreGuidance, PixelCodec


def test_fpr_is_idle_where_the_posterior_is_certain_and_acts_where_it_is_not():
    gen = torch.Generator().manual_seed(0)
    views = {
        "source": torch.rand(6, 3, 8, 8, generator=gen) * 2 - 1,
        "target": torch.rand(6, 3, 8, 8, generator=gen) * 2 - 1,
    }
    model = ExactScoreGuidance(views, PixelCodec(), native_size=8)
    renders = views["source"][:3] + 0.05 * torch.randn(3, 3, 8, 8, generator=gen)  # a source's imperfect renders
    rows = {row["t"]: row for row in fpr_by_timestep(model, renders, "source", timesteps=(50, 949), noises=2)}
    small, large = rows[50], rows[949]
    assert small["certainty"] > 0.999 and small["unchanged"] == 1.0
    assert small["after"] == small["before"]  # the posterior mean is the training view itself
    expected = (renders - views["source"][:3]).flatten(1).norm(dim=1).mean().item()
    assert abs(small["before"] - expected) < 1e-3 * expected  # ... so the distance is the render error
    assert large["certainty"] < 0.99 and large["unchanged"] == 0.0 and large["after"] < large["before"]
    assert table(list(rows.values())).count("\n") == 3  # header, rule, two rows
