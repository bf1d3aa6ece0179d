import torch

from ids_nerf.core import add_noise, classifier_free_guidance, guided_noise, sample_timesteps, tweedie_z0
from tests.core.gaussian_model import sd_alphas_cumprod

AC = sd_alphas_cumprod()


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    z0 = torch.randn(3, 4, 8, 8, generator=g, dtype=torch.float64)
    noise = torch.randn(3, 4, 8, 8, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 500, 999])
    return z0, noise, t


def test_add_noise_matches_eq1_per_sample():
    z0, noise, t = _batch()
    z_t = add_noise(z0, noise, t, AC)
    for i in range(3):
        a = AC[t[i]]
        expected = a.sqrt() * z0[i] + (1 - a).sqrt() * noise[i]
        torch.testing.assert_close(z_t[i], expected, rtol=0, atol=1e-14)


def test_tweedie_inverts_forward_noising_given_true_noise():
    z0, noise, t = _batch()
    recovered = tweedie_z0(add_noise(z0, noise, t, AC), noise, t, AC)
    torch.testing.assert_close(recovered, z0, rtol=0, atol=1e-10)


def test_guided_noise_renoises_source_to_the_given_latent():
    z0, noise, t = _batch(1)
    z_t_star = torch.randn_like(z0)  # any latent, e.g. an FPR-refined one
    eps_star = guided_noise(z_t_star, z0, t, AC)
    torch.testing.assert_close(add_noise(z0, eps_star, t, AC), z_t_star, rtol=0, atol=1e-12)
    # and of a plain forward-noised latent it recovers the noise itself
    torch.testing.assert_close(guided_noise(add_noise(z0, noise, t, AC), z0, t, AC), noise, rtol=0, atol=1e-10)


def test_cfg_official_form_equals_paper_form():
    eps_u, eps_c = torch.randn(2, 4, 4, 4, dtype=torch.float64).unbind(0)
    w = 6.5
    torch.testing.assert_close(classifier_free_guidance(eps_u, eps_c, 1 + w), (1 + w) * eps_c - w * eps_u)
    torch.testing.assert_close(classifier_free_guidance(eps_u, eps_c, 1.0), eps_c)


def test_sample_timesteps_range_and_determinism():
    t = sample_timesteps(20000, generator=torch.Generator().manual_seed(0))  # the defaults: the official range
    assert t.dtype == torch.long
    assert int(t.min()) == 50 and int(t.max()) == 948
    again = sample_timesteps(20000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(t, again)
