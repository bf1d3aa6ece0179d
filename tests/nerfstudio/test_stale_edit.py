"""An edit that changes nothing stops with one line instead of finishing with the source scene."""

import pytest
import torch

from ids_nerf.nerfstudio.stale import StaleEditWatch
from tests.nerfstudio.conftest import edit_command, edit_trainer, fresh_splat_checkpoint, run

STALE_LINE = "ids-edit: error: the edit has not changed the scene: after 2 steps"


def test_the_watch_stops_only_an_edit_whose_renders_stay():
    image = torch.rand(1, 3, 4, 4)
    still = StaleEditWatch(after_steps=2, threshold=0.002)
    assert [still.observe(step, step // 2, image) for step in range(2)] == [None, None]
    message = still.observe(2, 1, image)
    assert message.startswith("the edit has not changed the scene: after 2 steps") and "learning rates" in message
    assert still.first_renders == {} and still.observe(3, 1, image) is None  # one verdict, memory freed

    moving = StaleEditWatch(after_steps=2, threshold=0.002)
    for step in range(4):
        assert moving.observe(step, step // 2, image + 0.01 * step) is None
    assert moving.done and moving.largest_change == pytest.approx(0.01, abs=1e-3)


def test_the_watch_waits_for_a_view_seen_twice_and_can_be_off():
    image = torch.zeros(1, 3, 2, 2)
    watch = StaleEditWatch(after_steps=2, threshold=0.002)
    assert [watch.observe(step, view, image) for step, view in enumerate([0, 1, 2, 3])] == [None] * 4
    assert watch.observe(4, 3, image) is None  # view 3 was first seen after the 2 steps: not kept
    assert watch.observe(5, 0, image) is not None  # the first kept view seen again gives the verdict
    off = StaleEditWatch(after_steps=0, threshold=0.002)
    assert all(off.observe(step, 0, image) is None for step in range(5))


@pytest.mark.slow
def test_an_edit_without_gradient_stops_with_one_line(workspace, ns_env, tiny_sd_dir, source_run):
    flags = ["--pipeline.stale-check-steps", "2", "--max-num-iterations", "4", "--pipeline.loss-scale", "0"]
    flags += ["--pipeline.proposal-loss-mult", "0"]  # nothing at all moves the scene
    command = edit_command(workspace, "ids-edit", "stale", source_run / "nerfstudio_models", tiny_sd_dir, flags)
    result = run(command, ns_env, timeout=900)
    errors = [line for line in result.stderr.splitlines() if line.startswith("ids-edit: error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert errors[0].startswith(STALE_LINE) and "Traceback" not in result.stderr


def _train(trainer, steps, frozen):
    """``steps`` edit steps as ns-train runs them; ``frozen``: the optimizers never change the parameters
    (as when they hold tensors the model no longer renders with)."""
    trainer.config.max_num_iterations = steps
    trainer.config.steps_per_save = 1000
    if frozen:
        trainer.optimizers.optimizer_step_all = lambda: None
    trainer.train()


def _trainer(kind, workspace, tiny_sd_dir, source_run, tmp_path):
    from nerfstudio.utils import writer

    # nerfstudio keeps its event writers in a module global: a stopped run's (its folder removed) must not
    # be written to by the next run of this process
    writer.EVENT_WRITERS.clear()
    if kind == "nerfacto":
        return edit_trainer(
            "ids-edit", workspace, tiny_sd_dir, source_run / "nerfstudio_models", tmp_path / "out", stale_check_steps=2
        )
    return edit_trainer(
        "ids-edit-splat",
        workspace,
        tiny_sd_dir,
        fresh_splat_checkpoint(workspace, tmp_path / "splat"),
        tmp_path / "out",
        model={"num_random": 300, "use_absgrad": False},
        stale_check_steps=2,
        loss_scale=1e4,  # random Gaussians and the tiny model: a gradient that moves a pixel in 2 steps
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["nerfacto", "splatfacto"])
@pytest.mark.parametrize("frozen", [True, False])
def test_a_frozen_edit_stops_and_a_normal_one_runs(workspace, ns_env, tiny_sd_dir, source_run, tmp_path, kind, frozen):
    from ids_nerf.testing.gsplat_cpu import use_cpu_rasterizer

    with use_cpu_rasterizer():
        trainer = _trainer(kind, workspace, tiny_sd_dir, source_run, tmp_path)
        if frozen:
            with pytest.raises(SystemExit) as stopped:
                _train(trainer, 4, frozen)
            assert stopped.value.code == 2
        else:
            _train(trainer, 4, frozen)
            assert trainer.pipeline.stale_watch.largest_change >= 0.002
