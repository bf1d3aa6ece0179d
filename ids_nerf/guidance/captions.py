"""The learned score model's caption encoder: words of a fixed vocabulary, no CLIP.

A caption is split into lower-case words; each word has a learned embedding, a learned position is added, and a
small pre-norm transformer mixes them into ``[B, max_words, dim]``, the UNet's ``encoder_hidden_states``. The
empty caption is one learned "<null>" word: the unconditional condition of classifier-free guidance (training
drops captions to it). Short captions are filled with a learned "<pad>" word rather than masked, so that every
caption has the same length and an all-padding sequence never reaches attention.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import List, Sequence

import torch
from torch import Tensor, nn

from ids_nerf.errors import UserError

PAD, NULL = "<pad>", "<null>"


@dataclass(frozen=True)
class CaptionEncoderConfig:
    """The encoder's shape; saved with its weights (``caption_encoder/config.json``)."""

    vocabulary: tuple
    """The words it knows (the random scenes' captions'); <pad> and <null> come first, added here."""
    dim: int = 64
    """Width of each word's vector, the UNet's cross-attention dim."""
    max_words: int = 16
    """Longest caption in words (the longest template has 12)."""
    layers: int = 2
    """Transformer layers."""
    heads: int = 4
    """Attention heads; must divide dim."""
    position_std: float = 0.02
    """Standard deviation of the position embeddings at initialisation (the word embeddings' is 1). Attention
    sees the order of the words only through them, and cross-attention sees the caption's vectors as a set:
    at 0.02 the encoder starts, and after 4,000 steps stays, nearly blind to which colour word stands before
    which noun (docs/verification.md). Only initialisation uses it; a saved encoder loads its trained ones."""

    def to_json(self) -> dict:
        return {**asdict(self), "vocabulary": list(self.vocabulary)}

    @classmethod
    def from_json(cls, data: dict) -> "CaptionEncoderConfig":
        return cls(**{**data, "vocabulary": tuple(data["vocabulary"])})


def split_words(caption: str) -> List[str]:
    """Lower-case words; commas and full stops separate words and are dropped."""
    return re.findall(r"[^\s,.]+", caption.lower())


class CaptionEncoder(nn.Module):
    """Captions of :attr:`CaptionEncoderConfig.vocabulary` to ``[B, max_words, dim]`` hidden states."""

    def __init__(self, config: CaptionEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.words = [PAD, NULL, *config.vocabulary]
        self.index = {word: i for i, word in enumerate(self.words)}
        self.embed = nn.Embedding(len(self.words), config.dim)
        self.position = nn.Parameter(torch.randn(config.max_words, config.dim) * config.position_std)
        layer = nn.TransformerEncoderLayer(
            config.dim, config.heads, 2 * config.dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.dim)

    def tokenize(self, captions: Sequence[str]) -> Tensor:
        """``[B, max_words]`` word indices; an unknown word or a too long caption is a one-line UserError."""
        rows = []
        for caption in captions:
            words = split_words(caption)
            unknown = [w for w in words if w not in self.index or w in (PAD, NULL)]
            if unknown:
                raise UserError(
                    f'the learned score model knows no word {", ".join(repr(w) for w in unknown)} in "{caption}"; '
                    f"its vocabulary: {' '.join(self.config.vocabulary)}"
                )
            if len(words) > self.config.max_words:
                raise UserError(
                    f'caption "{caption}" has {len(words)} words; the learned score model takes at most '
                    f"{self.config.max_words}"
                )
            words = words or [NULL]
            rows.append([self.index[w] for w in words] + [self.index[PAD]] * (self.config.max_words - len(words)))
        return torch.tensor(rows, dtype=torch.long, device=self.position.device)

    def forward(self, ids: Tensor) -> Tensor:
        return self.norm(self.encoder(self.embed(ids) + self.position))

    def encode(self, captions: Sequence[str]) -> Tensor:
        """Hidden states of ``captions`` (``""``: the unconditional condition)."""
        return self(self.tokenize(captions))
