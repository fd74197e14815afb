"""The statistics file records what it was computed from; other data recompute it with a notice, while the
original's file (no source recorded) is used as it is. Run through cityscapes_eval.py's main as a user would."""
import os
import pickle

import numpy as np
import pytest

import cityscapes_eval
from dataset.inform import compute_inform
from model import build_model
from dataset.synthetic import make_cityscapes
from utils.checkpoint import save_checkpoint
from utils.errors import run_cli

TINY = ["--M", "1", "--N", "1", "--num_workers", "0", "--cuda", "false", "--gpus", ""]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("inform_source")
    make_cityscapes(str(root / "a"), n_train=2, n_val=1, n_test=1, size=(32, 64), seed=0)
    make_cityscapes(str(root / "b"), n_train=3, n_val=1, n_test=1, size=(32, 64), seed=1)
    ckpt = str(root / "cgnet.pth")
    save_checkpoint({"epoch": 1, "model": build_model("CGNet", 19, M=1, N=1).state_dict()}, ckpt)
    return root, ckpt


def evaluate(data_dir, inform, ckpt, capsys, *extra):
    run_cli(cityscapes_eval.main, cityscapes_eval.get_args_parser(),
            ["--data_dir", str(data_dir), "--val_data_list", f"{data_dir}/cityscapes_val_list.txt",
             "--inform_data_file", str(inform), "--resume", ckpt, "--save_seg_dir", "", *TINY, *extra])
    return capsys.readouterr().out


def plain_load(path):
    with open(path, "rb") as f:
        return pickle.load(f)  # what the original (and any plain reader) does


def test_other_data_recompute_the_statistics_with_a_notice(data, tmp_path, capsys):
    root, ckpt = data
    inform = tmp_path / "inform.pkl"
    out = evaluate(root / "a", inform, ckpt, capsys)
    assert "computing dataset statistics" in out
    first = plain_load(inform)
    assert {"mean", "std", "classWeights"} <= set(first) and first["mean"].dtype == np.float32
    source = first["source"]
    assert source["data_dir"] == os.path.realpath(root / "a") and source["dataset_list"] == "cityscapes_trainval_list.txt"
    assert source["images"] == 3 and len(source["sha256"]) == 64
    assert all(isinstance(v, (str, int)) for v in source.values())

    stamp = inform.stat().st_mtime_ns
    out = evaluate(root / "a", inform, ckpt, capsys)  # the same data: the cached file is used
    assert "computing" not in out and "notice" not in out and inform.stat().st_mtime_ns == stamp

    out = evaluate(root / "b", inform, ckpt, capsys)
    assert (f"notice: {inform} was computed from {os.path.realpath(root / 'a')}/cityscapes_trainval_list.txt "
            f"(3 images), but --data_dir is now {os.path.realpath(root / 'b')}; recomputing the statistics.") in out
    second = plain_load(inform)
    expected = compute_inform(str(root / "b"), "cityscapes_trainval_list.txt", 19, 255)
    np.testing.assert_array_equal(second["mean"], expected["mean"])
    assert not np.array_equal(second["mean"], first["mean"])
    assert second["source"]["data_dir"] == os.path.realpath(root / "b") and second["source"]["images"] == 4


def test_a_changed_list_recomputes(data, tmp_path, capsys):
    root, ckpt = data
    copy = tmp_path / "b"  # data b with lists of its own to edit
    copy.mkdir()
    for folder in ("leftImg8bit", "gtFine"):
        os.symlink(root / "b" / folder, copy / folder)
    lines = (root / "b" / "cityscapes_trainval_list.txt").read_text().splitlines()
    for name in ("cityscapes_trainval_list.txt", "cityscapes_val_list.txt"):
        (copy / name).write_text((root / "b" / name).read_text())
    inform = tmp_path / "inform.pkl"
    evaluate(copy, inform, ckpt, capsys)
    (copy / "cityscapes_trainval_list.txt").write_text("\n".join(lines[:-1]) + "\n")
    out = evaluate(copy, inform, ckpt, capsys)
    assert "but that list has changed since (3 images now); recomputing the statistics." in out
    assert plain_load(inform)["source"]["images"] == 3


def test_the_originals_file_is_used_as_it_is(data, tmp_path, capsys):
    root, ckpt = data
    inform = tmp_path / "cityscapes_inform.pkl"
    original = {"mean": np.array([73.2, 82.9, 72.4], np.float32), "std": np.array([47.7, 48.5, 47.7], np.float32),
                "classWeights": np.linspace(2, 10, 19).astype(np.float32)}
    with open(inform, "wb") as f:
        pickle.dump(original, f, protocol=2)
    before = inform.read_bytes()
    out = evaluate(root / "b", inform, ckpt, capsys)
    assert "computing" not in out and "notice" not in out
    assert inform.read_bytes() == before


def test_a_list_that_cannot_be_read_now_uses_the_file_with_a_notice(data, tmp_path, capsys):
    root, ckpt = data
    inform = tmp_path / "inform.pkl"
    evaluate(root / "a", inform, ckpt, capsys)
    before = inform.read_bytes()
    out = evaluate(root / "a", inform, ckpt, capsys, "--dataset_list", "no_such_list.txt")
    assert (f"notice: {root / 'a'}/no_such_list.txt cannot be read, so the statistics of {inform} (computed from "
            f"{os.path.realpath(root / 'a')}/cityscapes_trainval_list.txt (3 images)) are used unchecked.") in out
    assert inform.read_bytes() == before
