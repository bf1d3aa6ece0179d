"""The edit's loss scaling, on the CPU with torch's CPU GradScaler in place of nerfstudio's CUDA one: the
backward is scaled, the optimizer sees the unscaled gradients, and an overflow skips the step."""

import pytest
import torch

from tests.nerfstudio.conftest import edit_trainer

SCALE = 2.0**12


def _trainer(workspace, source_run, tiny_sd_dir, path, scale):
    trainer = edit_trainer(
        "ids-edit",
        workspace,
        tiny_sd_dir,
        source_run / "nerfstudio_models",
        path,
        render_chunk_rays=256,  # the 32x32 view in 4 chunks: the deferred backward's path
        trainer={"edit_optimizer": "sgd"},  # an update in proportion to the gradient: unscaling shows
    )
    trainer.pipeline.load_diffusion()
    trainer.pipeline.encode_views()
    if scale is not None:
        trainer.grad_scaler = torch.amp.GradScaler("cpu", init_scale=scale)
    return trainer


def _spy_on_unscale(scaler):
    """The fields' gradient norm as the scaler finds it, before it unscales."""
    seen = []
    unscale = scaler.unscale_

    def spy(optimizer):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        seen.append(torch.cat([g.flatten() for g in grads]).norm().item())
        return unscale(optimizer)

    scaler.unscale_ = spy
    return seen


def _fields(trainer):
    return [p for p in trainer.pipeline.get_param_groups()["fields"]]


def test_nerf_edits_ask_for_the_scaler_and_splat_edits_do_not():
    from nerfstudio.plugins.registry import discover_methods

    methods = discover_methods()[0]
    assert all(methods[m].use_grad_scaler for m in ("ids-edit", "dds-edit", "ids-edit-small"))
    assert not any(methods[m].use_grad_scaler for m in ("ids-edit-splat", "dds-edit-splat"))  # gsplat: fp32


def test_the_backward_is_scaled_and_the_step_sees_it_unscaled(workspace, source_run, tiny_sd_dir, tmp_path):
    plain = _trainer(workspace, source_run, tiny_sd_dir, tmp_path / "plain", None)
    scaled = _trainer(workspace, source_run, tiny_sd_dir, tmp_path / "scaled", SCALE)
    assert not plain.grad_scaler.is_enabled()  # on the CPU the edit's nerfstudio scaler is off
    seen = _spy_on_unscale(scaled.grad_scaler)
    before = [p.detach().clone() for p in _fields(plain)]
    plain.train_iteration(0)
    scaled.train_iteration(0)
    plain_grad = torch.cat([p.grad.flatten() for p in _fields(plain)])
    scaled_grad = torch.cat([p.grad.flatten() for p in _fields(scaled)])
    assert plain_grad.norm() > 0
    tolerance = 1e-5 * plain_grad.abs().max().item()  # float32 sums in another order
    torch.testing.assert_close(scaled_grad, plain_grad, rtol=1e-4, atol=tolerance)  # unscaled in place
    assert max(seen) == pytest.approx(SCALE * plain_grad.norm().item(), rel=1e-3)  # scaled in the backward
    moved = [(a - b).abs().max().item() for a, b in zip(_fields(plain), before)]
    assert max(moved) > 0
    for a, b in zip(_fields(plain), _fields(scaled)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-9)  # the same SGD step
    assert scaled.grad_scaler.get_scale() == SCALE  # no overflow: kept (it grows after 2000 good steps)


def test_an_overflow_skips_the_step_and_halves_the_scale(workspace, source_run, tiny_sd_dir, tmp_path):
    trainer = _trainer(workspace, source_run, tiny_sd_dir, tmp_path / "inf", 3e38)  # near fp32's largest
    before = [p.detach().clone() for p in _fields(trainer)]
    rate = trainer.optimizers.schedulers["fields"].get_last_lr()
    trainer.train_iteration(0)
    assert not all(torch.isfinite(p.grad).all() for p in _fields(trainer) if p.grad is not None)
    for a, b in zip(_fields(trainer), before):
        assert torch.equal(a, b)  # skipped
    assert trainer.grad_scaler.get_scale() == pytest.approx(1.5e38)
    assert trainer.optimizers.schedulers["fields"].get_last_lr() == rate  # nor is the schedule stepped
