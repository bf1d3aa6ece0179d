import hashlib
import math

import pytest
import torch

import ids_nerf.evaluation.metrics as metrics_module
from ids_nerf.errors import ModelUnavailableError
from ids_nerf.evaluation import (
    ClipScorer,
    alexnet_weights_path,
    load_clip,
    lpips,
    lpips_available,
    mask_iou,
    masked_depth_error,
    psnr,
    ssim,
)
from ids_nerf.evaluation.metrics import write_untrained_alexnet
from tests.import_check import assert_imports_none_of


def _image(seed=0, h=32, w=32, high=0.8):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(3, h, w, generator=generator) * high


def test_evaluation_imports_no_nerfstudio():
    assert_imports_none_of("ids_nerf.evaluation", {"nerfstudio", "diffusers"})


# ---- PSNR / SSIM ---------------------------------------------------------------------------------


def test_psnr_of_constant_offset_is_exact():
    x = _image()
    assert psnr(x + 0.1, x) == pytest.approx(20.0, abs=1e-4)  # MSE 0.01 -> 10 log10(100)
    assert psnr(x + 0.01, x) == pytest.approx(40.0, abs=1e-3)


def test_psnr_of_identical_images_is_inf():
    x = _image()
    assert psnr(x, x) == math.inf


def test_psnr_of_a_batch_is_the_mean_of_per_image_values():
    x = torch.stack([_image(0), _image(1)])
    offset = torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)
    assert psnr(x + offset, x) == pytest.approx(30.0, abs=1e-3)


def test_masked_psnr_ignores_differences_outside_the_mask():
    x = _image()
    y = x.clone()
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[4:12, 4:12] = True
    y[:, mask] += 0.1  # inside: MSE 0.01
    y[:, 20:, 20:] = 1.0 - y[:, 20:, 20:]  # outside: large differences that must not count
    assert psnr(y, x, mask=mask) == pytest.approx(20.0, abs=1e-4)
    assert psnr(y, x) < 20.0
    # an [H, W] mask is shared by a batch; a [B, H, W] mask is per image
    assert psnr(torch.stack([y, y]), torch.stack([x, x]), mask=mask) == pytest.approx(20.0, abs=1e-4)
    per_image = torch.stack([mask, mask])
    assert psnr(torch.stack([y, y]), torch.stack([x, x]), mask=per_image) == pytest.approx(20.0, abs=1e-4)


def test_masked_psnr_with_an_empty_mask_is_nan():
    x = _image()
    assert math.isnan(psnr(x + 0.1, x, mask=torch.zeros(32, 32, dtype=torch.bool)))


def test_psnr_rejects_bad_shapes():
    with pytest.raises(ValueError):
        psnr(_image(), _image(h=16))
    with pytest.raises(ValueError):
        psnr(_image(), _image(), mask=torch.ones(16, 16, dtype=torch.bool))
    with pytest.raises(ValueError):
        psnr(_image(), _image(), mask=torch.ones(32, 32))  # not bool


def test_ssim_is_one_for_identical_images_and_lower_for_noise():
    x = _image()
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert ssim(noisy, x) < 0.9
    batch = torch.stack([x, x])
    assert ssim(batch, batch) == pytest.approx(1.0, abs=1e-6)


# ---- masks and depth -----------------------------------------------------------------------------


def test_mask_iou_known_values():
    a = torch.zeros(4, 4, dtype=torch.bool)
    b = torch.zeros(4, 4, dtype=torch.bool)
    a[0:2, 0:2] = True
    b[1:3, 1:3] = True  # 2x2 squares sharing one pixel: 1 / (4 + 4 - 1)
    assert mask_iou(a, b) == pytest.approx(1 / 7)
    assert mask_iou(a, a) == 1.0
    empty = torch.zeros(4, 4, dtype=torch.bool)
    assert mask_iou(empty, empty) == 1.0
    assert mask_iou(a, empty) == 0.0
    assert mask_iou(torch.stack([a, a]), torch.stack([b, a])) == pytest.approx((1 / 7 + 1) / 2)
    with pytest.raises(ValueError):
        mask_iou(a.float(), b)


