import json

import pytest

from ids_nerf.cli.main import main
from tests.learned_model import tiny_args


@pytest.mark.parametrize(
    "flag, value",
    [("--scenes", "0"), ("--views-per-scene", "-1"), ("--steps", "0"), ("--batch-size", "0"), ("--lr", "0"),
     ("--minutes", "0"), ("--caption-dropout", "1"), ("--size", "15"), ("--channels", "48")],
)  # fmt: skip
def test_bad_numbers_are_refused_in_one_line_before_any_work(tmp_path, capsys, flag, value):
    out = tmp_path / "model"
    assert main([*tiny_args(out), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ids-nerf: error:") and "\n" not in err and flag in err
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing rendered, nothing staged


def test_a_non_empty_output_is_refused_without_overwrite(tmp_path, capsys):
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(tiny_args(out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*tiny_args(out), "--overwrite"]) == 2  # --overwrite replaces only a model folder
    assert "not one" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "keep me"


def test_overwrite_replaces_a_model_and_reuses_its_training_set(tmp_path, capsys):
    out = tmp_path / "model"
    assert main(tiny_args(out, 2)) == 0
    assert main([*tiny_args(out, 3), "--overwrite"]) == 0
    assert "reused the cache" in capsys.readouterr().out
    assert json.loads((out / "training.json").read_text())["steps_done"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging or replaced folder left


def test_the_time_budget_stops_training_and_saves(tmp_path):
    out = tmp_path / "model"
    assert main([*tiny_args(out, 1000), "--minutes", "1e-6"]) == 0
    record = json.loads((out / "training.json").read_text())
    assert record["stopped_at_time_budget"] and record["steps_done"] == 1
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").is_file()


def test_a_failed_run_leaves_no_half_written_folder(tmp_path, monkeypatch):
    import ids_nerf.guidance.learned_training as training

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_learned", fail)
    out = tmp_path / "model"
    with pytest.raises(KeyboardInterrupt):
        main(tiny_args(out, 1))
    assert not list(tmp_path.iterdir())
