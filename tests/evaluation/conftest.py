"""The tiny CLIP scorer (its folder, tiny_clip_dir, is a session fixture of tests/conftest.py)."""

import pytest


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_dir):
    from ids_nerf.evaluation import load_clip

    scorer, notice = load_clip(str(tiny_clip_dir))
    assert scorer is not None, notice
    return scorer