def test_masked_depth_error_known_value():
    depth_a = torch.ones(8, 8)
    depth_b = torch.ones(8, 8)
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[:4] = True
    depth_b[:2] += 0.5  # half the masked pixels off by 0.5
    depth_b[4:] += 10.0  # outside the mask
    assert masked_depth_error(depth_a, depth_b, mask) == pytest.approx(0.25)
    # nerfstudio's [H, W, 1] and a batch with a shared mask
    assert masked_depth_error(depth_a[..., None], depth_b[..., None], mask) == pytest.approx(0.25)
    batch_a, batch_b = torch.stack([depth_a, depth_a]), torch.stack([depth_b, depth_a])
    assert masked_depth_error(batch_a, batch_b, mask) == pytest.approx(0.125)


def test_masked_depth_error_is_nan_safe():
    depth_a = torch.zeros(4, 4)
    depth_b = torch.full((4, 4), 2.0)
    depth_a[0, 0] = float("nan")
    depth_b[0, 1] = float("inf")
    mask = torch.ones(4, 4, dtype=torch.bool)
    assert masked_depth_error(depth_a, depth_b, mask) == pytest.approx(2.0)
    assert math.isnan(masked_depth_error(depth_a, depth_b, torch.zeros(4, 4, dtype=torch.bool)))
    only_bad = torch.zeros(4, 4, dtype=torch.bool)
    only_bad[0, 0] = True
    assert math.isnan(masked_depth_error(depth_a, depth_b, only_bad))


# ---- LPIPS weight check --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_alexnet_home(tmp_path_factory):
    """A TORCH_HOME holding untrained AlexNet weights at torchvision's cache path (as the nerfstudio tests do)."""
    torch_home = tmp_path_factory.mktemp("torch_home")
    write_untrained_alexnet(torch_home)
    return torch_home


def _use_hub(monkeypatch, torch_home):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(torch_home / "hub"))


def test_lpips_unavailable_without_cached_weights(tmp_path, monkeypatch):
    available, reason = lpips_available(tmp_path)
    assert not available and "no AlexNet weights" in reason
    _use_hub(monkeypatch, tmp_path)
    assert lpips_available() == (available, reason)
    with pytest.raises(ModelUnavailableError, match="no AlexNet weights"):
        lpips(_image(), _image(1))
    assert not alexnet_weights_path(tmp_path).exists()  # nothing was downloaded


def test_lpips_unavailable_with_random_weights(random_alexnet_home, monkeypatch):
    available, reason = lpips_available(random_alexnet_home)
    assert not available and "not the real ones" in reason
    _use_hub(monkeypatch, random_alexnet_home)
    assert lpips_available() == (available, reason)
    with pytest.raises(ModelUnavailableError, match="sha256 mismatch"):
        lpips(_image(), _image(1))


def test_lpips_available_when_the_hash_matches_the_file_name(random_alexnet_home, tmp_path, monkeypatch):
    source = alexnet_weights_path(random_alexnet_home)
    prefix = hashlib.sha256(source.read_bytes()).hexdigest()[:8]
    monkeypatch.setattr(metrics_module, "ALEXNET_WEIGHTS_URL", f"https://example.invalid/alexnet-owt-{prefix}.pth")
    target = alexnet_weights_path(tmp_path)
    target.parent.mkdir(parents=True)
    target.symlink_to(source)
    available, reason = lpips_available(tmp_path)
    assert available, reason


# ---- CLIP ----------------------------------------------------------------------------------------


def test_load_clip_loads_a_saved_folder(tiny_clip, tiny_clip_dir):
    assert isinstance(tiny_clip, ClipScorer)
    assert tiny_clip.image_size == 32


def test_load_clip_without_local_weights_returns_none(tmp_path):
    from huggingface_hub import try_to_load_from_cache

    model_id = "openai/clip-vit-base-patch32"
    if isinstance(try_to_load_from_cache(model_id, "config.json"), str):
        pytest.skip(f"{model_id} is in this machine's Hugging Face cache")
    scorer, notice = load_clip(model_id)
    assert scorer is None and "CLIP metrics skipped" in notice
    scorer, notice = load_clip(str(tmp_path / "missing"))
    assert scorer is None and "CLIP metrics skipped" in notice


def test_clip_preprocess_resizes_crops_and_normalises(tiny_clip):
    from transformers.utils.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    pixels = tiny_clip.preprocess(torch.full((2, 3, 40, 64), 0.5))
    assert pixels.shape == (2, 3, 32, 32)
    expected = (0.5 - torch.tensor(OPENAI_CLIP_MEAN)) / torch.tensor(OPENAI_CLIP_STD)
    assert torch.allclose(pixels, expected.view(1, 3, 1, 1).expand_as(pixels), atol=1e-5)


