"""Per-object identity metrics on hand-made masks, with values worked out by hand."""

import math

import pytest
import torch

import ids_nerf.evaluation.regions as regions
from ids_nerf.evaluation.regions import PSNR_CAP, masked_lpips, masked_ssim, mean_abs_change, region_metrics

NAMES = {"background": 0, "table": 1, "ball": 2, "box": 3}
BALL = (slice(4, 12), slice(4, 12))
BOX = (slice(4, 12), slice(20, 28))


def _ids():
    ids = torch.zeros(32, 32, dtype=torch.int64)
    ids[20:] = 1  # table: rows 20-31, 8 rows below the objects, beyond SSIM's 5-pixel reach
    ids[BALL] = 2
    ids[BOX] = 3
    return ids


def _views():
    """source 0.5 grey; the target's ball 0.2; the edit reaches the target and leaks +0.1 into the box."""
    source = torch.full((3, 32, 32), 0.5)
    target = source.clone()
    target[(slice(None), *BALL)] = 0.2
    edited = target.clone()
    edited[(slice(None), *BOX)] += 0.1
    return edited, source, target


def test_each_region_gets_its_own_exact_numbers():
    edited, source, target = _views()
    values = region_metrics(edited, source, target, _ids(), edited_id=2, names=NAMES, source_truth=source)
    # the box: every pixel off by 0.1 -> MSE 0.01 -> 20 dB; the leak is that 0.1
    assert values["identity_psnr_box"] == pytest.approx(20.0, abs=1e-4)
    assert values["leak_box"] == pytest.approx(0.1, abs=1e-6)
    # untouched regions: identical, so PSNR sits at the cap and nothing leaked
    assert values["identity_psnr_table"] == values["identity_psnr_background"] == PSNR_CAP
    assert values["leak_table"] == values["leak_background"] == 0.0
    assert values["identity_ssim_table"] == pytest.approx(1.0, abs=1e-6)  # 8 rows from the box
    assert values["identity_ssim_background"] < 1.0  # the box's border is in its window
    assert values["identity_ssim_box"] < 1.0
    # the edited ball: at the target exactly; the source was 0.3 away -> 10 log10(1 / 0.09) dB
    assert values["target_psnr_ball"] == PSNR_CAP
    assert values["source_target_psnr_ball"] == pytest.approx(10 * math.log10(1 / 0.09), abs=1e-4)
    assert values["target_ssim_ball"] == pytest.approx(1.0, abs=1e-6)
    # the target equals the source outside the ball here: the ceiling is the cap
    assert values["ceiling_identity_psnr_box"] == PSNR_CAP
    assert not any(key.endswith("_ball") and key.startswith(("identity", "leak")) for key in values)
    assert not any("lpips" in key for key in values)


def test_a_region_missing_from_a_view_is_nan():
    edited, source, target = _views()
    values = region_metrics(edited, source, target, _ids(), edited_id=2, names={**NAMES, "chair": 7})
    assert not any(key.startswith("ceiling") for key in values)  # no ground-truth source given
    assert math.isnan(values["identity_psnr_chair"]) and math.isnan(values["leak_chair"])
    assert math.isnan(values["identity_ssim_chair"])


def test_masked_ssim_ignores_changes_beyond_its_window():
    source = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    changed = source.clone()
    changed[:, :, :10] = 0  # columns 0-9
    right = torch.zeros(32, 32, dtype=torch.bool)
    right[:, 15:] = True  # 5 columns away and more: the 11-wide window never reaches the change
    assert masked_ssim(changed, source, right) == pytest.approx(1.0, abs=1e-6)
    left = ~right
    assert masked_ssim(changed, source, left) < 0.5


def test_mean_abs_change_averages_over_masked_pixels_and_channels():
    reference = torch.zeros(3, 4, 4)
    pred = reference.clone()
    pred[0, 0, 0] = 0.6  # one channel of one masked pixel
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[0, :2] = True  # 2 pixels x 3 channels = 6 values
    assert mean_abs_change(pred, reference, mask) == pytest.approx(0.1)


def test_masked_lpips_sees_only_the_masked_differences(monkeypatch):
    seen = {}

    def fake_lpips(pred, target):
        seen["pred"], seen["target"] = pred, target
        return 0.25

    monkeypatch.setattr(regions, "lpips", fake_lpips)
    edited, source, _ = _views()
    edited = edited + 0.05  # changed everywhere
    box = _ids() == 3
    assert masked_lpips(edited, source, box) == 0.25
    assert torch.equal(seen["target"], source)
    assert torch.equal(seen["pred"][:, box], edited[:, box])
    assert torch.equal(seen["pred"][:, ~box], source[:, ~box])  # outside the box: the source itself


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="mask must be a bool"):
        mean_abs_change(torch.zeros(3, 4, 4), torch.zeros(3, 4, 4), torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"images must be \[3, H, W\]"):
        masked_ssim(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.zeros(4, 4, dtype=torch.bool))
