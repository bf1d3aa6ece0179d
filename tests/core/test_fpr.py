import pytest
import torch

from ids_nerf.core import add_noise, fpr_refine, posterior_distance, tweedie_z0
from tests.core.gaussian_model import GaussianScore, sd_alphas_cumprod

AC = sd_alphas_cumprod()


def _setup(seed=0, t_value=600, sigma=0.5, guidance_scale=1.0):
    g = torch.Generator().manual_seed(seed)
    z_src = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
    noise = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
    cond = torch.full((2, 1, 1, 1), 0.3, dtype=torch.float64)
    t = torch.full((2,), t_value)
    return GaussianScore(AC, sigma=sigma, guidance_scale=guidance_scale), z_src, noise, cond, t


@pytest.mark.parametrize("t_value", [100, 500, 900])
@pytest.mark.parametrize("guidance_scale", [1.0, 7.5])
def test_fpr_lowers_posterior_distance_step_by_step(t_value, guidance_scale):
    score, z_src, noise, cond, t = _setup(t_value=t_value, guidance_scale=guidance_scale)
    z_t = add_noise(z_src, noise, t, AC)
    result = fpr_refine(score, z_src, z_t, cond, t, AC, steps=5, scale=0.1)
    final = posterior_distance(z_src, tweedie_z0(result.z_t, score(result.z_t, t, cond), t, AC))
    history = torch.stack(result.distances + [final])  # [steps + 1, B]
    assert history.shape == (6, 2)
    assert torch.all(history[1:] < history[:-1]), history


def test_fpr_step_is_the_analytic_gradient_step():
    """For the Gaussian model z_{0|t} = c z_t + d, so grad ||z_src - z_{0|t}|| = -c r / ||r||."""
    score, z_src, noise, cond, t = _setup(t_value=400)
    z_t = add_noise(z_src, noise, t, AC)
    a = AC[400]
    c = a.sqrt() * score.sigma**2 / (a * score.sigma**2 + 1 - a)
    residual = z_src - tweedie_z0(z_t, score(z_t, t, cond), t, AC)
    unit = residual / residual.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    result = fpr_refine(score, z_src, z_t, cond, t, AC, steps=1, scale=0.7)
    torch.testing.assert_close(result.z_t, z_t + 0.7 * c * unit, rtol=0, atol=1e-12)
    torch.testing.assert_close(result.distances[0], residual.flatten(1).norm(dim=1))


def test_fpr_zero_steps_returns_input_and_keeps_it_untouched():
    score, z_src, noise, cond, t = _setup()
    z_t = add_noise(z_src, noise, t, AC)
    before = z_t.clone()
    result = fpr_refine(score, z_src, z_t, cond, t, AC, steps=0)
    assert torch.equal(result.z_t, before) and result.distances == []
    assert score.calls == 0
    fpr_refine(score, z_src, z_t, cond, t, AC, steps=2)
    assert torch.equal(z_t, before)


def test_fpr_gradient_reaches_no_weight():
    lin = torch.nn.Conv2d(4, 4, 1).double()

    def score(z, t, c):
        return lin(z) + c

    z_src = torch.randn(1, 4, 8, 8, dtype=torch.float64)
    cond = torch.zeros(1, 1, 1, 1, dtype=torch.float64)
    t = torch.tensor([300])
    result = fpr_refine(score, z_src, torch.randn_like(z_src), cond, t, AC, steps=3)
    assert all(p.grad is None for p in lin.parameters())
    assert not result.z_t.requires_grad


def test_fpr_rejects_negative_steps():
    score, z_src, noise, cond, t = _setup()
    with pytest.raises(ValueError, match="steps"):
        fpr_refine(score, z_src, z_src, cond, t, AC, steps=-1)


def test_identity_jacobian_step_matches_its_closed_form_and_needs_no_backward():
    score, z_src, noise, cond, t = _setup(t_value=400)
    z_t = add_noise(z_src, noise, t, AC)
    residual = z_src - tweedie_z0(z_t, score(z_t, t, cond), t, AC)
    unit = residual / residual.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    seen = []

    def recording_score(z, tt, c):
        seen.append(z.requires_grad or torch.is_grad_enabled())
        return score(z, tt, c)

    result = fpr_refine(recording_score, z_src, z_t, cond, t, AC, steps=1, scale=0.3, jacobian="identity")
    torch.testing.assert_close(result.z_t, z_t + 0.3 * unit / AC[400].sqrt(), rtol=0, atol=1e-12)
    assert seen == [False]  # one forward pass, no autograd graph


def test_identity_jacobian_also_lowers_the_distance_on_the_gaussian_model():
    score, z_src, noise, cond, t = _setup(t_value=500, guidance_scale=7.5)
    z_t = add_noise(z_src, noise, t, AC)
    result = fpr_refine(score, z_src, z_t, cond, t, AC, steps=4, scale=0.05, jacobian="identity")
    history = torch.stack(result.distances)
    assert torch.all(history[1:] < history[:-1])


def test_unknown_jacobian_is_refused():
    score, z_src, noise, cond, t = _setup()
    with pytest.raises(ValueError, match="jacobian"):
        fpr_refine(score, z_src, z_src, cond, t, AC, steps=1, jacobian="diagonal")