def test_text_image_similarity_is_a_mean_cosine(tiny_clip):
    a, b = _image(0, 40, 48), _image(1, 40, 48)
    sa, sb = tiny_clip.text_image_similarity(a, "a red ball"), tiny_clip.text_image_similarity(b, "a red ball")
    assert -1.0 <= sa <= 1.0
    assert tiny_clip.text_image_similarity(torch.stack([a, b]), "a red ball") == pytest.approx((sa + sb) / 2, abs=1e-5)


def test_directional_similarity_is_antisymmetric_and_zero_without_edit(tiny_clip):
    src = torch.stack([_image(0), _image(1)])
    edited = torch.stack([_image(2), _image(3)])
    ball, cube = "a photo of a ball", "a photo of a cube"
    forward = tiny_clip.directional_similarity(src, edited, ball, cube)
    assert -1.0 <= forward <= 1.0 and forward != 0.0
    assert tiny_clip.directional_similarity(edited, src, ball, cube) == pytest.approx(-forward, abs=1e-5)
    assert tiny_clip.directional_similarity(src, edited, cube, ball) == pytest.approx(-forward, abs=1e-5)
    assert tiny_clip.directional_similarity(src, src, ball, cube) == 0.0
    with pytest.raises(ValueError):
        tiny_clip.directional_similarity(src, edited[:1], "a", "b")


class _ControlledScorer(ClipScorer):
    """Embeddings looked up by the first pixel's value, texts by a table: exact answers without a model."""

    def __init__(self, images, texts):
        self.images, self.texts = images, texts

    def image_embeddings(self, images):
        images = images if images.dim() == 4 else images[None]
        return torch.stack([self.images[round(float(im[0, 0, 0]) * 10)] for im in images])

    def text_embeddings(self, texts):
        texts = [texts] if isinstance(texts, str) else texts
        return torch.stack([self.texts[t] for t in texts])


def test_directional_similarity_known_values():
    e = torch.eye(3)
    diag = torch.tensor([1.0, 1.0, 0.0]) / math.sqrt(2)
    scorer = _ControlledScorer(images={0: e[0], 1: e[1], 2: diag, 3: e[2]}, texts={"src": e[0], "trg": e[1]})
    image = lambda code: torch.full((3, 4, 4), code / 10)  # noqa: E731
    batch = lambda *codes: torch.stack([image(c) for c in codes])  # noqa: E731

    assert scorer.directional_similarity(image(0), image(1), "src", "trg") == pytest.approx(1.0)  # same direction
    assert scorer.directional_similarity(image(1), image(0), "src", "trg") == pytest.approx(-1.0)  # opposite
    # e0 -> diag: a partial move, cosine computed by hand
    delta = diag - e[0]
    expected = float(delta @ (e[1] - e[0]) / (delta.norm() * (e[1] - e[0]).norm()))
    assert scorer.directional_similarity(image(0), image(2), "src", "trg") == pytest.approx(expected)
    # no edit gives 0.0; e0 -> e2: (-1, 0, 1) . (-1, 1, 0) / (sqrt2 * sqrt2) = 1/2
    assert scorer.directional_similarity(image(3), image(3), "src", "trg") == 0.0
    assert scorer.directional_similarity(image(0), image(3), "src", "trg") == pytest.approx(0.5)
    # averaged over pairs
    assert scorer.directional_similarity(batch(0, 1), batch(1, 0), "src", "trg") == pytest.approx(0.0, abs=1e-6)
    assert scorer.directional_similarity(batch(0, 0), batch(1, 3), "src", "trg") == pytest.approx(0.75)
    # identical captions give no direction: 0.0, not nan
    assert scorer.directional_similarity(image(0), image(1), "src", "src") == 0.0


def test_median_depth_error_ignores_a_runaway_pixel():
    a = torch.zeros(4, 4)
    b = torch.full((4, 4), 0.1)
    b[0, 0] = 400.0  # a pixel whose expected depth ran off to the far plane
    mask = torch.ones(4, 4, dtype=torch.bool)
    assert masked_depth_error(a, b, mask, "median") == pytest.approx(0.1)
    assert masked_depth_error(a, b, mask) > 20
