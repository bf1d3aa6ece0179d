"""``ids-nerf identity-3d`` at a tiny size: a real source, the oracle and a masked IDS edit through ns-train,
each measured at two checkpoints; the report; a rerun from the cache."""

import dataclasses
import json

import pytest

from ids_nerf.errors import UserError
from ids_nerf.study.identity_study import (
    ARMS,
    IdentityStudy,
    at_equal_target,
    checkpoint_file,
    edited_object_region,
)


def test_bad_settings_are_refused_in_one_line():
    with pytest.raises(UserError, match="unknown arm or edit"):
        IdentityStudy(arms=["oracle", "nope"]).check()
    with pytest.raises(UserError, match=r"checkpoints \[50\] cannot be measured"):
        IdentityStudy(steps=120, checkpoints=[50, 120], save_every=60).check()
    IdentityStudy(steps=120, checkpoints=[60, 120], save_every=60).check()


def test_arms_have_distinct_keys_and_the_last_checkpoint_is_named_by_its_index(tmp_path):
    assert len({arm.key() for arm in ARMS.values()}) == len(ARMS)
    assert checkpoint_file(tmp_path, 120, 300).name == "step-000000120.ckpt"
    assert checkpoint_file(tmp_path, 300, 300).name == "step-000000299.ckpt"


def test_region_arms_get_the_edited_objects_box_above_the_table_and_every_mask_arm_names_its_anchor():
    # the ball's box of `ids-nerf scene-bounds` (-0.10 -0.60 -0.05 0.80 0.30 0.85), its floor above the table
    assert edited_object_region("blue-ball") == [
        "--pipeline.edit-region",
        "-0.10",
        "-0.60",
        "0.03",
        "0.80",
        "0.30",
        "0.85",
    ]
    assert edited_object_region("striped-box")[1:4] == ["-0.80", "-0.40", "0.03"]
    assert ARMS["ids-region"].region and ARMS["ids-region-cut"].region and not ARMS["ids"].region
    for name, arm in ARMS.items():
        if "--pipeline.identity-mask" in arm.flags:
            assert "--pipeline.identity-anchor" in arm.flags, name  # cached runs keep their meaning


def test_with_several_seeds_the_report_gives_their_spread_and_pairs_each_edit_with_its_seeds_oracle():
    study = IdentityStudy(edits=["blue-ball"], arms=["oracle", "ids"], steps=120, checkpoints=[120], seeds=2)
    plan = [("blue-ball", arm, seed) for arm in study.arms for seed in range(2)]
    ball, box = {"oracle": (20.0, 22.0), "ids": (15.0, 19.0)}, {"oracle": (25.0, 27.0), "ids": (20.0, 21.0)}
    courses = [
        {120: {"target_psnr_ball": ball[arm][seed], "identity_psnr_box": box[arm][seed]}} for _, arm, seed in plan
    ]
    text = study.report_section(plan, courses, 0.0)
    assert "| oracle: " in text and "21.00 ± 1.41 \\| 26.00 ± 1.41 |" in text
    assert "| ids: " in text and "17.00 ± 2.83 \\| 20.50 ± 0.71 |" in text
    # seed 0: 15 - 20 and 20 - 25; seed 1: 19 - 22 and 21 - 27
    assert "| ids | -4.00 ± 1.41 \\| -5.50 ± 0.71 |" in text


def test_at_equal_target_reads_the_neighbour_between_the_checkpoints_that_bracket_it():
    course = [(10.0, 20.0), (14.0, 24.0), (16.0, 30.0)]
    assert at_equal_target(course, 12.0) == 22.0
    assert at_equal_target(course, 15.5) == 28.5
    assert at_equal_target(course, 14.0) == 24.0
    assert at_equal_target(course, 9.0) is None and at_equal_target(course, 16.5) is None  # no extrapolation
    assert at_equal_target([(10.0, 20.0)], 10.0) is None


