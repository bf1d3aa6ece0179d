"""The learned score model, trained in seconds through the real command (8 scenes x 2 views at 16 px)."""

import hashlib
import json
import shutil

import pytest
import torch

from ids_nerf.errors import ModelUnavailableError, UserError
from ids_nerf.guidance import ScoreModel, load_guidance
from ids_nerf.guidance import learned as learned_module
from ids_nerf.guidance.learned import load_learned_parts, save_learned
from ids_nerf.scenes.blender_scene import APPEARANCES

CAPTION = APPEARANCES["edited"]  # an evaluation caption: the model must understand it


@pytest.fixture(scope="module")
def learned_dir(tiny_learned_dir):
    return tiny_learned_dir


@pytest.fixture(scope="module")
def model(learned_dir):
    return load_guidance(f"learned:{learned_dir}", guidance_scale=1.0)


def _inputs(batch=2, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=g), torch.tensor([100, 700][:batch])


def test_the_folder_loads_as_a_score_model(model, learned_dir):
    assert isinstance(model, ScoreModel)
    missing = [name for name in ScoreModel.__annotations__ if not hasattr(model, name)]
    assert not missing
    assert (model.native_size, model.size_multiple, model.dtype) == (16, 2, torch.float32)
    assert json.loads((learned_dir / "model_index.json").read_text())["kind"] == "ids-nerf-learned"
    assert len(model.alphas_cumprod) == 1000
    images = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(model.decode(model.encode(images)), images)


def test_score_fn_is_finite_and_differentiable(model):
    z_t, t = _inputs()
    z_t.requires_grad_(True)
    eps = model.score_fn(z_t, t, model.embed_prompt(CAPTION))
    assert eps.shape == z_t.shape and eps.dtype == torch.float32 and torch.isfinite(eps).all()
    eps.square().sum().backward()  # FPR differentiates through the score
    assert torch.isfinite(z_t.grad).all() and z_t.grad.abs().sum() > 0


def test_cfg_at_scale_1_is_the_conditional_prediction_and_at_7_5_differs(learned_dir):
    plain = load_guidance(f"learned:{learned_dir}", guidance_scale=1.0)
    guided = load_guidance(f"learned:{learned_dir}", guidance_scale=7.5)
    z_t, t = _inputs()
    cond = plain.embed_prompt(CAPTION)
    with torch.no_grad():
        eps_c = plain.unet(z_t, t, encoder_hidden_states=cond.expand(2, -1, -1)).sample
        eps_u = plain.unet(z_t, t, encoder_hidden_states=plain.embed_prompt("").expand(2, -1, -1)).sample
        torch.testing.assert_close(plain.score_fn(z_t, t, cond), eps_c)
        got = guided.score_fn(z_t, t, guided.embed_prompt(CAPTION))
    torch.testing.assert_close(got, eps_u + 7.5 * (eps_c - eps_u), rtol=1e-4, atol=1e-4)
    assert (got - eps_c).abs().max() > 1e-3


def test_save_and_load_give_identical_predictions(learned_dir, model, tmp_path):
    unet, encoder = load_learned_parts(learned_dir)
    save_learned(tmp_path / "copy", unet, encoder)
    copy = load_guidance(f"learned:{tmp_path / 'copy'}", guidance_scale=1.0)
    z_t, t = _inputs()
    with torch.no_grad():
        for prompt in (CAPTION, ""):
            assert torch.equal(
                model.score_fn(z_t, t, model.embed_prompt(prompt)), copy.score_fn(z_t, t, copy.embed_prompt(prompt))
            )


def test_training_lowers_the_loss(learned_dir):
    record = json.loads((learned_dir / "training.json").read_text())
    assert record["steps_done"] == 30 and not record["stopped_at_time_budget"]
    fixed = record["fixed_batch_loss"]  # the same images, noise and timesteps before and after
    assert fixed["after"] < 0.5 * fixed["before"], fixed
    first, last = record["loss_log"][0][1], record["loss_log"][-1][1]
    assert last < first, record["loss_log"]


