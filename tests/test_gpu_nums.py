"""The original camvid_test.py had --gpu_nums; its command lines run here too, with a notice that the GPUs
come from --gpus."""
import os
import subprocess
import sys

import pytest

import camvid_test
from dataset.inform import get_inform
from model import build_model
from tools.make_demo_data import make_camvid
from utils.checkpoint import save_checkpoint
from utils.errors import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def argv(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_nums")
    cv = str(root / "camvid")
    make_camvid(cv, n_train=2, n_val=1, n_test=2, size=(32, 48))
    inform = str(root / "inform.pkl")
    get_inform(inform, cv, "camvid_trainval_list.txt", 11, 11, log=lambda *a: None)
    ckpt = str(root / "cgnet.pth")
    save_checkpoint({"epoch": 1, "model": build_model("CGNet", 11, M=1, N=1).state_dict()}, ckpt)
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
