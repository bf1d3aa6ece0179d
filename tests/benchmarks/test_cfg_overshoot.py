"""The CFG-overshoot probe on a small exact-score model whose edit changes one square of each view: where the
posteriors are certain, DDS aims CFG times past the edit until the render is nearer the edited view, and at
the edit itself from there on."""

import pytest
import torch

from benchmarks.cfg_overshoot import cfg_overshoot, table
from ids_nerf.guidance.exact import ExactScoreGuidance, PixelCodec


def test_dds_aims_cfg_times_past_the_edit_until_the_render_is_nearer_it():
    gen = torch.Generator().manual_seed(0)
    source = torch.rand(4, 3, 8, 8, generator=gen) * 2 - 1
    edited = torch.zeros(4, 1, 8, 8, dtype=torch.bool)
    edited[..., 2:6, 2:6] = True
    target = torch.where(edited, -source, source)  # the object's colours change, nothing else
    model = ExactScoreGuidance({"src": source, "tgt": target}, PixelCodec(), native_size=8)
    rows = cfg_overshoot(model, source, target, edited, "src", "tgt", (1.0, 7.5), (0.0, 0.9), timesteps=(50,))
    aims = {(row["scale"], row["position"]): row for row in rows}
    assert aims[1.0, 0.0]["aims_at"] == pytest.approx(1.0, abs=1e-3)  # CFG 1: the edit itself
    assert aims[7.5, 0.0]["aims_at"] == pytest.approx(7.5, abs=1e-2)  # 7.5 path lengths out
    for scale in (1.0, 7.5):
        assert aims[scale, 0.9]["aims_at"] == pytest.approx(1.0, abs=1e-3)  # nearer the edit: at it
        assert all(aims[scale, p]["cosine"] > 0.999 and aims[scale, p]["outside"] < 1e-3 for p in (0.0, 0.9))
    assert table(rows).count("\n") == 5  # header, rule, four rows
