"""The splat-edit benchmark's arms and table (the runs themselves: tests/nerfstudio/test_splat_edit_on_cpu.py)."""

import pytest

from benchmarks.splat_edit import COLUMNS, arm_flags, table


def test_each_arm_adds_only_its_own_flags():
    assert arm_flags("whole") == []
    region = arm_flags("region")
    assert region[0] == "--pipeline.edit-region" and len(region) == 7
    low, high = [float(v) for v in region[1:4]], [float(v) for v in region[4:]]
    assert all(a < b for a, b in zip(low, high)) and low[2] == pytest.approx(0.03)  # the floor above the table
    assert arm_flags("region-cut") == [*region, "--pipeline.region-cut", "True"]


def test_an_unknown_arm_stops_with_the_known_ones():
    with pytest.raises(SystemExit, match="unknown arm 'ball'; choose from whole, region, region-cut"):
        arm_flags("ball")


def test_the_table_has_one_row_per_edit_with_psnr_in_hundredths_and_leak_in_thousandths():
    metrics = {key: 20.0 + i for i, (_, key) in enumerate(COLUMNS)}
    metrics["leak_box"] = 0.01234
    text = table([{"arm": "whole", "seed": 0, "metrics": metrics}, {"arm": "region", "seed": 1, "metrics": metrics}])
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| arm | seed | ball to target |")
    assert lines[3] == "| region | 1 | 20.00 | 21.00 | 22.00 | 23.00 | 0.012 |"
