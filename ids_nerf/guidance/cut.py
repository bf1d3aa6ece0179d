"""CDS's patch-contrastive (CUT) loss on the UNet's self-attention features (Nam et al., CVPR 2024).

The target's features at a location should match the source's features at the same location more
than at any other sampled location (PatchNCE, InfoNCE with temperature ``tau``). Used by the 2D
editor's ``--method cds`` (DDS + this loss), as the official IDS code does optionally.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ids_nerf.core import add_noise


@contextlib.contextmanager
def up_block_self_attention(unet) -> Iterator[List[Tensor]]:
    """Collect the outputs of every self-attention (``attn1``) in the UNet's up blocks, in call order."""
    features: List[Tensor] = []
    hooks = [
        module.register_forward_hook(lambda _m, _i, out: features.append(out))
        for name, module in unet.up_blocks.named_modules()
        if name.endswith("attn1")
    ]
    try:
        yield features
    finally:
        for hook in hooks:
            hook.remove()


def _tokens_to_map(tokens: Tensor, latent_hw: Sequence[int]) -> Tensor:
    """``[B, N, C]`` attention tokens back to ``[B, C, h, w]`` with the latent's aspect ratio."""
    batch, n, channels = tokens.shape
    stride = math.sqrt(latent_hw[0] * latent_hw[1] / n)
    h, w = round(latent_hw[0] / stride), round(latent_hw[1] / stride)
    return tokens.transpose(1, 2).reshape(batch, channels, h, w)


NEGATIVE_SELF_LOGIT = -10.0
"""The official loss fills a patch's own slot among its negatives with this similarity (far below any
cosine), keeping the positive in a column of its own."""


def patch_nce_loss(
    feat_trg: Tensor,
    feat_src: Tensor,
    num_patches: int = 256,
    patch_sizes: Sequence[int] = (1, 2),
    tau: float = 0.07,
    generator: torch.Generator | None = None,
) -> Tensor:
    """PatchNCE between two ``[B, C, h, w]`` feature maps, summed over patch sizes (as CDS's official code).

    Features are average-pooled over ``p x p`` patches and normalised, the same random locations are
    taken in both maps, and each *source* patch (the anchor, detached) must pick the target patch at its
    own location among all sampled target patches: cross-entropy over ``[s_ii, s_ij (j != i)] / tau``,
    ``s`` the cosine similarity, averaged over patches.
    """
    total = feat_trg.new_zeros((), dtype=torch.float32)
    for p in patch_sizes:
        trg = F.avg_pool2d(feat_trg, p) if p > 1 else feat_trg
        src = F.avg_pool2d(feat_src, p) if p > 1 else feat_src
        trg = F.normalize(trg.float(), dim=1).flatten(2).transpose(1, 2)  # [B, L, C]
        src = F.normalize(src.float().detach(), dim=1).flatten(2).transpose(1, 2)
        count = min(num_patches, trg.shape[1])
        index = torch.randperm(trg.shape[1], generator=generator)[:count].to(trg.device)
        similarity = src[:, index] @ trg[:, index].transpose(1, 2)  # [B, L, L]: row i anchors source patch i
        own = torch.eye(count, dtype=torch.bool, device=trg.device)
        positives = similarity.diagonal(dim1=1, dim2=2)[..., None]
        negatives = similarity.masked_fill(own, NEGATIVE_SELF_LOGIT)
        logits = torch.cat([positives, negatives], dim=-1).flatten(0, 1) / tau
        total = total + F.cross_entropy(logits, logits.new_zeros(logits.shape[0], dtype=torch.long))
    return total


def cut_loss(guidance, z_src: Tensor, z_trg: Tensor, cond_src, cond_trg, t, noise, **nce_kwargs) -> Tensor:
    """CUT loss of the target latent, differentiable in ``z_trg`` through the UNet: PatchNCE summed
    over the up blocks' self-attention layers (9 in SD 1.x) and patch sizes.

    Both latents are noised with the same ``noise`` and ``t`` (as in DDS); one conditional UNet pass
    over the pair yields the features.
    """
    ac = guidance.alphas_cumprod
    z_t = torch.cat([add_noise(z_src.detach(), noise, t, ac), add_noise(z_trg, noise, t, ac)])
    cond = torch.cat([cond_src, cond_trg]).to(guidance.device, guidance.dtype)
    with up_block_self_attention(guidance.unet) as features:
        guidance.unet(
            z_t.to(guidance.device, guidance.dtype), torch.cat([t, t]).to(guidance.device), encoder_hidden_states=cond
        )
    losses = []
    for tokens in features:
        fmap = _tokens_to_map(tokens, z_trg.shape[-2:])
        feat_src, feat_trg = fmap.chunk(2)
        losses.append(patch_nce_loss(feat_trg, feat_src, **nce_kwargs))
    return torch.stack(losses).sum().to(z_trg.device)  # summed over layers, as the official code
