import torch

from ids_nerf.guidance.cut import cut_loss, patch_nce_loss


def test_patch_nce_prefers_matching_locations():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(1, 16, 8, 8, generator=g)
    shuffled = feats.flatten(2)[..., torch.randperm(64, generator=g)].reshape(1, 16, 8, 8)
    same = patch_nce_loss(feats, feats, num_patches=32, generator=torch.Generator().manual_seed(1))
    other = patch_nce_loss(shuffled, feats, num_patches=32, generator=torch.Generator().manual_seed(1))
    assert same < other
    assert same < torch.log(torch.tensor(32.0))  # better than chance among 32 candidates


def test_cut_loss_is_differentiable_in_the_target_latent_only(tiny_guidance):
    z_src = torch.randn(1, 4, 16, 16)
    z_trg = (z_src + 0.2 * torch.randn_like(z_src)).requires_grad_(True)
    c = tiny_guidance.embed_prompt("a ball")
    loss = cut_loss(tiny_guidance, z_src, z_trg, c, c, torch.tensor([400]), torch.randn_like(z_src), num_patches=16)
    loss.backward()
    assert torch.isfinite(loss) and z_trg.grad is not None and z_trg.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_guidance.unet.parameters())