def test_training_json_records_how_the_model_was_made(learned_dir):
    record = json.loads((learned_dir / "training.json").read_text())
    assert record["command"].startswith(f"ids-nerf train-score-model {learned_dir} --scenes 8 ")
    assert {"torch", "diffusers"} <= set(record["versions"]) and record["seed"] == 0
    weights = ["unet/diffusion_pytorch_model.safetensors", "caption_encoder/model.safetensors"]
    for name in weights:
        assert record["sha256"][name] == hashlib.sha256((learned_dir / name).read_bytes()).hexdigest()
    captions = json.loads((learned_dir / "training-set" / "captions.json").read_text())["captions"]
    assert len(captions) == record["training_views"] == 16


def test_unknown_word_is_refused_in_one_line(model):
    with pytest.raises(UserError) as err:
        model.embed_prompt("a red dragon on a table")
    message = str(err.value)
    assert "\n" not in message and "'dragon'" in message and "vocabulary: a an and ball blue" in message


def test_released_caption_encoder_keeps_the_cache(learned_dir):
    model = load_guidance(f"learned:{learned_dir}")
    cond = model.embed_prompt(CAPTION)
    model.release_text_encoder()
    assert model.embed_prompt(CAPTION) is cond
    model.score_fn(*_inputs(), cond)  # CFG's unconditional condition was kept
    with pytest.raises(RuntimeError):
        model.embed_prompt("a red ball and a red box on a table")


def test_learned_default_missing_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(learned_module, "DEFAULT_FOLDER", tmp_path / "absent")
    with pytest.raises(ModelUnavailableError, match="train-score-model") as err:
        load_guidance("learned:default")
    assert "\n" not in str(err.value)


def test_missing_or_incomplete_folders_are_one_line(learned_dir, tmp_path):
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_guidance(f"learned:{tmp_path / 'absent'}")
    broken = tmp_path / "broken"
    shutil.copytree(learned_dir, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelUnavailableError, match="missing unet/diffusion_pytorch_model.safetensors") as err:
        load_guidance(f"learned:{broken}")
    assert "\n" not in str(err.value)
    shutil.copytree(learned_dir, tmp_path / "other", dirs_exist_ok=True)
    (tmp_path / "other" / "model_index.json").write_text('{"kind": "something-else"}')
    with pytest.raises(ModelUnavailableError, match="not a learned score model"):
        load_guidance(f"learned:{tmp_path / 'other'}")


def test_the_recorded_command_repeats_the_run(learned_dir):
    import shlex

    import tyro

    from ids_nerf.cli.main import _subcommands

    record = json.loads((learned_dir / "training.json").read_text())
    config = tyro.extras.subcommand_cli_from_dict(_subcommands(), args=shlex.split(record["command"])[1:])
    assert {**vars(config.settings), "channels": list(config.settings.channels)} == record["settings"]


def test_learned_default_ships_with_the_package_as_it_was_recorded():
    from dataclasses import asdict

    from ids_nerf.guidance.learned_training import TrainingSettings

    folder = learned_module.DEFAULT_FOLDER
    record = json.loads((folder / "training.json").read_text())
    assert record["sha256"] and not (folder / "training-set").exists()  # the weights, not the training set
    for name, digest in record["sha256"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    defaults = TrainingSettings()
    added = {
        "single_object_captions": 0.0,
        "caption_position_std": 0.02,
        "cube_share": 0.0,
    }  # settings added since, at the value that repeats the recorded run
    made = {**added, **record["settings"]}
    assert made == {**asdict(defaults), "channels": list(defaults.channels)}  # the defaults made it
    assert record["steps_done"] == defaults.steps and not record["stopped_at_time_budget"]
    model = load_guidance("learned:default", guidance_scale=1.0)
    assert isinstance(model, ScoreModel) and model.native_size == defaults.size
    cond = model.embed_prompt(CAPTION)
    z = torch.zeros(1, 3, defaults.size, defaults.size)
    assert torch.isfinite(model.score_fn(z, torch.tensor([500]), cond)).all()
