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


def _official_patch_nce(src, trg, tau=0.07):
    """The official PatchNCE, term by term: source patch i anchors; its positive is target patch i, its
    negatives every target patch j != i, plus its own slot filled with -10; mean over patches."""
    losses = []
    for i in range(src.shape[0]):
        pos = src[i] @ trg[i] / tau
        neg = [src[i] @ trg[j] / tau for j in range(src.shape[0]) if j != i] + [torch.tensor(-10.0 / tau)]
        losses.append(-(pos - torch.logsumexp(torch.stack([pos, *neg]), 0)))
    return torch.stack(losses).mean()


def test_patch_nce_is_the_official_formula_summed_over_patch_sizes():
    g = torch.Generator().manual_seed(0)
    feat_trg, feat_src = torch.randn(1, 8, 4, 4, generator=g), torch.randn(1, 8, 4, 4, generator=g)
    got = patch_nce_loss(
        feat_trg, feat_src, num_patches=256, patch_sizes=(1, 2), generator=torch.Generator().manual_seed(3)
    )
    expected = 0
    order = torch.Generator().manual_seed(3)
    for p in (1, 2):
        trg = torch.nn.functional.avg_pool2d(feat_trg, p) if p > 1 else feat_trg
        src = torch.nn.functional.avg_pool2d(feat_src, p) if p > 1 else feat_src
        trg = torch.nn.functional.normalize(trg, dim=1)[0].flatten(1).T
        src = torch.nn.functional.normalize(src, dim=1)[0].flatten(1).T
        index = torch.randperm(trg.shape[0], generator=order)
        expected = expected + _official_patch_nce(src[index], trg[index])
    torch.testing.assert_close(got, expected)
    # anchored on the source: swapping the roles changes the value
    swapped = patch_nce_loss(feat_src, feat_trg, num_patches=256, generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(swapped, got)


def test_cut_loss_sums_the_layers(tiny_guidance, monkeypatch):
    import ids_nerf.guidance.cut as cut

    calls = []
    monkeypatch.setattr(cut, "patch_nce_loss", lambda trg, src, **kw: calls.append(1) or torch.tensor(1.0))
    z = torch.randn(1, 4, 16, 16)
    c = tiny_guidance.embed_prompt("a ball")
    loss = cut.cut_loss(tiny_guidance, z, z, c, c, torch.tensor([400]), torch.randn_like(z))
    assert len(calls) > 1 and float(loss) == len(calls)
