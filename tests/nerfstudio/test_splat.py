"""ids-edit-splat set-up: registration, loading a splatfacto checkpoint, optimizer wiring.

These build the trainer in-process; its memory plan renders one view with the CPU stand-in rasterizer,
and the source latents come from the dataset; the whole edit (source renders, edit steps, evaluation)
runs in test_splat_edit_on_cpu.py.
"""

import pytest
import torch
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig
from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
from nerfstudio.engine.callbacks import TrainingCallbackLocation
from nerfstudio.models.splatfacto import SplatfactoModelConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig

from ids_nerf.testing.gsplat_cpu import use_cpu_rasterizer
from tests.nerfstudio.conftest import edit_trainer

pytestmark = pytest.mark.slow
GAUSSIANS = 300
SOURCE_STEP = 2999


@pytest.fixture(scope="module")
def splat_checkpoint(workspace, ns_env, tmp_path_factory):
    """A splatfacto checkpoint with GAUSSIANS Gaussians, unlike a fresh model's random start."""
    pipeline = VanillaPipelineConfig(
        datamanager=FullImageDatamanagerConfig(
            dataparser=BlenderDataParserConfig(data=workspace / "scene"), cache_images="gpu"
        ),
        model=SplatfactoModelConfig(num_random=1000),
    ).setup(device="cpu", test_mode="val")
    state = {f"_model.{k}": v for k, v in pipeline.model.state_dict().items()}
    for key in list(state):
        if key.startswith("_model.gauss_params."):
            state[key] = state[key][:GAUSSIANS].clone() + 0.01
    folder = tmp_path_factory.mktemp("splat") / "nerfstudio_models"
    folder.mkdir()
    torch.save(
        {"step": SOURCE_STEP, "pipeline": state, "optimizers": {}, "schedulers": {}, "scalers": {}},
        folder / f"step-{SOURCE_STEP:09d}.ckpt",
    )
    return folder


def _trainer(workspace, tiny_sd_dir, load_dir, tmp_path, densify=False):
    # the set-up's memory plan renders one view: on a CPU, through the stand-in rasterizer
    with use_cpu_rasterizer():
        return edit_trainer(
            "ids-edit-splat",
            workspace,
            tiny_sd_dir,
            load_dir,
            tmp_path,
            model={"num_random": 1000, "use_absgrad": False},  # the stand-in has no absgrad
            source_latents_from="dataset",
            densify=densify,
        )


def test_splat_edit_loads_the_gaussians_and_optimizes_them(workspace, ns_env, tiny_sd_dir, splat_checkpoint, tmp_path):
    trainer = _trainer(workspace, tiny_sd_dir, splat_checkpoint, tmp_path)
    model = trainer.pipeline.model
    assert model.gauss_params["means"].shape[0] == GAUSSIANS
    groups = trainer.optimizers.optimizers
    assert set(groups) == {"means", "scales", "quats", "features_dc", "features_rest", "opacities"}
    for name, optimizer in groups.items():
        # the optimizers hold the loaded Gaussians, not the fresh model's (the instruct-gs2gs pitfall)
        assert optimizer.param_groups[0]["params"][0] is model.gauss_params[name], name
    assert not any(p.requires_grad for p in model.camera_optimizer.parameters())
    assert int(trainer.pipeline.source_model_step) == SOURCE_STEP
    assert trainer.pipeline.source_latents.shape == (6, 4, 16, 16)
    assert torch.equal(torch.as_tensor(model.background_color).float(), torch.ones(3))  # edit renders on white
    # every edit render at the step a loaded splatfacto renders at (as the stored source renders, the
    # viewer and ns-render): full resolution and SH degree, though the source stopped before its warm-ups
    loaded_step = model.step
    assert (
        model._get_downscale_factor() == 1 and loaded_step // model.config.sh_degree_interval >= model.config.sh_degree
    )
    before = [c for c in trainer.callbacks if TrainingCallbackLocation.BEFORE_TRAIN_ITERATION in c.where_to_run]
    after = [c for c in trainer.callbacks if TrainingCallbackLocation.AFTER_TRAIN_ITERATION in c.where_to_run]
    for step in (0, 7, 2500):
        before[0].run_callback_at_location(step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        assert model.step == loaded_step and model._get_downscale_factor() == 1
    assert after == []  # densification stays off by default


def test_splat_densify_runs_splatfactos_refinement_from_the_first_edit_steps(
    workspace, ns_env, tiny_sd_dir, splat_checkpoint, tmp_path, monkeypatch
):
    trainer = _trainer(workspace, tiny_sd_dir, splat_checkpoint, tmp_path, densify=True)
    model = trainer.pipeline.model
    seen = []
    monkeypatch.setattr(model.strategy, "step_post_backward", lambda **kwargs: seen.append(kwargs["step"]))
    monkeypatch.setattr(model, "info", {}, raising=False)  # a render's; none happens here
    for step in (0, 100):
        for callback in trainer.callbacks:  # as the trainer does: before the step, then after it
            callback.run_callback_at_location(step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
            callback.run_callback_at_location(step, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
    strategy = model.strategy
    assert seen == [strategy.refine_start_iter, strategy.refine_start_iter + 100]
    # edit step 100 is a refinement step of gsplat's schedule, inside its window
    refine = seen[1]
    assert strategy.refine_start_iter < refine < strategy.refine_stop_iter and refine % strategy.refine_every == 0


def test_splat_edit_refuses_a_nerfacto_checkpoint(workspace, ns_env, tiny_sd_dir, source_run, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        _trainer(workspace, tiny_sd_dir, source_run / "nerfstudio_models", tmp_path)
    assert exit_info.value.code == 2
