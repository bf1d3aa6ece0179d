import json
import math
from pathlib import Path

import pytest

from ids_nerf.errors import UserError
from ids_nerf.workflow.suite import aggregate, expand, load_suite, write_tables

SUITE = """
output_dir: {out}
scenes:
  ball:
    make: {{size: 16, views: 4}}
    dataparser_args: [--alpha-color, None]
    prompts:
      blue: {{source: a red ball, target: a blue ball}}
      gold: {{source: a red ball, target: a golden ball}}
methods: [ids-edit, dds-edit-splat]
settings:
  low: [--pipeline.fpr-scale, 0.1]
  high: [--pipeline.fpr-scale, 1]
seeds: [0, 1, 2]
edit_args: [--pipeline.diffusion-model, "exact:{{scene}}"]
"""


def write(tmp_path, text):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_a_suite_expands_to_every_combination(tmp_path):
    suite = load_suite(write(tmp_path, SUITE.format(out=tmp_path / "out")))
    edits = expand(suite)
    assert len(edits) == 2 * 2 * 2 * 3 and len({e.key for e in edits}) == len(edits)
    one = next(e for e in edits if e.spec.name == "ball-gold-dds-edit-splat-high-s2")
    scene = str((tmp_path / "out" / "scenes" / "ball").resolve())
    assert one.spec.edit_args == [
        "--pipeline.diffusion-model",
        f"exact:{scene}",
        "--pipeline.fpr-scale",
        "1",
        "--machine.seed",
        "2",
    ]
    assert one.spec.source_method == "splatfacto" and one.spec.source_args == ["--machine.seed", "2"]
    assert one.spec.target_prompt == "a golden ball" and one.spec.dataparser_args == ["--alpha-color", "None"]
    assert one.labels == dict(scene="ball", prompt="gold", method="dds-edit-splat", setting="high", seed="2")


@pytest.mark.parametrize(
    "text, message",
    [
        ("scenes: {}\n", "scenes must be a non-empty mapping"),
        ("scenes: {a: {path: x}}\ncolour: red\n", "unknown keys ['colour']"),
        ("scenes: {a: {prompts: {p: {source: s, target: t}}}}\n", "needs either path"),
        ("scenes: {a: {path: x, prompts: {p: {source: s, target: ''}}}}\n", "needs a non-empty source and target"),
        ("scenes: {a: {path: x, prompts: {p: {source: s, target: t}}}}\nmethods: [sds]\n", "unknown methods"),
        ("scenes: {a: {path: x, prompts: {p: {source: s, target: t}}}}\nseeds: 3\n", "seeds must be a list"),
    ],
)
def test_bad_suites_are_one_line(tmp_path, text, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_suite(write(tmp_path, text))


def record(seed, status, setting="low", **metrics):
    labels = dict(scene="ball", prompt="blue", method="ids-edit", setting=setting, seed=str(seed))
    return {"name": f"ball-{setting}-s{seed}", "labels": labels, "status": status, "metrics": metrics, "error": None}


def test_the_table_gives_mean_and_spread_over_seeds(tmp_path):
    records = [
        record(0, "done", psnr=20.0),
        record(1, "skipped", psnr=24.0),
        record(2, "failed"),
        record(0, "done", setting="high", psnr=18.0),
    ]
    rows = {row["setting"]: row for row in aggregate(records)}
    assert rows["low"]["edits"] == 3 and rows["low"]["succeeded"] == 2
    assert rows["low"]["psnr_mean"] == 22.0 and rows["low"]["psnr_std"] == pytest.approx(2 * math.sqrt(2))
    assert rows["high"]["psnr_mean"] == 18.0 and math.isnan(rows["high"]["psnr_std"])
    suite = load_suite(write(tmp_path, SUITE.format(out=tmp_path / "out")))
    table = write_tables(suite, records)
    saved = json.loads((tmp_path / "out" / "table.json").read_text())
    assert [e["status"] for e in saved["edits"]] == ["done", "done", "failed", "done"]
    assert "| ball | blue | ids-edit | low | 3 | 2 | 22.0000 | 2.8284 |" in table.read_text()
    assert Path(tmp_path / "out" / "edits.csv").read_text().splitlines()[0].startswith("scene,prompt,method")


@pytest.mark.parametrize("name", ["synthetic", "blender", "llff"])
def test_the_shipped_suites_load(name):
    suite = load_suite(Path(__file__).parents[2] / "suites" / f"{name}.yaml")
    assert len(expand(suite)) >= 12
