"""The fp16-range count of benchmarks.fp16_gradients, and which nerfacto modules it watches."""

import torch

from benchmarks.fp16_gradients import FP16_NORMAL, FP16_SUBNORMAL, fp16_modules, gradient_shares


def test_shares_below_fp16s_floors_and_the_scale_that_lifts_them():
    values = torch.tensor([0.0, 1e-9, 1e-6, 1e-3, 1.0])  # the zero is not counted
    row = gradient_shares(values)
    assert row["count"] == 4 and row["below_fp16_subnormal"] == 0.25 and row["below_fp16_normal"] == 0.5
    assert FP16_SUBNORMAL < 1e-6 < FP16_NORMAL < 1e-3
    scaled = row["quantile_0.1%"] * 2.0 ** row["scale_log2_needed"]
    assert FP16_NORMAL <= scaled < 2 * FP16_NORMAL  # the smallest power of two that does
    assert gradient_shares(torch.zeros(3)) == {"count": 0}


def test_the_watched_modules_are_nerfactos_encodings_and_mlps_outermost_first():
    from nerfstudio.fields.nerfacto_field import NerfactoField

    field = NerfactoField(torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]), num_images=2, implementation="torch")
    names = list(fp16_modules(field))
    assert "mlp_base" in names and "mlp_head" in names
    assert not any(name.startswith("mlp_base.") for name in names)  # tcnn fuses the grid with its MLP
