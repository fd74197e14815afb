"""The commands of the README and docs/ run as written once the environment is active (test_command_lines.py
checks that they parse), and the Makefile says how to activate it and cleans up exactly what the project wrote."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, readme_commands

README = open(os.path.join(ROOT, "README.md")).read()
RUNNABLE = ("cityscapes_train.py", "cityscapes_eval.py", "cityscapes_test.py", "camvid_train.py", "camvid_test.py",
            "tools/prepare_cityscapes.py", "tools/prepare_camvid.py", "custom_train.py", "custom_test.py",
            "tools/prepare_dataset.py")


def test_the_readme_says_to_activate_right_after_the_two_commands():
    section = README.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    first_block_end = section.index("```", section.index("```bash") + 3)
    assert "source .venv/bin/activate" in section[first_block_end:first_block_end + 800]


@pytest.mark.slow
@pytest.mark.parametrize("script, args", [c[1:] for c in readme_commands() if c[1] in RUNNABLE and c[0] == "python"],
                         ids=lambda x: x if isinstance(x, str) else " ".join(x)[:60])
def test_readme_commands_on_a_machine_without_the_data(script, args, tmp_path):
    """Run in an empty folder, each command gets to the data or checkpoint it needs and names it: no
    missing module, no refused flag, nothing written."""
    run = subprocess.run([sys.executable, os.path.join(ROOT, script), *args], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert last.startswith("error: ") and not last.endswith("see --help.")
    assert re.search(r"data|--resume", last), last
    assert os.listdir(tmp_path) == []


def make(target, folder):
    return subprocess.run(["make", "-C", str(folder), target], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_venv_ends_by_saying_how_to_activate(tmp_path):
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(os.path.join(ROOT, name), tmp_path)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".installed").touch()  # installed already: only the closing line runs
    run = make("venv", tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-2].endswith("first run: source .venv/bin/activate")  # before make's "Leaving"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_clean_removes_what_the_project_wrote_and_nothing_else(tmp_path):
    shutil.copy(os.path.join(ROOT, "Makefile"), tmp_path)
    written = [".venv/bin/python", "demo/data/x.png", "result/cityscapes/val/x.png",
               "dataset/wtfile/cityscapes_inform.pkl", "dataset/wtfile/camvid_inform.pkl"]
    kept = ["data/cityscapes/x.png", "checkpoint/cityscapes/run/model_1.pth", "dataset/list/CamVid/camvid_test_list.txt",
            "dataset/wtfile/my_own_inform.pkl", "cityscapes_train.py"]
    for path in written + kept:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    run = make("clean", tmp_path)
    assert run.returncode == 0, run.stderr
    for path in written:
        assert not (tmp_path / path).exists(), path
    for folder in (".venv", "demo", "result"):
        assert not (tmp_path / folder).exists()
    for path in kept:
        assert (tmp_path / path).exists(), path
    (tmp_path / "dataset/wtfile/my_own_inform.pkl").unlink()
    assert make("clean", tmp_path).returncode == 0 and not (tmp_path / "dataset/wtfile").exists()
