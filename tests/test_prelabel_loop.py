"""The labelling loop closes (issue 32, item 1): tools/segment.py --save_annotations -> tools/prepare_dataset.py
-> custom_train.py --weights <the model that pre-labelled>, without flags. The prepared dataset has the model's
classes in the model's order, so the classifier is kept, and the first validation after fine-tuning is within a
few points of the model's own mIoU on the same images (not near zero, as with a fresh classifier). On real
CamVid images with the authors' weights. And item 6: --weights camvid by name, through the default download
path, every layer kept but a classifier of another class count; a name that cannot be fetched is one sentence."""
import os
import shutil

import pytest
import torch

import custom_test
import custom_train
from conftest import free_port, prepare, shared_path
from dataset.palettes import CAMVID_CLASSES
from dataset.synthetic import make_custom
from engine import published
from tools import segment
from utils.errors import run_cli

WEIGHTS = shared_path("camvid", "weights", "model_800.pth")
VAL = shared_path("camvid", "val")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(WEIGHTS is None or VAL is None,
                                 reason="the real CamVid val images and the authors' weights are absent "
                                        "(../shared/camvid beside the clone, or set CGNET_SHARED)")]
IMAGES = ["0016E5_07959.png", "0016E5_07961.png", "0016E5_07963.png"]
CPU = ["--cuda", "false", "--num_workers", "0"]


@pytest.mark.parametrize("fmt", ["coco", "labelme"])
def test_prelabels_prepare_to_the_models_classes_and_fine_tuning_starts_from_its_accuracy(tmp_path, monkeypatch,
                                                                                         capsys, fmt):
    monkeypatch.chdir(tmp_path)
    os.mkdir("new")
    for name in IMAGES:
        shutil.copy(os.path.join(VAL, name), "new")
    run_cli(segment.main, segment.get_args_parser(), ["new", "--resume", WEIGHTS, "--out", "pre", *CPU[:2],
                                                      "--save_annotations", fmt])
    desc = prepare(tmp_path / "pre", "--val_fraction", "0.34")  # no flags: the folder as segment.py wrote it
    assert desc["class_names"] == list(CAMVID_CLASSES)  # the model's classes in its order, no background added
    argv = ["--data_dir", "pre", "--resume", WEIGHTS, *CPU]
    before = run_cli(custom_test.main, custom_test.get_args_parser(argv), argv)["mIoU"]
    capsys.readouterr()
    argv = ["--data_dir", "pre", "--weights", WEIGHTS, "--max_epochs", "1", "--batch_size", "2", "--lr", "1e-4",
            "--input_size", "256,256", "--savedir", "ckpt/", "--seed", "0", *CPU]
    after = run_cli(custom_train.main, custom_train.get_args_parser(argv), argv)["val_mIoU"]
    out = capsys.readouterr().out
    assert "starting a new run from the weights" in out and "classifier" not in out  # every layer kept
    print(f"mIoU against the pre-labels: the model {before:.4f}, after an epoch of fine-tuning {after:.4f}")
    assert before > 0.9 and after >= before - 0.05, (before, after)  # the model against its own pre-labels


def test_weights_by_name_fetch_the_published_file_and_keep_all_but_another_classifier(tmp_path, monkeypatch,
                                                                                     capsys):
    monkeypatch.chdir(tmp_path)
    entry = published.PUBLISHED["camvid"]
    os.makedirs(os.path.dirname(entry.out))
    shutil.copy(WEIGHTS, entry.out)  # as tools/download_weights.py camvid leaves it: the default path
    make_custom(tmp_path / "mine", "voc", n_train=2, n_val=1, size=(48, 64))
    prepare(tmp_path / "mine")
    argv = ["--data_dir", "mine", "--weights", "camvid", "--max_epochs", "1", "--batch_size", "2", "--lr", "1e-9",
            "--input_size", "32,32", "--savedir", "ckpt/", "--seed", "0", *CPU]
    summary = run_cli(custom_train.main, custom_train.get_args_parser(argv), argv)
    out = capsys.readouterr().out
    assert "already there and verified (camvid)" in out
    assert "every weight is loaded except the classifier (classifier.0.conv.weight)" in out  # 5 classes, not 11
    src = torch.load(entry.out, map_location="cpu", weights_only=True)["model"]
    new = torch.load(os.path.join(summary["run_dir"], "checkpoint.pth"), weights_only=True)["model"]
    key = next(k for k in new if k.endswith("level1_0.conv.weight"))
    assert torch.allclose(new[key], src[next(k for k in src if k.endswith("level1_0.conv.weight"))], atol=1e-5)


def test_a_published_name_that_cannot_be_fetched_says_where_to_put_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    entry = published.PUBLISHED["camvid"]
    monkeypatch.setitem(published.PUBLISHED, "camvid", published.Published(
        **{**entry.__dict__, "url": f"http://127.0.0.1:{free_port()}/model_800.pth"}))  # offline
    make_custom(tmp_path / "mine", "voc", n_train=2, n_val=1, size=(48, 64))
    prepare(tmp_path / "mine")
    argv = ["--data_dir", "mine", "--weights", "camvid", *CPU]
    with pytest.raises(SystemExit) as e:
        run_cli(custom_train.main, custom_train.get_args_parser(argv), argv)
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and message.startswith("error: could not download") and f"save it as {entry.out}" in message, message
    assert not os.path.exists("checkpoint")
