"""Corrupt weights are refused in one sentence: a NaN or infinite value (naming the tensor), a changed bit in a
file the project wrote (its tensors' checksum), a published file whose hash differs. Files without a checksum
(the original's, mmsegmentation's) still load."""
import os
import shutil

import pytest
import torch

from conftest import shared_path
from engine.checkpoint import read_weights
from model import build_model
from utils.checkpoint import CHECKSUM, read_checkpoint, save_checkpoint
from utils.errors import UserError


def small_state():
    return build_model("CGNet", 11, M=1, N=1).state_dict()


def test_a_checkpoint_the_project_writes_carries_a_checksum_and_loads_exactly(tmp_path):
    sd = small_state()
    path = str(tmp_path / "ours.pth")
    save_checkpoint({"epoch": 1, "model": sd}, path)
    ckpt = read_checkpoint(path)
    assert len(ckpt[CHECKSUM]) == 64
    assert all(torch.equal(ckpt["model"][k], v) for k, v in sd.items())


def test_a_nan_is_refused_naming_the_tensor(tmp_path):
    sd = small_state()
    sd["level1_0.bn.weight"][3] = float("nan")
    path = str(tmp_path / "nan.pth")
    torch.save({"epoch": 1, "model": sd}, path)  # no checksum: the original's layout
    with pytest.raises(UserError, match=r"its tensor model/level1_0.bn.weight holds 1 NaN value\(s\)"):
        read_weights(path)


def test_a_flipped_bit_that_stays_finite_is_refused_by_the_checksum(tmp_path):
    sd = small_state()
    path = str(tmp_path / "flipped.pth")
    save_checkpoint({"epoch": 1, "model": sd}, path)
    data = bytearray(open(path, "rb").read())
    target = sd["level2_0.conv1x1.conv.weight"].numpy().tobytes()
    at = data.find(target)
    assert at > 0
    data[at + 1] ^= 0x01  # the lowest mantissa bits of the first value: still a finite float
    open(path, "wb").write(bytes(data))
    with pytest.raises(UserError, match="no longer match the checksum"):
        read_weights(path)


def test_files_without_a_checksum_still_load(tmp_path):
    sd = small_state()
    path = str(tmp_path / "original.pth")
    torch.save({"epoch": 800, "model": sd}, path)
    weights = read_weights(path)
    assert weights.layout == "original" and torch.equal(weights.state_dict["classifier.0.conv.weight"],
                                                        sd["classifier.0.conv.weight"])


def test_a_file_named_as_a_published_one_with_other_bytes_is_refused(tmp_path):
    path = str(tmp_path / "model_camvid_train_on_trainvalset.pth")  # the name tools/download_weights.py gives it
    torch.save({"epoch": 800, "model": small_state()}, path)
    with pytest.raises(UserError, match="sha256 differs.*download_weights.py camvid"):
        read_weights(path)


def test_the_authors_camvid_file_loads_and_a_damaged_copy_is_refused(tmp_path):
    real = shared_path("camvid", "weights", "model_800.pth")
    if real is None:
        pytest.skip("../shared/camvid/weights/model_800.pth is absent")
    assert read_weights(real).dataset == "camvid"  # recognised by its hash
    copy = tmp_path / "model_camvid_train_on_trainvalset.pth"
    shutil.copy(real, copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    with pytest.raises(UserError) as e:
        read_weights(str(copy))
    assert str(e.value).startswith(f"--resume {copy} ")
    assert os.path.getsize(copy) == os.path.getsize(real)
