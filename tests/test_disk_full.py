"""A disk that cannot take a file (full, over quota, read-only) is one sentence naming the folder, exit 2, for
every writer family: segment, eval/test, export, training checkpoints, prepare_dataset. Nothing is left
half-written, and training keeps its last complete checkpoint. The error is injected where the bytes reach the
disk (os.fsync, as a delayed-allocation file system reports ENOSPC; onnx.save for the export)."""
import errno
import glob
import os

import cv2
import numpy as np
import pytest

import cityscapes_eval
import cityscapes_test
import cityscapes_train
from conftest import TINY_EVAL, fails, snapshot, train_argv
from dataset.synthetic import shapes
from tools import prepare_dataset, segment
from utils.checkpoint import read_checkpoint
from utils.errors import UserError
from utils.files import TEMP_PREFIX, atomic_write, no_room


def fail_writes(monkeypatch, code=errno.ENOSPC, when=lambda path: True):
    """Every os.fsync of a file for which when(path) holds fails with `code` (the data did not fit)."""
    fsync = os.fsync

    def failing(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if when(path):
            raise OSError(code, os.strerror(code), path)
        return fsync(fd)
    monkeypatch.setattr(os, "fsync", failing)


def leftovers(folder):
    return [p for p in glob.glob(f"{folder}/**/.cgnet-*", recursive=True)]


def says_full(message, folder):
    assert message.startswith(f"error: cannot write into {folder}: its disk is full ("), message
    assert "bytes" in message and message.endswith("and run it again."), message


def test_the_sentences_of_a_full_disk_a_quota_and_a_read_only_disk(tmp_path):
    folder = str(tmp_path)
    assert "disk is full (it needed 1,234 bytes" in str(no_room(OSError(errno.ENOSPC, "x"), folder, 1234))
    assert "disk quota is used up" in str(no_room(OSError(errno.EDQUOT, "x"), folder))
    assert str(no_room(OSError(errno.EROFS, "x"), folder)).endswith("read-only; choose another folder.")
    assert no_room(OSError(errno.EACCES, "x"), folder) is None  # not a disk's capacity: its own message elsewhere
    assert no_room(ValueError("x"), folder) is None


def test_atomic_write_leaves_nothing_and_names_the_folder(tmp_path, monkeypatch):
    fail_writes(monkeypatch)
    with pytest.raises(UserError, match=f"cannot write into {tmp_path}: its disk is full .*more than the 5 bytes"):
        atomic_write(str(tmp_path / "a.txt"), lambda tmp: open(tmp, "w").write("hello"))
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def data(untrained):
    return untrained(n_val=2, n_test=2)


def test_segment(data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "result"
    out.mkdir()
    (out / "mine.txt").write_text("the user's own file")
    before = snapshot(out)
    fail_writes(monkeypatch)
    images = f"{data['cs']}/leftImg8bit/test"
    message = fails(segment, ["--resume", data["ckpt"], images, "--out", str(out), "--cuda", "false"], capsys)
    says_full(message, out)
    assert snapshot(out) == before


def test_eval_and_test(data, tmp_path, monkeypatch, capsys):
    fail_writes(monkeypatch)
    common = ["--data_dir", data["cs"], "--inform_data_file", data["inform"], "--resume", data["ckpt"], *TINY_EVAL]
    for script, flags in ((cityscapes_eval, ["--val_data_list", f"{data['cs']}/cityscapes_val_list.txt"]),
                          (cityscapes_test, ["--test_data_list", f"{data['cs']}/cityscapes_test_list.txt"])):
        save = tmp_path / script.__name__
        says_full(fails(script, [*flags, "--save_seg_dir", str(save), *common], capsys), save)
        assert not save.exists()


def test_prepare_dataset(tmp_path, monkeypatch, capsys):
    root = tmp_path / "mine"
    for i in range(3):
        rgb, label = shapes(np.random.default_rng([5, i]), 32, 48)
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "images" / f"{i}.png"), rgb[:, :, ::-1])
        cv2.imwrite(str(root / "masks" / f"{i}.png"), np.minimum(label, 2))
    before = snapshot(root)
    fail_writes(monkeypatch)
    message = fails(prepare_dataset, [str(root)], capsys)
    assert message.startswith(f"error: cannot write into {root}") and "disk is full" in message, message
    assert snapshot(root) == before


@pytest.mark.slow
def test_training_keeps_its_last_complete_checkpoint(cs, tmp_path, monkeypatch, capsys):
    argv = train_argv(cs, tmp_path, "--val_data_list", "", "--max_epochs", "1")
    summary = cityscapes_train.main(cityscapes_train.get_args_parser().parse_args(argv))
    path = os.path.join(summary["run_dir"], "checkpoint.pth")
    first = open(path, "rb").read()
    fail_writes(monkeypatch, when=lambda p: os.path.basename(p).endswith("checkpoint.pth"))
    argv = train_argv(cs, tmp_path, "--val_data_list", "", "--max_epochs", "2", "--resume", "auto")
    message = fails(cityscapes_train, argv, capsys)
    says_full(message, summary["run_dir"])
    assert "it needed " in message and "bytes," in message  # a checkpoint's size is known before it is written
    assert open(path, "rb").read() == first and read_checkpoint(path)["epoch"] == 1
    assert not [n for n in os.listdir(summary["run_dir"]) if n.startswith(TEMP_PREFIX)]


@pytest.mark.slow
def test_export(trained_tiny, tmp_path, monkeypatch, capsys):
    import onnx
    from tools import export_onnx
    save = onnx.save

    def half_then_full(graph, path, *args, **kwargs):
        save(graph, path, *args, **kwargs)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    monkeypatch.setattr(onnx, "save", half_then_full)
    out = tmp_path / "models" / "cgnet.onnx"
    message = fails(export_onnx, ["--resume", trained_tiny["ckpt"], "--out", str(out)], capsys)
    says_full(message, out.parent)
    assert "more than the " in message
    assert not out.exists() and not leftovers(tmp_path)
