"""The edit path at the shape users run: a real (tiny) nerfacto, views of several render chunks, and a
source checkpoint whose step is 30,000, as after nerfacto's default training.

A short ns-train run stands in for the long one: its checkpoint is copied with step 30,000, which is all
that nerfacto's schedules (proposal-weight annealing, proposal update interval) read of a training's length.
"""

import shutil

import pytest
import torch
from nerfstudio.engine.callbacks import TrainingCallbackLocation

from ids_nerf.nerfstudio.checkpoints import load_checkpoint
from ids_nerf.nerfstudio.rendering import backprop_rgb, camera_rays, render_rgb, render_with_backprop
from tests.nerfstudio.conftest import edit_trainer

pytestmark = pytest.mark.slow
SOURCE_STEP = 30000
CHUNK = 256  # a 32x32 view is 4 chunks


@pytest.fixture(scope="module")
def long_trained_source(source_run, tmp_path_factory):
    """``source_run`` with its checkpoint re-saved as step 30,000 (config.yml beside it, as ns-train leaves it)."""
    run = tmp_path_factory.mktemp("long") / "nerfacto-30k"
    (run / "nerfstudio_models").mkdir(parents=True)
    shutil.copy(source_run / "config.yml", run / "config.yml")
    state = load_checkpoint(next((source_run / "nerfstudio_models").glob("*.ckpt")))
    state["step"] = SOURCE_STEP
    torch.save(state, run / "nerfstudio_models" / f"step-{SOURCE_STEP:09d}.ckpt")
    return run


def _trainer(workspace, tiny_sd_dir, load_dir, tmp_path, **pipeline):
    return edit_trainer("ids-edit", workspace, tiny_sd_dir, load_dir, tmp_path, render_chunk_rays=CHUNK, **pipeline)


def _run_callbacks(trainer, step, location):
    for callback in trainer.callbacks:
        callback.run_callback_at_location(step, location)


def _proposal_grads(model):
    return [p.grad for p in model.proposal_networks.parameters()]


