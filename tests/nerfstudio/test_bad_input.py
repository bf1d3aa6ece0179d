"""Each bad input: one clear line, exit code 2, no run folder left behind."""

import pytest
import torch

from tests.nerfstudio.conftest import edit_command, run

pytestmark = pytest.mark.slow


def _assert_refused(result, workspace, timestamp, expected):
    errors = [line for line in result.stderr.splitlines() if line.startswith("ids-edit: error:")]
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not (workspace / "out" / "scene" / "ids-edit" / timestamp).exists()


def test_no_load_dir(workspace, ns_env, tiny_sd_dir):
    result = run(edit_command(workspace, timestamp="bad-noload", model=tiny_sd_dir), ns_env)
    _assert_refused(result, workspace, "bad-noload", "no --load-dir given")


def test_folder_without_checkpoint(workspace, ns_env, tiny_sd_dir, tmp_path):
    result = run(edit_command(workspace, timestamp="bad-empty", model=tiny_sd_dir, load_dir=tmp_path), ns_env)
    _assert_refused(result, workspace, "bad-empty", "holds no step-*.ckpt")


def test_checkpoint_of_another_model(workspace, ns_env, tiny_sd_dir, tmp_path):
    other = tmp_path / "other" / "nerfstudio_models"
    other.mkdir(parents=True)
    state = {"step": 10, "pipeline": {"_model.field.mlp.weight": torch.zeros(4, 4)}, "optimizers": {}, "scalers": {}}
    torch.save(state, other / "step-000000010.ckpt")
    result = run(edit_command(workspace, timestamp="bad-other", model=tiny_sd_dir, load_dir=other), ns_env)
    _assert_refused(result, workspace, "bad-other", "does not fit the model of this edit")


@pytest.mark.parametrize("flag", ["--pipeline.source-prompt", "--pipeline.target-prompt"])
def test_empty_prompt(workspace, ns_env, tiny_sd_dir, source_run, flag):
    command = edit_command(
        workspace, timestamp="bad-prompt", model=tiny_sd_dir, load_dir=source_run / "nerfstudio_models"
    )
    command[command.index(flag) + 1] = " "
    _assert_refused(run(command, ns_env), workspace, "bad-prompt", f"{flag} is empty")


def test_diffusion_weights_unavailable_before_training(workspace, ns_env, source_run):
    command = edit_command(
        workspace, timestamp="bad-model", model="nobody/no-such-model", load_dir=source_run / "nerfstudio_models"
    )
    result = run(command, ns_env)
    _assert_refused(result, workspace, "bad-model", "nobody/no-such-model")
    assert "Stored" not in result.stdout  # refused before rendering or training anything


def test_non_finite_loss_is_skipped_then_stops(workspace, ns_env, tiny_sd_dir, source_run):
    command = edit_command(
        workspace,
        timestamp="bad-nan",
        model=tiny_sd_dir,
        load_dir=source_run / "nerfstudio_models",
        extra=["--pipeline.fpr-scale", "nan", "--pipeline.max-consecutive-nonfinite", "2"],
    )
    result = run(command, ns_env)
    _assert_refused(result, workspace, "bad-nan", "non-finite 2 steps in a row")
    assert "step 0: non-finite IDS loss, step skipped" in result.stderr


def test_identical_prompts_warn_but_run(workspace, ns_env, tiny_sd_dir, source_run):
    command = edit_command(
        workspace,
        timestamp="same-prompts",
        model=tiny_sd_dir,
        load_dir=source_run / "nerfstudio_models",
        extra=["--max-num-iterations", "1"],
    )
    command[command.index("--pipeline.target-prompt") + 1] = command[command.index("--pipeline.source-prompt") + 1]
    result = run(command, ns_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "prompts are identical" in result.stdout
    # the 4-step test source shows little of its scene: the edit says so, in one line
    assert "Warning: the source's renders of its training views are far from the training images" in result.stdout


def test_several_devices_are_refused_while_parsing(workspace, ns_env, tiny_sd_dir, source_run):
    command = edit_command(
        workspace,
        timestamp="bad-multi",
        model=tiny_sd_dir,
        load_dir=source_run / "nerfstudio_models",
        extra=["--machine.num-devices", "2"],
    )
    _assert_refused(run(command, ns_env), workspace, "bad-multi", "--machine.num-devices 1")


def test_source_nerfacto_run_loads_under_torch_weights_only(source_run, ns_env, tmp_path):
    """The plugin's safe-globals fix also serves plain nerfacto runs: ns-eval loads one."""
    from tests.nerfstudio.conftest import BIN, checked

    checked(
        run(
            [
                str(BIN / "ns-eval"),
                "--load-config",
                str(source_run / "config.yml"),
                "--output-path",
                str(tmp_path / "eval.json"),
            ],
            ns_env,
        )
    )
    assert (tmp_path / "eval.json").is_file()


def test_other_dataparser_settings_than_the_source_are_refused(workspace, ns_env, tiny_sd_dir, source_run):
    command = edit_command(
        workspace, timestamp="bad-scale", model=tiny_sd_dir, load_dir=source_run / "nerfstudio_models"
    )
    command += ["--scale-factor", "2.0"]  # after blender-data's --data: a dataparser setting
    _assert_refused(run(command, ns_env), workspace, "bad-scale", "scale_factor 2.0 (source: 1.0)")


def test_another_dataparser_than_the_source_is_refused(workspace, ns_env, tiny_sd_dir, source_run):
    command = edit_command(
        workspace, timestamp="bad-parser", model=tiny_sd_dir, load_dir=source_run / "nerfstudio_models"
    )
    at = command.index("blender-data")
    command[at:] = ["nerfstudio-data", "--data", str(workspace / "scene")]
    _assert_refused(run(command, ns_env), workspace, "bad-parser", "read its data with BlenderDataParserConfig")


def test_other_poses_than_the_sources_are_refused(tmp_path):
    """The same settings on other data: the dataparser's transform differs from dataparser_transforms.json."""
    import json
    from types import SimpleNamespace

    from ids_nerf.errors import UserError
    from ids_nerf.nerfstudio.trainer import check_same_poses

    saved = tmp_path / "dataparser_transforms.json"
    saved.write_text(json.dumps({"transform": torch.eye(4)[:3].tolist(), "scale": 0.5}))

    def pipeline(transform, scale):
        outputs = SimpleNamespace(dataparser_transform=transform, dataparser_scale=scale)
        return SimpleNamespace(
            datamanager=SimpleNamespace(train_dataparser_outputs=outputs),
            config=SimpleNamespace(datamanager=SimpleNamespace(dataparser=SimpleNamespace(data="d"))),
        )

    check_same_poses(pipeline(torch.eye(4)[:3], 0.5), saved)  # the source's: accepted
    moved = torch.eye(4)[:3].clone()
    moved[0, 3] = 0.1
    for other in (pipeline(moved, 0.5), pipeline(torch.eye(4)[:3], 0.25)):
        with pytest.raises(UserError, match="gives other camera poses than the source run's"):
            check_same_poses(other, saved)
