import pytest
import torch

from ids_nerf.guidance.exact import ExactScoreGuidance, PixelCodec


@pytest.fixture
def exact_model():
    """An exact-score model of two random sets of 8x8 images, captioned "source" and "edited"."""
    g = torch.Generator().manual_seed(0)
    sets = {name: torch.rand(4, 3, 8, 8, generator=g) * 2 - 1 for name in ("source", "edited")}
    return ExactScoreGuidance(sets, PixelCodec(), native_size=8)
