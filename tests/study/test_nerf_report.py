"""The 3D study's grid and report, on made-up metrics (nothing is trained here)."""

import math

import pytest

from ids_nerf.errors import UserError
from ids_nerf.study import nerf_report as report
from ids_nerf.study import nerf_study
from ids_nerf.study.nerf_grid import BACKBONES, Arm, EditRun, SourceRun, optimizer_flags
from ids_nerf.study.nerf_study import NerfStudy


def test_the_default_plan_is_the_issues_grid():
    study = NerfStudy()
    plan = study.plan("k")
    # baseline optimizer: 2 backbones x 2 sources x 2 edits x (DDS + 3 lambdas) x 3 seeds = 96;
    # sgd on nerfacto only, DDS and lambda 0.1: 2 sources x 2 edits x 2 arms x 3 seeds = 24
    assert len(plan) == 96 + 24
    assert len({e.key() for e in plan}) == len(plan)  # every edit has its own cache key
    assert len({e.source.key() for e in plan}) == 4
    assert study.reduced() == []
    assert NerfStudy(sources=1, seeds=1, edits=["striped-box"]).reduced() == [
        "1 source(s) instead of 2",
        "1 seed(s) instead of 3",
        "without edits blue-ball",
    ]


def test_a_source_key_changes_with_what_changes_its_weights():
    source = SourceRun("nerfacto", 0, 600, "32px")
    assert source.key() == SourceRun("nerfacto", 0, 600, "32px").key()
    assert (
        len({source.key(), SourceRun("nerfacto", 1, 600, "32px").key(), SourceRun("nerfacto", 0, 60, "32px").key()})
        == 3
    )


def test_optimizer_specs_become_ns_train_flags():
    nerfacto, splat = BACKBONES["nerfacto"], BACKBONES["splatfacto"]
    assert optimizer_flags("adam", nerfacto) == []
    assert optimizer_flags("sgd:10", splat) == ["--edit-optimizer", "sgd", "--sgd-lr-scale", "10"]
    assert optimizer_flags("adam-eps:1e-8", nerfacto) == [
        "--optimizers.fields.optimizer.eps",
        "1e-8",
        "--optimizers.proposal-networks.optimizer.eps",
        "1e-8",
    ]
    for bad in ("sgd", "sgd:x", "rmsprop", "adam-eps:-1"):
        with pytest.raises(UserError, match="is not one of"):
            optimizer_flags(bad, nerfacto)


def test_bad_study_settings_are_one_line():
    with pytest.raises(UserError, match="--backbones: unknown plenoxels"):
        NerfStudy(backbones=["plenoxels"]).check()
    with pytest.raises(UserError, match="--edits: unknown"):
        NerfStudy(edits=["red-table"]).check()
    with pytest.raises(UserError, match="is not one of"):
        NerfStudy(optimizers=["lbfgs"]).check()
    with pytest.raises(UserError, match="--jobs must be at least 1"):
        NerfStudy(jobs=0).check()


