"""--weights (fine-tuning, Cityscapes -> CamVid transfer) and --resume of a finished run."""
import os

import pytest
import torch

import camvid_train
import cityscapes_train
from dataset.synthetic import make_camvid, make_cityscapes
from utils.errors import run_cli

pytestmark = pytest.mark.slow  # every test trains through the scripts

SMALL = ["--input_size", "32,32", "--batch_size", "2", "--M", "1", "--N", "2", "--num_workers", "0",
         "--cuda", "false", "--val_data_list", "", "--seed", "0"]


@pytest.fixture(scope="module")
def cityscapes_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    cs = str(root / "cs")
    make_cityscapes(cs, n_train=4, n_val=1, n_test=1, size=(48, 96))
    args = ["--data_dir", cs, "--train_data_list", f"{cs}/cityscapes_train_list.txt",
            "--inform_data_file", str(root / "cs.pkl"), "--savedir", str(root / "ckpt") + "/", *SMALL]
    summary = cityscapes_train.main(cityscapes_train.get_args_parser().parse_args([*args, "--max_epochs", "1"]))
    return root, args, summary["run_dir"]


def test_weights_from_a_cityscapes_checkpoint_train_camvid_with_a_fresh_classifier(cityscapes_run, tmp_path, capsys):
    root, _, run_dir = cityscapes_run
    source = os.path.join(run_dir, "model_1.pth")
    cv = str(tmp_path / "cv")
    make_camvid(cv, n_train=4, n_val=1, n_test=1, size=(36, 48))
    # A tiny learning rate: after one epoch the loaded weights are still recognisably the source's.
    summary = camvid_train.main(camvid_train.get_args_parser().parse_args([
        "--data_dir", cv, "--train_data_list", f"{cv}/camvid_train_list.txt", "--inform_data_file",
        str(tmp_path / "cv.pkl"), "--savedir", str(tmp_path / "ckpt") + "/", *SMALL, "--max_epochs", "1",
        "--lr", "1e-9", "--weights", source]))
    out = capsys.readouterr().out
    assert "every weight is loaded except the classifier (classifier.0.conv.weight)" in out
    assert summary["epochs"] == 1 and summary["run_dir"].startswith(str(tmp_path))
    src = torch.load(source, weights_only=True)
    new = torch.load(os.path.join(summary["run_dir"], "checkpoint.pth"), weights_only=True)
    assert new["network"] == {"name": "CGNet", "classes": 11, "M": 1, "N": 2} and new["dataset"] == "camvid"
    assert new["model"]["classifier.0.conv.weight"].shape[0] == 11
    assert torch.allclose(new["model"]["level1_0.conv.weight"], src["model"]["level1_0.conv.weight"], atol=1e-5)
    assert new["iteration"] == 2  # a new run: its schedule starts at 0


def test_weights_of_the_same_class_count_load_everything(cityscapes_run, tmp_path, capsys):
    root, args, run_dir = cityscapes_run
    argv = [a if a != str(root / "ckpt") + "/" else str(tmp_path) + "/" for a in args]
    cityscapes_train.main(cityscapes_train.get_args_parser().parse_args([
        *argv, "--max_epochs", "1", "--weights", os.path.join(run_dir, "checkpoint.pth")]))
    out = capsys.readouterr().out
    assert "starting a new run from the weights" in out and "classifier" not in out


def test_resume_of_a_finished_run_points_to_weights_and_creates_nothing(cityscapes_run, tmp_path, capsys):
    root, args, run_dir = cityscapes_run
    savedir = tmp_path / "elsewhere"
    argv = [a if a != str(root / "ckpt") + "/" else str(savedir) + "/" for a in args]
    with pytest.raises(SystemExit) as e:
        run_cli(cityscapes_train.main, cityscapes_train.get_args_parser(),
                [*argv, "--max_epochs", "1", "--resume", os.path.join(run_dir, "model_1.pth")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "has already trained 1 epoch, which reaches --max_epochs 1" in err and "--weights" in err
    assert not savedir.exists()


def test_resume_and_weights_together_are_refused(cityscapes_run, capsys):
    _, args, run_dir = cityscapes_run
    ckpt = os.path.join(run_dir, "checkpoint.pth")
    with pytest.raises(SystemExit) as e:
        run_cli(cityscapes_train.main, cityscapes_train.get_args_parser(),
                [*args, "--resume", ckpt, "--weights", ckpt])
    assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
