import os

import pytest
import torch

from model import CGNet
from engine.checkpoint import load_weights
from utils.checkpoint import convert_state_dict, read_checkpoint, save_checkpoint
from utils.errors import UserError


def small(classes=19):
    torch.manual_seed(0)
    model = CGNet.Context_Guided_Network(classes=classes, M=2, N=2)
    for m in model.modules():  # non-trivial BN statistics, so that loading them matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return model.eval()


def test_original_release_format_with_module_prefix_and_legacy_serialization(tmp_path):
    src = small()
    path = tmp_path / "model_cityscapes_train_on_trainset.pth"
    state = {"epoch": 300, "model": {"module." + k: v for k, v in src.state_dict().items()}}
    torch.save(state, path, _use_new_zipfile_serialization=False)
    dst = CGNet.Context_Guided_Network(classes=19, M=2, N=2).eval()
    weights = load_weights(dst, str(path))
    assert weights.ckpt["epoch"] == 300 and weights.layout == "original"
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


@pytest.mark.parametrize("wrap", ["bare", "ours"])
def test_bare_state_dict_and_our_format_load(tmp_path, wrap):
    src = small()
    path = tmp_path / "m.pth"
    obj = src.state_dict() if wrap == "bare" else {"epoch": 3, "model": src.state_dict(), "args": {"lr": 1e-3}}
    save_checkpoint(obj, str(path))
    dst = CGNet.Context_Guided_Network(classes=19, M=2, N=2).eval()
    load_weights(dst, str(path))
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k])


def test_convert_state_dict_strips_only_the_prefix_that_is_there():
    sd = {"module.level1_0.conv.weight": 1, "level1_1.conv.weight": 2, "modulex.a": 3}
    assert convert_state_dict(sd) == {"level1_0.conv.weight": 1, "level1_1.conv.weight": 2, "modulex.a": 3}


class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + Evil.marker,))


def test_pickle_with_code_is_refused_and_not_run(tmp_path):
    Evil.marker = str(tmp_path / "pwned")
    path = tmp_path / "evil.pth"
    torch.save({"epoch": 1, "model": Evil()}, path)
    with pytest.raises(UserError, match="refused.*could run arbitrary code"):
        read_checkpoint(str(path))
    assert not os.path.exists(Evil.marker)


def test_wrong_classes_names_file_keys_and_cause(tmp_path):
    path = tmp_path / "camvid.pth"
    save_checkpoint({"epoch": 1, "model": small(classes=11).state_dict()}, str(path))
    with pytest.raises(UserError) as e:
        load_weights(CGNet.Context_Guided_Network(classes=19, M=2, N=2), str(path))
    msg = str(e.value)
    assert str(path) in msg and "classifier.0.conv.weight" in msg and "11 classes" in msg


def test_wrong_depth_is_explained(tmp_path):
    path = tmp_path / "m.pth"
    save_checkpoint(small().state_dict(), str(path))
    with pytest.raises(UserError, match="--M/--N"):
        load_weights(CGNet.Context_Guided_Network(classes=19, M=2, N=4), str(path))


@pytest.mark.parametrize("content, match", [
    (None, "does not exist"),
    (b"", "is empty"),
    (b"hello, this is text\n", "not a PyTorch checkpoint"),
    (os.urandom(4096), "not a PyTorch checkpoint"),
    ("dir", "is a directory"),
    ("truncated", "not a PyTorch checkpoint"),
    ("foreign", "holds no model weights"),
])
def test_bad_files_give_one_clear_sentence(tmp_path, content, match):
    path = tmp_path / "x.pth"
    if content == "dir":
        path.mkdir()
    elif content == "truncated":
        save_checkpoint({"model": small().state_dict()}, str(path))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif content == "foreign":
        torch.save({"epoch": 1, "weights": [1, 2, 3]}, path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=match) as e:
        load_weights(CGNet.Context_Guided_Network(M=2, N=2), str(path))
    assert str(path) in str(e.value)


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "sub" / "checkpoint.pth"
    save_checkpoint({"a": torch.ones(2)}, str(path))
    save_checkpoint({"a": torch.zeros(2)}, str(path))
    assert os.listdir(path.parent) == ["checkpoint.pth"]
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.zeros(2))

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")
    with pytest.raises(RuntimeError):
        save_checkpoint({"a": Boom()}, str(path))
    assert os.listdir(path.parent) == ["checkpoint.pth"]
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.zeros(2))
