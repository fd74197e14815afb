"""Messages that point the right way (issue 14, point 6), each run as a user runs it."""
import os
import re

import numpy as np
import pytest
from PIL import Image

import cityscapes_eval
import cityscapes_test
import cityscapes_train
from tools import plot_log, prepare_cityscapes
from dataset.synthetic import make_cityscapes
from utils.errors import run_cli

from conftest import ROOT, TINY_EVAL as TINY, fails


@pytest.fixture(scope="module")
def data(untrained):
    return untrained(n_val=1)


def train_argv(data, out, *extra):
    return ["--data_dir", data["cs"], "--train_data_list", f"{data['cs']}/cityscapes_train_list.txt",
            "--val_data_list", "", "--inform_data_file", data["inform"], "--savedir", f"{out}/", "--input_size",
            "32,32", "--batch_size", "2", "--max_epochs", "1", "--seed", "0", *TINY, *extra]


def test_a_damaged_checkpoint_under_resume_auto_names_the_runs_model_files(data, tmp_path, capsys):
    result = run_cli(cityscapes_train.main, cityscapes_train.get_args_parser(), train_argv(data, tmp_path))
    out = capsys.readouterr().out
    assert "2 training images, 1 iteration per epoch" in out  # not "1 iterations"
    run_dir = result["run_dir"]
    with open(os.path.join(run_dir, "checkpoint.pth"), "r+b") as f:
        f.truncate(100)  # a save cut short on a full disk
    message = fails(cityscapes_train, train_argv(data, tmp_path, "--resume", "auto", "--max_epochs", "2"), capsys)
    model_1 = os.path.join(run_dir, "model_1.pth")
    assert message == (f"error: --resume auto: {run_dir}/checkpoint.pth, the last save of this run, is damaged (empty, "
                       f"truncated or not a checkpoint); continue from an earlier save with --resume {model_1} "
                       f"(Adam restarts there), start a new run from its weights with --weights {model_1}, or move "
                       f"it away to start the run again.")
    assert "download" not in message
    # and the advice works
    result = run_cli(cityscapes_train.main, cityscapes_train.get_args_parser(),
                     train_argv(data, tmp_path, "--resume", model_1, "--max_epochs", "2"))
    assert result["epochs"] == 2
    assert f"resumed from {model_1} at epoch 1" in capsys.readouterr().out


def test_zip_and_inform_errors_name_the_file_given(data, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    zip_path = tmp_path / "file" / "submit.zip"
    message = fails(cityscapes_test, ["--data_dir", data["cs"], "--test_data_list",
                                      f"{data['cs']}/cityscapes_test_list.txt", "--inform_data_file", data["inform"],
                                      "--resume", data["ckpt"], "--save_seg_dir", f"{tmp_path}/seg", "--submit_dir",
                                      f"{tmp_path}/submit", "--zip", str(zip_path), *TINY], capsys)
    assert message == (f"error: --zip {zip_path} cannot be written: it lies inside the file {tmp_path / 'file'}, "
                       f"not a folder; give a path in a folder.")
    inform = tmp_path / "file" / "stats" / "inform.pkl"
    message = fails(cityscapes_eval, ["--data_dir", data["cs"], "--val_data_list",
                                      f"{data['cs']}/cityscapes_val_list.txt", "--inform_data_file", str(inform),
                                      "--resume", data["ckpt"], "--save_seg_dir", "", *TINY], capsys)
    assert message.startswith(f"error: --inform_data_file {inform} cannot be written: it lies inside the file ")


def test_data_dir_message_names_a_docs_section_that_exists(data, tmp_path, capsys):
    message = fails(cityscapes_eval, ["--data_dir", str(tmp_path / "nowhere"), "--resume", data["ckpt"], *TINY], capsys)
    page, section = re.search(r"see (docs/[\w-]+\.md), '([^']+)'", message).groups()
    headings = [line.lstrip("#").strip() for line in open(os.path.join(ROOT, page)) if line.startswith("#")]
    assert section in headings


def test_a_model_mismatch_reads_as_english(data, tmp_path, capsys):
    message = fails(cityscapes_eval, ["--data_dir", data["cs"], "--val_data_list",
                                      f"{data['cs']}/cityscapes_val_list.txt", "--inform_data_file", data["inform"],
                                      "--resume", data["ckpt"], "--save_seg_dir", "", *TINY, "--model", "ENet"], capsys)
    assert message.endswith("was trained with --model CGNet, not ENet; pass --model CGNet or give a checkpoint "
                            "trained with --model ENet.")


def test_prepare_cityscapes_makes_train_ids_from_label_ids(tmp_path, capsys):
    root = tmp_path / "cs"
    make_cityscapes(str(root), n_train=2, n_val=1, n_test=1, size=(32, 64))  # labelIds, no polygon JSONs
    expected = {}
    for label in root.glob("gtFine/*/*/*_labelTrainIds.png"):
        expected[label] = np.asarray(Image.open(label))
        label.unlink()
    run_cli(prepare_cityscapes.main, prepare_cityscapes.get_args_parser(), [str(root)])
    assert "made 3 *_gtFine_labelTrainIds.png" in capsys.readouterr().out
    for label, array in expected.items():
        np.testing.assert_array_equal(np.asarray(Image.open(label)), array)


def test_prepare_cityscapes_refuses_a_colour_label_ids_file(tmp_path, capsys):
    root = tmp_path / "cs"
    make_cityscapes(str(root), n_train=2, n_val=1, n_test=1, size=(32, 64))
    for label in root.glob("gtFine/*/*/*_labelTrainIds.png"):
        label.unlink()
    ids = sorted(root.glob("gtFine/train/*/*_labelIds.png"))[0]
    Image.new("RGB", (64, 32)).save(ids)
    message = fails(prepare_cityscapes, [str(root)], capsys)
    assert message == (f"error: {ids} is not a single-channel labelIds image: unzip gtFine_trainvaltest.zip into "
                       f"{root} again.")


def test_plot_log_takes_the_run_folder(tmp_path):
    (tmp_path / "log.txt").write_text("Parameters: 10\nEpoch\t\tLoss(Tr)\t\tmIOU (tr)\t\tmIOU (val)\t\tlr\n"
                                      "1\t\t2.5000\t\t0.1000\t\t0.0010000\n2\t\t2.0000\t\t0.2000\t\t0.3000\t\t0.0009\n")
    out = run_cli(plot_log.main, plot_log.get_args_parser(), [str(tmp_path)])
    assert out == tmp_path / "log.png" and Image.open(out).size[0] > 0