def test_the_report_compares_arms_at_equal_target_per_seed():
    study = IdentityStudy(edits=["blue-ball"], arms=["ids", "ids-region"], steps=120, checkpoints=[60, 120], seeds=2)
    plan = [("blue-ball", arm, seed) for arm in study.arms for seed in range(2)]
    # per arm and seed: (ball, box) at 60 and 120
    runs = {
        ("ids", 0): [(10.0, 20.0), (14.0, 24.0)],
        ("ids", 1): [(11.0, 21.0), (15.0, 23.0)],
        ("ids-region", 0): [(9.0, 25.0), (12.0, 27.0)],  # 12 dB: ids seed 0 had box 22 there
        ("ids-region", 1): [(10.0, 26.0), (13.0, 28.0)],  # 13 dB: ids seed 1 had box 22
    }
    courses = [
        {s: {"target_psnr_ball": b, "identity_psnr_box": x} for s, (b, x) in zip((60, 120), runs[(arm, seed)])}
        for _, arm, seed in plan
    ]
    text = study.report_section(plan, courses, 0.0)
    assert "At equal target, against ids (dB, box of the arm - box of ids" in text
    # step 60: both seeds' balls (9, 10) lie below ids' courses (from 10 and 11): seed 0 at 9 is outside
    assert "| ids-region | - | +5.50 ± 0.71 |" in text


@pytest.mark.slow
def test_a_tiny_identity_study_end_to_end(tmp_path):
    study = IdentityStudy(
        cache=tmp_path / "cache",
        out=tmp_path / "results.md",
        edits=["blue-ball"],
        arms=["oracle", "ids-mask"],
        steps=4,
        checkpoints=[1, 4],  # step 4 is the loop's last index, 3: a checkpoint of its own
        save_every=1,
        source_steps=20,
        size=16,
        views=4,
    )
    study.main()
    text = study.out.read_text()
    assert text.count("<!-- identity-3d:course:begin -->") == 1
    rows = [line for line in text.splitlines() if line.startswith("| ids-mask")]
    assert len(rows) == 2  # its course, and its distance to the oracle
    cells = rows[0].split(" | ")[1:]
    assert len(cells) == 2 and all(len(cell.split(" \\| ")) == 2 for cell in cells)
    courses = sorted((study.cache / "identity" / "blue-ball").glob("*/course.json"))
    assert len(courses) == 2
    metrics = json.loads(courses[0].read_text())["metrics"]
    assert set(metrics) == {"1", "4"} and "identity_psnr_box" in metrics["4"] and "target_psnr_ball" in metrics["1"]
    assert metrics["1"] != metrics["4"]  # two checkpoints, two measurements
    assert all(c.parent.name.endswith("-s0-n4") for c in courses)
    stamps = [c.stat().st_mtime_ns for c in courses]
    study.main()  # from the cache: nothing runs again
    assert [c.stat().st_mtime_ns for c in courses] == stamps
    # a checkpoint the runs saved but nobody measured is measured from them; nothing trains again
    dataclasses.replace(study, checkpoints=[1, 2, 4]).main()
    assert sorted((study.cache / "identity" / "blue-ball").glob("*/course.json")) == courses
    for course in courses:
        metrics = json.loads(course.read_text())["metrics"]
        assert set(metrics) == {"1", "2", "4"} and len({json.dumps(m) for m in metrics.values()}) == 3
    # another source (the demo trains its own with seed 42): its own training, its edits in their own folder
    other = dataclasses.replace(study, arms=["oracle"], source_seed=1)
    other.main()
    assert len(list((study.cache / "sources").iterdir())) == 2
    (moved,) = (study.cache / "identity" / "source-1" / "blue-ball").glob("*/course.json")
    (first,) = [course for course in courses if course.parent.name.startswith("oracle-")]
    assert json.loads(moved.read_text())["metrics"] != json.loads(first.read_text())["metrics"]
    text = study.out.read_text()
    assert "--source-seed 1` in " in text and "trained with seed 1" in text and "{" not in text  # all formatted
