"""Editing an edited scene again (--edit-again True), and resumes that cannot be mistaken for one."""

import pytest
import torch
import yaml

from ids_nerf.nerfstudio.checkpoints import load_checkpoint
from tests.nerfstudio.conftest import checked, edit_command, edit_trainer, fresh_splat_checkpoint, run

SECOND = ["--pipeline.source-prompt", "a blue ball and a green box", "--pipeline.target-prompt", "a gold ball"]


def _with(command, flags):
    """``command`` with the values of the flags in ``flags`` (pairs) replaced or added before the dataparser."""
    command = list(command)
    for flag, value in zip(flags[::2], flags[1::2]):
        if flag in command:
            command[command.index(flag) + 1] = value
        else:
            at = command.index("blender-data")
            command[at:at] = [flag, value]
    return command


def _one_error(result):
    errors = [line for line in result.stderr.splitlines() if line.startswith("ids-edit: error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stdout[-2000:] + result.stderr[-2000:]
    return errors[0]


@pytest.mark.slow
def test_editing_the_edited_scene_again_records_the_chain(edit_run, source_run, workspace, ns_env, tiny_sd_dir):
    command = edit_command(workspace, timestamp="again", load_dir=edit_run / "nerfstudio_models", model=tiny_sd_dir)
    result = checked(run(_with(command, [*SECOND, "--edit-again", "True"]), ns_env))
    assert "Editing an edited scene: nerfacto (4 steps) -> ids-edit" in " ".join(result.stdout.split())
    again = workspace / "out" / "scene" / "ids-edit" / "again"
    assert sorted(p.name for p in (again / "nerfstudio_models").glob("*.ckpt")) == ["step-000000002.ckpt"]
    chain = yaml.load((again / "config.yml").read_text(), Loader=yaml.Loader).edit_chain
    assert chain == [
        {"run": str(source_run), "method": "nerfacto", "steps": 4},
        {
            "run": str(edit_run),
            "method": "ids-edit",
            "steps": 3,
            "source_prompt": "a red ball and a green box",
            "target_prompt": "a blue ball and a green box",
        },
    ]
    # its source latents are the edited scene's renders, not the first edit's stored source renders
    first = load_checkpoint(edit_run / "nerfstudio_models" / "step-000000002.ckpt")["pipeline"]
    second = load_checkpoint(again / "nerfstudio_models" / "step-000000002.ckpt")["pipeline"]
    assert not torch.equal(first["source_latents"], second["source_latents"])
    assert int(second["source_model_step"]) == int(first["source_model_step"])  # still the source training's


@pytest.mark.slow
def test_a_resume_with_other_prompts_or_method_is_refused(edit_run, workspace, ns_env, tiny_sd_dir):
    command = edit_command(
        workspace, timestamp="bad-resume", load_dir=edit_run / "nerfstudio_models", model=tiny_sd_dir
    )
    error = _one_error(run(_with(command, SECOND), ns_env))
    assert "--pipeline.target-prompt 'a gold ball' (saved: 'a blue ball and a green box')" in error
    assert "ns-train ids-edit --pipeline.source-prompt 'a red ball and a green box'" in error
    assert "--edit-again True" in error
    assert not (workspace / "out" / "scene" / "ids-edit" / "bad-resume").exists()
    other = edit_command(workspace, "dds-edit", "bad-method", edit_run / "nerfstudio_models", tiny_sd_dir)
    assert "method dds-edit (saved: ids-edit)" in _one_error(run(other, ns_env))


@pytest.mark.slow
def test_a_splat_edit_of_an_edited_splat_scene(workspace, ns_env, tiny_sd_dir, tmp_path):
    from ids_nerf.testing.gsplat_cpu import use_cpu_rasterizer

    model = {"num_random": 300, "use_absgrad": False}
    with use_cpu_rasterizer():
        first = edit_trainer(
            "ids-edit-splat",
            workspace,
            tiny_sd_dir,
            fresh_splat_checkpoint(workspace, tmp_path),
            tmp_path / "one",
            model=model,
            loss_scale=1e4,
        )
        first.config.max_num_iterations = 2
        first.train()
        edited = first.base_dir / "nerfstudio_models"
        with pytest.raises(SystemExit) as refused:  # other prompts without --edit-again: not a resume
            edit_trainer(
                "ids-edit-splat", workspace, tiny_sd_dir, edited, tmp_path / "two", target_prompt="a gold ball"
            )
        assert refused.value.code == 2
        second = edit_trainer(
            "ids-edit-splat",
            workspace,
            tiny_sd_dir,
            edited,
            tmp_path / "three",
            target_prompt="a gold ball",
            trainer={"edit_again": True},
        )
    # the fresh source has no config.yml, so the chain starts at the first edit
    assert [link["method"] for link in second.config.edit_chain] == ["ids-edit-splat"]
    assert second.config.edit_chain[0]["steps"] == 2 and second._start_step == 0
    before = first.pipeline.source_latents
    assert before.shape == second.pipeline.source_latents.shape
    assert not torch.equal(before, second.pipeline.source_latents.to(before.device))


def _saved(method="ids-edit", source="a red ball", target="a blue ball"):
    from types import SimpleNamespace

    from ids_nerf.nerfstudio.pipeline import IDSEditPipelineConfig

    pipeline = IDSEditPipelineConfig(source_prompt=source, target_prompt=target)
    return SimpleNamespace(method_name=method, pipeline=pipeline, edit_chain=[])


def test_a_resume_must_repeat_method_and_prompts():
    from pathlib import Path

    from ids_nerf.errors import UserError
    from ids_nerf.nerfstudio.trainer import chain_link, check_same_edit, describe_chain, edit_differences

    saved = _saved()
    check_same_edit(saved, _saved(), Path("run"))
    assert edit_differences(saved, _saved("dds-edit")) == ["method dds-edit (saved: ids-edit)"]
    with pytest.raises(UserError, match="to resume it use ns-train ids-edit --pipeline.source-prompt 'a red ball'"):
        check_same_edit(saved, _saved(target="a gold ball"), Path("run"))
    link = chain_link(saved, Path("runs/edit"), last_step=119)
    assert link == {
        "run": "runs/edit",
        "method": "ids-edit",
        "steps": 120,
        "source_prompt": "a red ball",
        "target_prompt": "a blue ball",
    }
    source = {"run": "runs/src", "method": "nerfacto", "steps": 600}
    assert (
        describe_chain([source, link]) == "nerfacto (600 steps) -> ids-edit 'a red ball' -> 'a blue ball' (120 steps)"
    )
