import io
import warnings

from ids_nerf.console import Stages, is_known_third_party, third_party_warnings_to

NERFSTUDIO_FILE = "/x/.venv/lib/python3.11/site-packages/nerfstudio/cameras/cameras.py"
OUR_FILE = "/x/ids_nerf/nerfstudio/pipeline.py"
KNOWN = "Using a non-tuple sequence for multidimensional indexing is deprecated and will be changed"


def test_only_known_warnings_from_installed_third_party_packages_count():
    assert is_known_third_party(KNOWN, NERFSTUDIO_FILE)
    assert not is_known_third_party(KNOWN, OUR_FILE)  # the project's own warnings are always shown
    assert not is_known_third_party("step 3: non-finite IDS loss", NERFSTUDIO_FILE)  # unknown: shown
    installed_ours = "/x/.venv/lib/python3.11/site-packages/ids_nerf/pipeline.py"
    assert not is_known_third_party(KNOWN, installed_ours)


def test_known_third_party_warnings_go_to_the_log_and_others_to_the_console(tmp_path):
    log = tmp_path / "logs" / "warnings.log"
    with warnings.catch_warnings(record=True) as console:  # what would have been printed
        warnings.simplefilter("always")
        with third_party_warnings_to(log):
            warnings.warn_explicit(KNOWN, UserWarning, NERFSTUDIO_FILE, 601)
            warnings.warn_explicit("the project's own warning", UserWarning, OUR_FILE, 10)
        warnings.warn_explicit(KNOWN, UserWarning, NERFSTUDIO_FILE, 602)  # outside the block: shown again
    shown = "\n".join(f"{w.filename}:{w.lineno}: {w.message}" for w in console)
    assert "the project's own warning" in shown
    assert "cameras.py:602" in shown and "cameras.py:601" not in shown
    assert "cameras.py:601" in log.read_text() and "own warning" not in log.read_text()


def test_stages_print_numbered_progress_every_tenth_off_a_terminal():
    out = io.StringIO()
    stages = Stages(2, stream=out)
    stages.start("source nerfacto")
    for step in range(0, 600, 10):
        stages.progress(step, 600)
    stages.done("log: x.log")
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/2] source nerfacto ..."
    progress = [line for line in lines if ": step " in line]
    assert len(progress) == 10  # 0%, 10%, ..., 90%
    assert progress[0].startswith("[1/2] source nerfacto: step 0/600 (0%)")
    assert progress[5].startswith("[1/2] source nerfacto: step 300/600 (50%)") and "left" in progress[5]
    assert lines[-1].startswith("[1/2] source nerfacto: done in ") and lines[-1].endswith("(log: x.log)")


def test_silent_stages_write_nothing():
    stages = Stages(1, stream=None)
    stages.start("x")
    stages.progress(1, 2)
    stages.done()


def test_worker_processes_ignore_the_known_warnings_by_their_environment(tmp_path):
    import os
    import subprocess
    import sys

    code = f"import warnings; warnings.warn({KNOWN + ' in pytorch 2.9'!r}); warnings.warn('ours stays')"
    with third_party_warnings_to(tmp_path / "w.log"):
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert "ours stays" in child.stderr and "non-tuple" not in child.stderr
    assert "PYTHONWARNINGS" not in os.environ or "non-tuple" not in os.environ["PYTHONWARNINGS"]


def test_the_known_warnings_fit_pythonwarnings():
    from ids_nerf.console import KNOWN_THIRD_PARTY_WARNINGS

    assert all("," not in text and ":" not in text for text in KNOWN_THIRD_PARTY_WARNINGS)


def test_commands_that_log_to_a_file_get_every_warning_back():
    import os

    from ids_nerf.console import with_all_warnings

    with third_party_warnings_to(None), third_party_warnings_to(None):  # nested, as ids-nerf demo
        quiet = dict(os.environ)
    assert "PYTHONWARNINGS" in quiet and "PYTHONWARNINGS" not in with_all_warnings(quiet)
    assert with_all_warnings({"PYTHONWARNINGS": "error"}) == {"PYTHONWARNINGS": "error"}
    mixed = {"PYTHONWARNINGS": quiet["PYTHONWARNINGS"] + ",error", "X": "1"}
    assert with_all_warnings(mixed) == {"PYTHONWARNINGS": "error", "X": "1"}
