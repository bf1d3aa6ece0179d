from types import SimpleNamespace

import pytest

from ids_nerf.errors import UserError
from ids_nerf.nerfstudio.pipeline import (
    SOURCE_PSNR_WARNING_DB,
    IDSEditPipeline,
    fit_short_side,
    source_fidelity_warning,
)


def test_fit_short_side_keeps_aspect_and_multiple():
    assert fit_short_side(800, 800, 512, 64) == (512, 512)
    assert fit_short_side(756, 1008, 512, 64) == (512, 704)  # LLFF's 4:3 at 1/4 scale
    assert fit_short_side(32, 48, 32, 4) == (32, 48)
    h, w = fit_short_side(100, 333, 512, 64)
    assert h % 64 == 0 and w % 64 == 0 and h == 512


def _fake(views=5, hold=3, seed=0, limit=3):
    config = SimpleNamespace(view_hold_steps=hold, seed=seed, max_consecutive_nonfinite=limit)
    datamanager = SimpleNamespace(train_dataset=[None] * views)
    return SimpleNamespace(config=config, datamanager=datamanager, nonfinite_in_a_row=0, nonfinite_total=0)


def test_views_are_held_then_all_visited_each_cycle():
    fake = _fake()
    order = [IDSEditPipeline.view_for_step(fake, step) for step in range(30)]
    held = order[::3]
    assert all(order[i] == order[i - i % 3] for i in range(30))
    assert sorted(held[:5]) == list(range(5)) and sorted(held[5:10]) == list(range(5))
    assert order == [IDSEditPipeline.view_for_step(fake, step) for step in range(30)]  # resumable


def test_nonfinite_steps_are_counted_then_stop():
    fake = _fake(limit=3)
    with pytest.warns(UserWarning, match="step skipped"):
        assert IDSEditPipeline._skip(fake, 0) is False
        IDSEditPipeline._skip(fake, 1)
        with pytest.raises(UserError, match="3 steps in a row"):
            IDSEditPipeline._skip(fake, 2)
    assert fake.nonfinite_total == 3


def test_a_source_far_from_its_training_images_is_warned_about():
    assert source_fidelity_warning(SOURCE_PSNR_WARNING_DB + 5) is None
    warning = source_fidelity_warning(9.8)
    assert "mean PSNR 9.8 dB" in warning and "--pipeline.model.background-color random" in warning


def test_the_splat_hooks_refuse_another_nerfstudio(monkeypatch):
    import importlib.metadata

    from ids_nerf.nerfstudio.splat import SplatfactoHooks

    SplatfactoHooks(object())  # the installed nerfstudio is the one they were read from
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.2.0")
    with pytest.raises(UserError, match="nerfstudio 1.1.5, this is nerfstudio 1.2.0"):
        SplatfactoHooks(object())


@pytest.mark.parametrize("timed", [True, False])
def test_the_step_clock_synchronises_cuda_only_when_timed(monkeypatch, timed):
    import torch

    from ids_nerf.nerfstudio.pipeline import _StepClock

    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *args: synced.append(True))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *args: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *args: 2**30)
    clock = _StepClock("cuda", timed)
    parts = ("render", "encode", "guidance", "encode_backward", "render_backward")
    for name in parts:
        clock.lap(name)
    metrics = clock.metrics()
    assert len(synced) == (1 + len(parts) if timed else 0)  # the start, then each part's end
    assert sorted(k for k in metrics if k.startswith("ids/ms_")) == (
        sorted(f"ids/ms_{p}" for p in parts) if timed else []
    )
    assert metrics["ids/peak_memory_gib"] == 1.0  # the allocator's count, exact without synchronising
