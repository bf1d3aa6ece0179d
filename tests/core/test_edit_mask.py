import pytest
import torch

from ids_nerf.core import add_noise, anchored_direction, relevance_map, sd_alphas_cumprod, threshold_relevance

AC = sd_alphas_cumprod()


def _patch_score(patch: torch.Tensor):
    """A score whose two conditions (0 and 1) differ by ``patch`` times the condition, at every z_t."""

    def score(z_t, t, cond):
        return 0.1 * z_t + cond.reshape(-1, 1, 1, 1) * patch

    return score


def test_relevance_is_the_mean_absolute_prediction_difference():
    patch = torch.zeros(1, 4, 6, 6, dtype=torch.float64)
    patch[..., 1:3, 2:5] = 2.0
    z_src = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    noises = torch.randn(3, 1, 4, 6, 6, dtype=torch.float64)
    cond_src, cond_trg = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    relevance = relevance_map(_patch_score(patch), z_src, cond_src, cond_trg, torch.tensor([500]), noises, AC)
    assert relevance.shape == (1, 1, 6, 6)
    assert torch.allclose(relevance, patch.abs().mean(dim=1, keepdim=True))


def test_relevance_averages_a_noise_dependent_difference_over_draws():
    def score(z_t, t, cond):  # the prompts differ by the noisy latent itself: |z_t| on the target half
        return z_t * cond.reshape(-1, 1, 1, 1)

    z_src = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    noises = torch.randn(4, 1, 4, 5, 5, dtype=torch.float64)
    t = torch.tensor([300])
    got = relevance_map(score, z_src, torch.zeros(1), torch.ones(1), t, noises, AC)
    want = torch.stack([add_noise(z_src, n, t, AC).abs().mean(1, keepdim=True) for n in noises]).mean(0)
    assert torch.allclose(got, want)


def test_threshold_keeps_each_view_s_strong_part_and_empties_views_without_one():
    relevance = torch.zeros(3, 1, 5, 5)
    relevance[0, 0, 2, 2], relevance[0, 0, 0, 0] = 1.0, 0.3  # peak, and a weak spot below half of it
    relevance[1, 0, 1, 1] = 0.5  # a weaker view: normalised by its own peak, still kept
    relevance[2, 0, 3, 3] = 0.05  # below floor x the largest peak: nothing to edit there
    mask = threshold_relevance(relevance, threshold=0.5, floor=0.1, dilation=0)
    assert mask[0, 0, 2, 2] == 1 and mask[0].sum() == 1
    assert mask[1, 0, 1, 1] == 1 and mask[1].sum() == 1
    assert mask[2].sum() == 0


def test_threshold_dilates_and_an_all_zero_map_is_empty():
    relevance = torch.zeros(2, 1, 5, 5)
    relevance[0, 0, 2, 2] = 1.0
    mask = threshold_relevance(relevance, dilation=1)
    assert mask[0].sum() == 9 and mask[0, 0, 1:4, 1:4].eq(1).all()
    assert threshold_relevance(torch.zeros(2, 1, 4, 4)).sum() == 0


def test_threshold_refuses_bad_settings():
    with pytest.raises(ValueError):
        threshold_relevance(torch.ones(1, 1, 2, 2), threshold=0)


def test_anchored_direction_keeps_the_direction_inside_and_pulls_back_outside():
    direction = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    z_src, z_trg = torch.randn(2, 1, 4, 3, 3, dtype=torch.float64)
    mask = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    mask[..., 1, 1] = 1
    out = anchored_direction(direction, z_trg, z_src, mask, anchor_weight=2.0)
    assert torch.equal(out[..., 1, 1], direction[..., 1, 1])
    outside = mask.expand_as(out) == 0
    assert torch.allclose(out[outside], (2.0 * (z_trg - z_src))[outside])
    # a mask of ones is the direction itself; weight 0 only cuts
    assert torch.equal(anchored_direction(direction, z_trg, z_src, torch.ones_like(mask), 5.0), direction)
    assert anchored_direction(direction, z_trg, z_src, mask, 0.0)[outside].abs().max() == 0


def test_anchor_is_the_gradient_of_the_half_squared_distance():
    z_src = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    z = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    mask = (torch.rand(1, 1, 3, 3) > 0.5).double()
    (grad,) = torch.autograd.grad((0.5 * 3.0 * (1 - mask) * (z - z_src).square()).sum(), z)
    assert torch.allclose(anchored_direction(torch.zeros_like(z_src), z, z_src, mask, 3.0), grad)
