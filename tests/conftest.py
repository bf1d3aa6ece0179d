"""Shared fixtures: everything offline, a tiny Stable Diffusion folder made once per session."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may wait on the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402


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