def test_jobs_share_the_cores_and_each_source_trains_once(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert NerfStudy(jobs=1).thread_env({"A": "1"}) == {"A": "1"}  # one job: torch's own default
    assert NerfStudy(jobs=3).thread_env({})["OMP_NUM_THREADS"] == "5"
    assert NerfStudy(jobs=32).thread_env({})["OMP_NUM_THREADS"] == "1"
    assert NerfStudy(jobs=2).thread_env({"OMP_NUM_THREADS": "7"})["OMP_NUM_THREADS"] == "7"  # the user's wins
    plan = NerfStudy().plan("k")
    sources = nerf_study._sources(plan)
    assert [(s.backbone, s.seed) for s in sources] == [(b, i) for b in ("nerfacto", "splatfacto") for i in (0, 1)]


def _results():
    """Two sources x three seeds; IDS is 1 dB better on the target than DDS with seed noise of ±0.1,
    and identical on everything else."""
    results = []
    noise = {0: 0.1, 1: -0.1, 2: 0.0}
    for source_seed in (0, 1):
        source = SourceRun("nerfacto", source_seed, 10, "k")
        for arm in (Arm(None), Arm(0.1)):
            for seed in range(3):
                target = 20.0 + source_seed + (0.0 if arm.is_dds else 1.0 + noise[seed])
                metrics = {"target_psnr_box": target, "identity_psnr_ball": 30.0, "leak_ball": 0.01}
                metrics["background_psnr"] = 28.0
                results.append((EditRun(source, "striped-box", arm, "adam", seed, 5, 7.5), metrics))
    return results


def test_paired_comparison_finds_the_made_up_win_and_ties():
    comparisons = {c.measure: c for c in report.ids_vs_dds(_results())}
    target = comparisons["target"]
    # per source: differences 1.1, 0.9, 1.0 -> mean 1.0, sd 0.1, half width t(0.975, 2) 4.302653 * 0.1 / sqrt(3)
    half = 4.302653 * 0.1 / math.sqrt(3)
    for interval in target.per_source.values():
        assert interval.mean == pytest.approx(1.0)
        assert (interval.low, interval.high) == pytest.approx((1.0 - half, 1.0 + half), abs=1e-5)
    assert target.verdict == "win"
    assert target.overall.mean == pytest.approx(1.0)
    assert comparisons["neighbour"].verdict == "tie"  # identical: differences of exactly 0
    assert comparisons["leak"].overall.mean == 0.0
    lines = report.findings(list(comparisons.values()), "IDS", "DDS")
    assert lines == [
        "- nerfacto, striped-box, adam: IDS against DDS wins 1, loses 0, ties 3 of 4 comparisons "
        "(wins: IDS λ=0.1 on target)."
    ]


def test_means_table_has_a_row_per_arm_with_mean_and_sd():
    table = report.means_table(_results()).splitlines()
    assert len(table) == 2 + 2
    dds, ids = table[2], table[3]
    assert "| nerfacto | striped-box | adam | DDS | 6 | 20.50 ± 0.55 |" in dds  # 20,20,20,21,21,21
    assert "| IDS λ=0.1 | 6 |" in ids


def test_the_report_section_is_replaced_in_place():
    document = "# Title\n\nintro\n"
    first = report.replace_section(document, "one")
    assert first == f"# Title\n\n{report.BEGIN}\none\n{report.END}\n\nintro\n"
    second = report.replace_section(first + "\nlater text\n", "two")
    assert "one" not in second and "two" in second and second.endswith("later text\n")
    assert second.count(report.BEGIN) == 1


def test_diagnostics_table_averages_what_each_arm_logged():
    results = _results()
    for index, (edit, metrics) in enumerate(results):
        metrics["diag_fpr_distance_after"] = 2.0 if edit.arm.is_dds else 1.0 + index % 2
        if not edit.arm.is_dds:
            metrics["diag_fpr_distance_before"] = 2.0
    dds, ids = report.diagnostics_table(results).splitlines()[2:]
    assert dds.startswith("| nerfacto | striped-box | adam | DDS | - | 2.000 ± 0.000 |")
    # IDS rows are results 3-5 and 9-11: after = 2, 1, 2, 2, 1, 2
    assert ids.startswith("| nerfacto | striped-box | adam | IDS λ=0.1 | 2.000 ± 0.000 | 1.667 ± 0.516 |")


def test_a_settings_study_runs_each_edit_at_the_papers_settings_too():
    demo = dict(guidance_scale=1.0, max_step=600, identity_mask="score")
    study = NerfStudy(backbones=["nerfacto"], fpr_scales=[0.1], optimizers=["adam", "sgd:0.3"], **demo)
    plain = NerfStudy(backbones=["nerfacto"], fpr_scales=[0.1], optimizers=["adam", "sgd:0.3"])
    plan = NerfStudy(**{**study.__dict__, "compare_paper_settings": True}).plan("k")
    # adam: 2 sources x 2 edits x 2 arms x 3 seeds at both settings; sgd only at the study's own
    assert len(plan) == 2 * 24 + 24 and len({e.key() for e in plan}) == len(plan)
    controls = [e for e in plan if e.settings == ""]
    assert {e.optimizer for e in controls} == {"adam"}
    # the controls are the edits of a study at the paper's settings: one cache serves both
    assert {e.key() for e in controls} == {e.key() for e in plain.plan("k") if e.optimizer == "adam"}
    demo_label = "CFG 1, t < 600, mask score"
    assert {e.variant for e in plan} == {"adam", f"adam, {demo_label}", f"sgd:0.3, {demo_label}"}
    with pytest.raises(UserError, match="--compare-paper-settings compares other settings"):
        NerfStudy(compare_paper_settings=True).check()


def test_settings_are_compared_with_the_same_edit_at_the_papers():
    results = _results()  # at the paper's settings
    for edit, metrics in list(results):  # the same edits at CFG 1: 2 dB more on the target, + seed noise
        demo = EditRun(edit.source, edit.case, edit.arm, edit.optimizer, edit.seed, edit.steps, 1.0)
        results.append((demo, {**metrics, "target_psnr_box": metrics["target_psnr_box"] + 2.0 + 0.1 * edit.seed}))
    comparisons = {(c.treated.label, c.measure): c for c in report.settings_comparisons(results)}
    assert set(comparisons) == {(arm, m) for arm in ("DDS", "IDS λ=0.1") for m in ("target", "outside", "leak")}
    for arm in ("DDS", "IDS λ=0.1"):
        target = comparisons[(arm, "target")]
        assert target.group == ("nerfacto", "striped-box", "adam, CFG 1") and target.verdict == "win"
        assert target.overall.mean == pytest.approx(2.1)
        assert comparisons[(arm, "outside")].overall.mean == 0.0
    # IDS - DDS stays within one setting: one pair of groups each
    assert {c.group[2] for c in report.ids_vs_dds(results)} == {"adam", "adam, CFG 1"}
    assert report.optimizer_comparisons(results, "adam") == []  # one optimizer: nothing to compare
