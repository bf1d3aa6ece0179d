"""The studies' statistics against values worked out by hand."""

import math

import pytest

from ids_nerf.study.statistics import Interval, across_units, mean_sd, paired_differences, t_interval


def test_mean_and_sample_sd():
    mean, sd = mean_sd([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert sd == pytest.approx(math.sqrt(5 / 3))  # squared deviations 2.25+0.25+0.25+2.25 = 5, over n-1 = 3
    assert math.isnan(mean_sd([7.0])[1])


def test_t_interval_of_four_values():
    # t_{0.975, 3} = 3.182446; half width = 3.182446 * sqrt(5/3) / 2 = 2.054265
    interval = t_interval([1.0, 2.0, 3.0, 4.0])
    assert interval.mean == 2.5 and interval.n == 4
    assert interval.low == pytest.approx(2.5 - 2.054265, abs=1e-5)
    assert interval.high == pytest.approx(2.5 + 2.054265, abs=1e-5)
    assert interval.verdict() == "win"  # the whole interval above 0
    assert interval.verdict(higher_is_better=False) == "loss"


def test_a_pair_of_values_uses_t_with_one_degree_of_freedom():
    # t_{0.975, 1} = 12.706205; sd of (0, 2) = sqrt(2); half width = 12.706205 * sqrt(2) / sqrt(2) = 12.706205
    interval = t_interval([0.0, 2.0])
    assert (interval.low, interval.high) == pytest.approx((1 - 12.706205, 1 + 12.706205), abs=1e-5)
    assert interval.verdict() == "tie"


def test_one_value_has_no_interval_and_ties():
    interval = t_interval([0.3])
    assert interval.mean == 0.3 and math.isnan(interval.low) and interval.verdict() == "tie"
    assert interval.text() == "+0.30 (n=1)"


def test_verdicts_and_text():
    assert Interval(-1.0, -2.0, -0.5, 3).verdict() == "loss"
    assert Interval(-1.0, -2.0, -0.5, 3).verdict(higher_is_better=False) == "win"
    assert Interval(0.41, 0.12, 0.70, 3).text() == "+0.41 [+0.12, +0.70]"


def test_paired_differences_pair_by_source_and_seed():
    ids = {(0, 0): 20.0, (0, 1): 21.0, (0, 2): 22.0, (1, 0): 18.0, (1, 1): 19.5, (1, 9): 99.0}
    dds = {(0, 0): 19.0, (0, 1): 21.5, (0, 2): 20.0, (1, 0): 18.0, (1, 1): 18.5}
    differences = paired_differences(ids, dds)
    assert differences == {0: [1.0, -0.5, 2.0], 1: [0.0, 1.0]}  # (1, 9) has no DDS partner
    # per-source means 0.8333 and 0.5; across the two sources: mean 0.66667, sd 0.235702,
    # half width 12.706205 * 0.235702 / sqrt(2) = 2.117701
    overall = across_units(differences)
    assert overall.n == 2
    assert overall.mean == pytest.approx(2 / 3)
    assert overall.low == pytest.approx(2 / 3 - 2.117701, abs=1e-5)