def test_the_edit_continues_the_sources_schedules_and_trains_the_proposals(
    workspace, ns_env, tiny_sd_dir, long_trained_source, tmp_path
):
    trainer = _trainer(workspace, tiny_sd_dir, long_trained_source / "nerfstudio_models", tmp_path)
    model, sampler = trainer.pipeline.model, trainer.pipeline.model.proposal_sampler
    assert int(trainer.pipeline.source_model_step) == SOURCE_STEP
    assert len(trainer.pipeline.datamanager.train_dataset.cameras[0:1].generate_rays(0).origins.view(-1, 3)) > CHUNK
    for step in range(12):
        _run_callbacks(trainer, step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        # annealing as at the end of the source's training, from edit step 0 (not 0, as a fresh training)
        assert sampler._anneal == pytest.approx(1.0)
        before = sampler._steps_since_update
        updated = before > sampler.update_sched(sampler._step) or sampler._step < 10
        trainer.train_iteration(step)
        grads = _proposal_grads(model)
        if updated:  # a view of 4 chunks: the proposal densities are computed with grad and get one
            assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), step
            assert sampler._steps_since_update == 0
        else:
            assert all(g is None for g in grads), step
            assert sampler._steps_since_update == before
        _run_callbacks(trainer, step, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
        assert sampler._step == SOURCE_STEP + 1 + step
    # at a source's step 30,000 nerfacto updates the proposals every 5th step
    assert sampler.update_sched(sampler._step) == 5


def test_deferred_and_full_backward_agree_on_real_nerfacto_with_the_proposals_included(
    workspace, ns_env, tiny_sd_dir, long_trained_source, tmp_path
):
    trainer = _trainer(workspace, tiny_sd_dir, long_trained_source / "nerfstudio_models", tmp_path)
    pipeline, model = trainer.pipeline, trainer.pipeline.model
    model.proposal_sampler.step_cb(SOURCE_STEP)
    model.proposal_sampler._steps_since_update = 6  # due for an update, as every 5th step at 30,000
    bundle = camera_rays(pipeline.datamanager.train_dataset.cameras, 2, "cpu")
    grad_rgb = torch.randn(*bundle.shape, 3, generator=torch.Generator().manual_seed(0))
    loss = pipeline._proposal_loss

    image = render_rgb(model, bundle, CHUNK, seed=5)
    assert model.proposal_sampler._steps_since_update == 6  # the no-grad pass consumes nothing
    backprop_rgb(model, bundle, grad_rgb, CHUNK, seed=5, chunk_loss=loss)
    deferred = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert model.proposal_sampler._steps_since_update == 0

    # reference: every chunk rendered with grad, as one graph, one backward (the same seeds and decision)
    model.zero_grad()
    model.proposal_sampler._steps_since_update = 6
    flat, rows = bundle.flatten(), []
    total = 0
    for number, start in enumerate(range(0, len(flat), CHUNK)):
        with torch.random.fork_rng():
            torch.manual_seed(5 * 1_000_003 + number)
            model.proposal_sampler._steps_since_update = 6
            outputs = model(flat[start : start + CHUNK])
        rows.append(outputs["rgb"])
        total = total + loss(outputs) * (len(outputs["rgb"]) / len(flat))
    full = torch.cat(rows).reshape(*bundle.shape, 3)
    torch.testing.assert_close(full.detach(), image, rtol=0, atol=0)
    ((full * grad_rgb).sum() + total).backward()
    reference = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert set(deferred) == set(reference)
    assert any(name.startswith("proposal_networks") for name in deferred)
    for name, grad in reference.items():
        torch.testing.assert_close(deferred[name], grad, rtol=1e-4, atol=1e-7, msg=name)

    # the one-pass path (a view within one chunk) agrees with the deferred path at that chunk size
    model.zero_grad()
    model.proposal_sampler._steps_since_update = 6
    one_image, backprop = render_with_backprop(model, bundle, len(flat), seed=5, chunk_loss=loss)
    backprop(grad_rgb)
    one_pass = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.proposal_sampler._steps_since_update = 6
    torch.testing.assert_close(render_rgb(model, bundle, len(flat), seed=5), one_image, rtol=0, atol=0)
    backprop_rgb(model, bundle, grad_rgb, len(flat), seed=5, chunk_loss=loss)
    for name, param in model.named_parameters():
        if param.grad is not None:
            torch.testing.assert_close(one_pass[name], param.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_the_appearance_embeddings_stay_the_sources(workspace, ns_env, tiny_sd_dir, long_trained_source, tmp_path):
    trainer = _trainer(workspace, tiny_sd_dir, long_trained_source / "nerfstudio_models", tmp_path)
    embedding = trainer.pipeline.model.field.embedding_appearance
    optimized = {id(p) for opt in trainer.optimizers.optimizers.values() for g in opt.param_groups for p in g["params"]}
    assert all(id(p) not in optimized and not p.requires_grad for p in embedding.parameters())
    before = [p.detach().clone() for p in embedding.parameters()]
    field_before = [p.detach().clone() for p in trainer.pipeline.model.field.mlp_head.parameters()]
    trainer.train_iteration(0)
    trainer.optimizers.optimizer_step_all()
    assert all(torch.equal(a, b) for a, b in zip(before, embedding.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(field_before, trainer.pipeline.model.field.mlp_head.parameters()))


def test_a_short_source_is_edited_as_a_loaded_model_renders(workspace, ns_env, tiny_sd_dir, source_run, tmp_path):
    """A source of 4 steps: its loaded model samples with the annealing at 1 (as ns-viewer shows it and as
    the stored source renders were made); the edit keeps it there, not at the 4-step value."""
    trainer = _trainer(workspace, tiny_sd_dir, source_run / "nerfstudio_models", tmp_path)
    sampler = trainer.pipeline.model.proposal_sampler
    assert int(trainer.pipeline.source_model_step) < 10
    for step in (0, 5):
        _run_callbacks(trainer, step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        assert sampler._anneal == pytest.approx(1.0)
        _run_callbacks(trainer, step, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
    assert sampler._step == SOURCE_STEP + 1 + 5


def _null_edit_steps(trainer, steps):
    metrics = []
    for step in range(steps):
        _run_callbacks(trainer, step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        metrics.append(trainer.train_iteration(step)[2])
        _run_callbacks(trainer, step, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
    return metrics


def test_a_null_edit_starts_from_the_stored_source_render_exactly(
    workspace, ns_env, tiny_sd_dir, long_trained_source, tmp_path
):
    """Target prompt = source prompt. Rendered without sampling jitter (the default), an unchanged view is
    its stored source render exactly, so IDS's direction is zero but for rounding; with nerfacto's jitter
    the same view renders otherwise than its stored render, and the edit chases sampling noise."""
    load = long_trained_source / "nerfstudio_models"
    quiet = dict(target_prompt="a red ball", proposal_loss_mult=0.0)
    exact = _null_edit_steps(_trainer(workspace, tiny_sd_dir, load, tmp_path / "a", **quiet), 1)[0]
    jittered = _null_edit_steps(
        _trainer(workspace, tiny_sd_dir, load, tmp_path / "b", deterministic_sampling=False, **quiet), 1
    )[0]
    assert exact["ids/latent_change"] == 0 and jittered["ids/latent_change"] > 0
    assert exact["ids/direction_norm"] < 0.1 * jittered["ids/direction_norm"]  # rounding against noise
