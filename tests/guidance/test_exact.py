import math

import pytest
import torch

from ids_nerf.core import add_noise, fpr_refine, ids_step, sd_alphas_cumprod
from ids_nerf.errors import UserError
from ids_nerf.guidance.exact import ExactScoreGuidance, PixelCodec, posterior_mean


def _sets(seed=0, n=5):
    g = torch.Generator().manual_seed(seed)
    return {
        "a red ball": torch.rand(n, 3, 4, 4, generator=g) * 2 - 1,
        "a blue ball": torch.rand(n, 3, 4, 4, generator=g) * 2 - 1,
    }


def _model(scale=1.0, **sets):
    return ExactScoreGuidance(
        sets or _sets(), PixelCodec(), native_size=4, guidance_scale=scale, aliases={"source": "a red ball"}
    )


def test_posterior_mean_equals_brute_force_bayes():
    support = _sets()["a red ball"].double()
    z_t = torch.randn(3, 3, 4, 4, dtype=torch.float64)
    a = torch.tensor([0.9, 0.5, 0.05], dtype=torch.float64).view(-1, 1, 1, 1)
    got = posterior_mean(z_t, a, support)
    for b in range(3):
        # Gaussian likelihood of each support point, normalised by hand
        log_lik = torch.stack([-((z_t[b] - a[b].sqrt() * x) ** 2).sum() / (2 * (1 - a[b].squeeze())) for x in support])
        weights = torch.exp(log_lik - log_lik.max())
        weights = weights / weights.sum()
        expected = sum(w * x for w, x in zip(weights, support))
        torch.testing.assert_close(got[b], expected)


def test_single_image_set_recovers_the_true_noise():
    x = torch.rand(1, 3, 4, 4) * 2 - 1
    model = _model(one=x)
    ac = model.alphas_cumprod
    noise = torch.randn(2, 3, 4, 4)
    t = torch.tensor([50, 900])
    z_t = add_noise(x.expand(2, -1, -1, -1), noise, t, ac)
    eps = model.score_fn(z_t, t, model.embed_prompt("one").expand(2))
    torch.testing.assert_close(eps, noise, rtol=1e-4, atol=1e-4)


def test_cfg_uses_the_union_as_unconditional():
    sets = _sets()
    z_t = torch.randn(1, 3, 4, 4)
    t = torch.tensor([400])
    cond = _model(1.0, **sets).embed_prompt("a blue ball")
    eps_c = _model(1.0, **sets).score_fn(z_t, t, cond)
    union = torch.cat(list(sets.values()))
    eps_u = _model(1.0, everything=union).score_fn(z_t, t, torch.zeros(1))
    torch.testing.assert_close(_model(7.5, **sets).score_fn(z_t, t, cond), eps_u + 7.5 * (eps_c - eps_u))


def test_batch_with_mixed_conditions_matches_single_calls():
    model = _model(7.5)
    z_t = torch.randn(2, 3, 4, 4)
    t = torch.tensor([300, 300])
    cond = torch.cat([model.embed_prompt("a red ball"), model.embed_prompt("a blue ball")])
    both = model.score_fn(z_t, t, cond)
    torch.testing.assert_close(both[:1], model.score_fn(z_t[:1], t[:1], cond[:1]))
    torch.testing.assert_close(both[1:], model.score_fn(z_t[1:], t[1:], cond[1:]))


def test_fpr_on_the_exact_model_points_the_source_back_at_itself():
    model = _model(7.5)
    z_src = model.sets[0][2:3]  # a source training view
    cond = model.embed_prompt("source")
    noise = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([700])
    result = fpr_refine(
        model.score_fn,
        z_src,
        add_noise(z_src, noise, t, model.alphas_cumprod),
        cond,
        t,
        model.alphas_cumprod,
        steps=5,
        scale=0.1,
    )
    assert result.distances[-1] < result.distances[0]
    step = ids_step(
        model.score_fn, z_src, z_src, cond, model.embed_prompt("a blue ball"), t, noise, model.alphas_cumprod, 3, 0.1
    )
    assert torch.isfinite(step.direction).all() and step.distance_after < step.distance_before


def test_unknown_caption_is_one_clear_line():
    with pytest.raises(UserError, match='knows no caption "a green ball"; use one of: "a red ball"; "a blue ball"'):
        _model().embed_prompt("a green ball")


def test_pixel_codec_round_trip():
    images = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(PixelCodec(1).decode(PixelCodec(1).encode(images)), images)
    pooled = PixelCodec(2).encode(images)
    assert pooled.shape == (2, 3, 4, 4)
    torch.testing.assert_close(pooled, torch.nn.functional.avg_pool2d(images * 2 - 1, 2))


def test_schedule_is_stable_diffusions():
    ac = sd_alphas_cumprod().float()
    assert ac.shape == (1000,) and math.isclose(float(ac[0]), 1 - 0.00085, rel_tol=1e-6)
