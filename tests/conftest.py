"""Shared fixtures: everything offline, a tiny Stable Diffusion folder made once per session."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may wait on the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def chromium():
    """Chromium's path, for the viewer checks. Missing, it skips them with the reason, except in CI
    (CI=true), where it fails them: CI must look at the viewer on every run."""
    from tests.browser import chromium_path

    path = chromium_path()
    if path is None:
        reason = "Chromium is not installed: `make test` installs it (Debian package chromium)"
        if running_in_ci():
            pytest.fail(f"{reason}; CI=true, so the viewer check may not be skipped", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory):
    from ids_nerf.guidance import make_tiny_sd

    return make_tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_guidance(tiny_sd_dir):
    from ids_nerf.guidance import load_stable_diffusion

    return load_stable_diffusion(str(tiny_sd_dir))


@pytest.fixture(scope="session")
def ball_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "ball.png"
    image = Image.new("RGB", (48, 40), (40, 90, 200))
    ImageDraw.Draw(image).ellipse((12, 8, 36, 32), fill=(220, 30, 30))
    image.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """A tiny random CLIP model saved like a real one (no network)."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    from ids_nerf.guidance.tiny import write_byte_tokenizer

    folder = tmp_path_factory.mktemp("models") / "tiny-clip"
    write_byte_tokenizer(folder)
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    common = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **common,
        ),
        vision_config=dict(image_size=32, patch_size=8, **common),
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_learned_dir(tmp_path_factory):
    """A learned score model folder trained in seconds through the real command (:mod:`tests.learned_model`)."""
    from ids_nerf.cli.main import main
    from tests.learned_model import tiny_args

    out = tmp_path_factory.mktemp("learned") / "model"
    assert main(tiny_args(out)) == 0
    return out
