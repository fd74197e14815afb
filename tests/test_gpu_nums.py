"""The original camvid_test.py had --gpu_nums; its command lines run here too, with a notice that the GPUs
come from --gpus."""
import subprocess
import sys

import pytest

import camvid_test
from utils.errors import run_cli

from conftest import ROOT


@pytest.fixture(scope="module")
def argv(untrained):
    data = untrained("camvid", n_train=2, n_val=1, n_test=2, size=(32, 48))
    cv, inform, ckpt = data["cs"], data["inform"], data["ckpt"]
    return ["--data_dir", cv, "--test_data_list", f"{cv}/camvid_test_list.txt", "--inform_data_file", inform,
            "--resume", ckpt, "--M", "1", "--N", "1", "--num_workers", "0", "--cuda", "false"]


def test_gpu_nums_is_accepted_with_a_notice(argv, capsys):
    result = run_cli(camvid_test.main, camvid_test.get_args_parser(), argv + ["--gpus", "", "--gpu_nums", "1"])
    assert result["images"] == 2
    assert ("notice: --gpu_nums 1 is not used; the GPUs come from --gpus (''), and evaluation runs on the first "
            "of them.") in capsys.readouterr().out


def test_no_notice_without_it(argv, capsys):
    run_cli(camvid_test.main, camvid_test.get_args_parser(), argv + ["--gpus", ""])
    assert "gpu_nums" not in capsys.readouterr().out


@pytest.mark.slow
def test_the_original_command_line_runs(argv):
    # as the original README ran it, with --gpus 0 on a machine that may have no GPU
    run = subprocess.run([sys.executable, "camvid_test.py", *argv, "--gpus", "0", "--gpu_nums", "1"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "notice: --gpu_nums 1 is not used" in run.stdout and "mean IoU" in run.stdout
