import pytest
import torch

from ids_nerf.core import (
    add_noise,
    dds_direction,
    distillation_loss,
    fpr_refine,
    guided_noise,
    ids_direction,
    ids_step,
    sds_direction,
)
from tests.core.gaussian_model import GaussianScore, sd_alphas_cumprod

AC = sd_alphas_cumprod()


def _inputs(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    shape = (2, 4, 8, 8)
    z_src = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    z_trg = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    noise = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    cond_src = torch.full((2, 1, 1, 1), -0.4, dtype=dtype)
    cond_trg = torch.full((2, 1, 1, 1), 0.6, dtype=dtype)
    t = torch.tensor([250, 700])
    return z_src, z_trg, cond_src, cond_trg, t, noise


def test_ids_without_fpr_equals_dds_exactly():
    score = GaussianScore(AC, guidance_scale=7.5)
    args = _inputs()
    ids = ids_direction(score, *args, AC, fpr_steps=0)
    dds = dds_direction(score, *args, AC)
    assert torch.equal(ids, dds)


def test_dds_matches_hand_computed_score_difference():
    score = GaussianScore(AC, guidance_scale=7.5)
    z_src, z_trg, c_src, c_trg, t, noise = _inputs()
    expected = score(add_noise(z_trg, noise, t, AC), t, c_trg) - score(add_noise(z_src, noise, t, AC), t, c_src)
    torch.testing.assert_close(dds_direction(score, z_src, z_trg, c_src, c_trg, t, noise, AC), expected)


def test_ids_matches_algorithm_1_composed_from_parts():
    score = GaussianScore(AC, guidance_scale=7.5)
    z_src, z_trg, c_src, c_trg, t, noise = _inputs(3)
    refined = fpr_refine(score, z_src, add_noise(z_src, noise, t, AC), c_src, t, AC, steps=3, scale=0.5).z_t
    z_t_trg = add_noise(z_trg, guided_noise(refined, z_src, t, AC), t, AC)
    expected = score(z_t_trg, t, c_trg) - score(refined, t, c_src)
    got = ids_direction(score, z_src, z_trg, c_src, c_trg, t, noise, AC, fpr_steps=3, fpr_scale=0.5)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fpr_steps", [0, 1, 3])
def test_identical_source_and_target_give_zero(fpr_steps):
    score = GaussianScore(AC, guidance_scale=7.5)
    z_src, _, c_src, _, t, noise = _inputs()
    d = ids_direction(score, z_src, z_src.clone(), c_src, c_src.clone(), t, noise, AC, fpr_steps=fpr_steps)
    assert d.abs().max() < 1e-12


def test_fpr_makes_the_source_score_point_back_at_the_source():
    """On the Gaussian model, after FPR the source's posterior mean is closer to z_src than DDS's."""
    score = GaussianScore(AC, guidance_scale=7.5)
    args = _inputs(5)
    step = ids_step(score, *args, AC, fpr_steps=3, fpr_scale=0.5)
    assert torch.all(step.distance_after < step.distance_before)


def test_contract_dtype_grad_and_inputs_untouched():
    score = GaussianScore(AC, guidance_scale=7.5)
    for dtype in (torch.float32, torch.float64):
        z_src, z_trg, c_src, c_trg, t, noise = _inputs(dtype=dtype)
        z_trg.requires_grad_(True)
        snapshot = [x.detach().clone() for x in (z_src, z_trg, noise)]
        for d in (
            ids_direction(score, z_src, z_trg, c_src, c_trg, t, noise, AC),
            dds_direction(score, z_src, z_trg, c_src, c_trg, t, noise, AC),
        ):
            assert d.dtype == dtype and d.shape == z_src.shape
            assert not d.requires_grad and d.grad_fn is None
            assert torch.isfinite(d).all()
        for before, now in zip(snapshot, (z_src, z_trg, noise)):
            assert torch.equal(before, now.detach())
        assert z_trg.grad is None


def test_ids_float32_agrees_with_float64():
    score = GaussianScore(AC, guidance_scale=7.5)
    d64 = ids_direction(score, *_inputs(dtype=torch.float64), AC)
    d32 = ids_direction(score, *_inputs(dtype=torch.float32), AC)
    torch.testing.assert_close(d32.double(), d64, rtol=1e-3, atol=1e-4)


def test_sds_is_zero_when_the_score_returns_the_true_noise():
    """A score that predicts exactly the forward noise makes eps_hat - eps vanish."""
    z = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    noise = torch.randn_like(z)
    t = torch.tensor([10, 990])

    def oracle(z_t, tt, c):
        return (z_t - add_noise(z, torch.zeros_like(z), tt, AC)) / (1 - AC[tt]).sqrt().view(-1, 1, 1, 1)

    assert sds_direction(oracle, z, torch.zeros(2), t, noise, AC).abs().max() < 1e-10


def test_distillation_loss_gradient_is_the_direction():
    latents = torch.randn(1, 4, 8, 8, requires_grad=True)
    direction = torch.randn(1, 4, 8, 8)
    distillation_loss(latents, direction, scale=2000 / 64).backward()
    torch.testing.assert_close(latents.grad, direction * 2000 / 64)


def test_score_is_called_batched_once_for_the_final_pair():
    score = GaussianScore(AC, guidance_scale=1.0)
    ids_direction(score, *_inputs(), AC, fpr_steps=3)
    assert score.calls == 3 + 1


def test_ids_direction_takes_the_same_options_as_ids_step():
    from ids_nerf.core import ids_direction, ids_step

    g = torch.Generator().manual_seed(0)
    z_src, z_trg = (
        torch.randn(1, 4, 4, 4, generator=g, dtype=torch.float64),
        torch.randn(1, 4, 4, 4, generator=g, dtype=torch.float64),
    )
    noise, c, t = torch.randn_like(z_src), torch.ones(1, dtype=torch.float64), torch.tensor([400])

    def score(z, tt, cond):
        return 0.1 * z**2 + cond.view(-1, 1, 1, 1)

    for jacobian in ("full", "identity"):
        direction = ids_direction(score, z_src, z_trg, c, c, t, noise, AC, 2, 0.5, fpr_jacobian=jacobian)
        step = ids_step(score, z_src, z_trg, c, c, t, noise, AC, 2, 0.5, jacobian)
        torch.testing.assert_close(direction, step.direction)
    full = ids_direction(score, z_src, z_trg, c, c, t, noise, AC, 2, 0.5, fpr_jacobian="full")
    assert not torch.allclose(full, direction)  # the option reaches FPR
