import pytest

from ids_nerf.errors import UserError
from ids_nerf.workflow.runner import run_files
from ids_nerf.workflow.spec import load_spec

GOOD = """
name: ball-blue
scene: {scene}
dataparser: blender-data
source_prompt: a red ball
target_prompt: a blue ball
edit_args: ["--max-num-iterations", 3]
"""


def test_load_spec_reads_paths_and_stringifies_args(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(GOOD.format(scene=tmp_path))
    spec = load_spec(path)
    assert spec.scene == tmp_path and spec.edit_args == ["--max-num-iterations", "3"]
    assert spec.method == "ids-edit" and spec.source_method == "nerfacto"


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: x\nscene: s\nsource_prompt: a\ntarget_prompt: b\ncolour: red\n", "unknown keys ['colour']"),
        ("name: x\nscene: s\nsource_prompt: a\n", "lacks ['target_prompt']"),
        ("- just\n- a list\n", "must hold a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_edit_files_are_one_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_spec(path)


def test_a_failed_edit_does_not_stop_the_rest(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    missing_scene = tmp_path / "missing.yaml"
    missing_scene.write_text(GOOD.format(scene=tmp_path / "nowhere"))
    results = run_files([bad, tmp_path / "absent.yaml", missing_scene])
    assert [r.error is not None for r in results] == [True, True, True]
    assert "scene folder" in results[2].error and "does not exist" in results[2].error
    lines = capsys.readouterr().out.strip().splitlines()
    summaries = [line for line in lines if ": FAILED: " in line]
    assert [line.split(":")[0] for line in summaries] == ["bad", "absent", "ball-blue"]


@pytest.mark.parametrize(
    "method, source_method, refused",
    [
        ("ids-edit-splat", "nerfacto", "ids-edit-splat edits splatfacto scenes; set source_method: splatfacto"),
        ("dds-edit-splat", "splatfacto", None),
        ("ids-edit", "splatfacto", "ids-edit edits nerfacto scenes; set source_method: nerfacto"),
    ],
)
def test_a_spec_trains_the_source_its_method_edits(tmp_path, method, source_method, refused):
    path = tmp_path / "e.yaml"
    path.write_text(GOOD.format(scene=tmp_path) + f"method: {method}\nsource_method: {source_method}\n")
    spec = load_spec(path)
    if refused is None:
        spec.validate()
    else:
        with pytest.raises(UserError, match=refused):
            spec.validate()


def test_ns_train_runs_as_a_module_where_no_script_is_installed(monkeypatch, tmp_path):
    import sys

    from ids_nerf.workflow.runner import ns_train

    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))  # a folder with no ns-train beside it
    assert ns_train() == [str(tmp_path / "python"), "-m", "nerfstudio.scripts.train"]
