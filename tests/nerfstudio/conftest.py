"""A tiny scene, a source nerfacto trained with the real ns-train, and an ids-edit run of it.

Built once per session (about 40 s on 2 CPU cores). The edit run uses its own copy of the tiny
diffusion model, deleted once the edit is done: later commands on the run prove that they never
load diffusion weights.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ids_nerf.scenes.blender_scene import write_blender_scene
from ids_nerf.testing.ns_commands import edit_command as ns_edit_command
from ids_nerf.testing.ns_commands import make_offline_alexnet, offline_env, train_source_nerfacto

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def ns_env(tmp_path_factory):
    torch_home = tmp_path_factory.mktemp("torch-home")
    make_offline_alexnet(torch_home)
    os.environ["TORCH_HOME"] = str(torch_home)  # for in-process eval_setup too
    return offline_env(torch_home)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory, ns_env, tiny_sd_dir):
    root = tmp_path_factory.mktemp("ns")
    write_blender_scene(root / "scene", size=32, views=6)
    return root


@pytest.fixture(scope="session")
def source_run(workspace, ns_env):
    return train_source_nerfacto(workspace / "scene", workspace / "out", ns_env, steps=4)


def edit_command(workspace, method="ids-edit", timestamp="edit", load_dir=None, model=None, extra=()):
    """``ns-train <method>``, 3 steps, on the test scene; ``extra`` go before the dataparser subcommand."""
    scene, out = workspace / "scene", workspace / "out"
    return ns_edit_command(
        method, scene, load_dir, model, out, "scene", timestamp, 3, "--pipeline.log-images-every", "2", *extra
    )


def run(command, env, timeout=300):
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def checked(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="session")
def edit_run(workspace, source_run, ns_env, tiny_sd_dir):
    model = workspace / "tiny-sd-for-edit"
    shutil.copytree(tiny_sd_dir, model)
    checked(run(edit_command(workspace, load_dir=source_run / "nerfstudio_models", model=model), ns_env))
    shutil.rmtree(model)  # from here on, nothing may need the diffusion weights
    return workspace / "out" / "scene" / "ids-edit" / "edit"


def edit_trainer(method, workspace, model_dir, load_dir, out, model=None, trainer=None, dataparser=None, **pipeline):
    """An ``ids-edit``-family trainer set up in-process on the test scene (what ``ns-train method`` builds),
    with ``pipeline``, ``model`` and ``trainer`` settings overridden; the run goes to ``out``. ``dataparser``:
    another dataparser config than blender-data of the test scene."""
    import copy

    from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
    from nerfstudio.plugins.registry import discover_methods

    config = copy.deepcopy(discover_methods()[0][method])
    config.machine.device_type = "cpu"
    config.vis = "tensorboard"
    config.output_dir = out
    config.load_dir = load_dir
    config.pipeline.datamanager.dataparser = dataparser or BlenderDataParserConfig(data=workspace / "scene")
    config.pipeline.source_prompt, config.pipeline.target_prompt = "a red ball", "a blue ball"
    config.pipeline.diffusion_model = str(model_dir)
    for key, value in pipeline.items():
        setattr(config.pipeline, key, value)
    for key, value in (model or {}).items():
        setattr(config.pipeline.model, key, value)
    for key, value in (trainer or {}).items():
        setattr(config, key, value)
    config.set_timestamp()
    config.save_config()
    built = config.setup(local_rank=0, world_size=1)
    built.setup()
    return built


def fresh_splat_checkpoint(workspace, folder, gaussians=300):
    """``folder/nerfstudio_models`` with the checkpoint of a fresh splatfacto (``gaussians`` random Gaussians
    inside the test scene) at step 2999: a splat source without training one."""
    import torch
    from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig
    from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
    from nerfstudio.models.splatfacto import SplatfactoModelConfig
    from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig

    pipeline = VanillaPipelineConfig(
        datamanager=FullImageDatamanagerConfig(dataparser=BlenderDataParserConfig(data=workspace / "scene")),
        model=SplatfactoModelConfig(num_random=gaussians, random_scale=1.0),
    ).setup(device="cpu", test_mode="val")
    models = folder / "nerfstudio_models"
    models.mkdir(parents=True)
    state = {f"_model.{k}": v for k, v in pipeline.model.state_dict().items()}
    torch.save({"step": 2999, "pipeline": state, "optimizers": {}, "schedulers": {}}, models / "step-000002999.ckpt")
    return models
