"""The ready edit configs in configs/*.yaml follow the fixed schema that `ids-nerf run` reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ids_nerf.methods import EDIT_METHODS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
KEYS = {
    "name",
    "scene",
    "dataparser",
    "dataparser_args",
    "source_run",
    "source_method",
    "source_args",
    "method",
    "source_prompt",
    "target_prompt",
    "edit_args",
    "output_dir",
}
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))


def test_configs_exist():
    assert len(CONFIGS) >= 5, CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_schema(path):
    config = yaml.safe_load(path.read_text())
    assert isinstance(config, dict)
    assert set(config) == KEYS, set(config) ^ KEYS
    assert config["name"] == path.stem
    assert config["method"] in EDIT_METHODS
    assert config["source_method"] == EDIT_METHODS[config["method"]]
    for key in ("source_prompt", "target_prompt"):
        assert isinstance(config[key], str) and config[key].strip(), key
    assert config["source_prompt"].strip() != config["target_prompt"].strip()
    for key in ("name", "scene", "dataparser", "source_method", "output_dir"):
        assert isinstance(config[key], str) and config[key], key
    for key in ("dataparser_args", "source_args", "edit_args"):
        assert isinstance(config[key], list) and all(isinstance(a, str) for a in config[key]), key
    assert config["source_run"] is None or isinstance(config["source_run"], str)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_dataparser_matches_scene_kind(path):
    """Blender scenes use blender-data; LLFF scenes use nerfstudio-data on transforms.json that already points into
    images_4/ (written by data_scripts/), so nerfstudio must not downscale again."""
    config = yaml.safe_load(path.read_text())
    if config["scene"].startswith("data/blender/"):
        assert config["dataparser"] == "blender-data"
        # the source recipe without white haze: a random background, the images' alpha kept
        assert config["dataparser_args"][-2:] == ["--alpha-color", "None"]
        args = config["source_args"]
        assert args[args.index("--pipeline.model.background-color") + 1] == "random"
    elif config["scene"].startswith("data/llff/"):
        assert config["dataparser"] == "nerfstudio-data"
        args = config["dataparser_args"]
        assert "--downscale-factor" in args and args[args.index("--downscale-factor") + 1] == "1"
