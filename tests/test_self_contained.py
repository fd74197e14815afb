"""Self-contained checkpoints: what read_weights tells about the network and the input mean."""
import pickle

import numpy as np
import pytest

from engine.checkpoint import input_mean, read_weights, self_contained
from model import build_model
from utils.checkpoint import save_checkpoint
from utils.errors import UserError

MEAN = [72.39, 82.91, 73.16]


def test_our_record_round_trips_and_the_original_loader_keys_stay(tmp_path):
    sd = build_model("CGNet", 11, M=2, N=3).state_dict()
    path = str(tmp_path / "model_1.pth")
    save_checkpoint(self_contained(sd, {"name": "CGNet", "classes": 11, "M": 2, "N": 3}, "camvid", MEAN, 1), path)
    w = read_weights(path)
    assert w.network == {"name": "CGNet", "classes": 11, "M": 2, "N": 3} and w.dataset == "camvid"
    assert w.mean.tolist() == pytest.approx(MEAN) and w.layout == "ours"


@pytest.mark.parametrize("M, N, classes", [(3, 21, 19), (1, 2, 11)])
def test_the_network_of_an_original_release_file_is_read_off_its_state_dict(tmp_path, M, N, classes):
    sd = {"module." + k: v for k, v in build_model("CGNet", classes, M=M, N=N).state_dict().items()}
    path = str(tmp_path / "original.pth")
    save_checkpoint({"epoch": 350, "model": sd}, path)
    w = read_weights(path)
    assert w.layout == "original" and w.mean is None
    assert w.network == {"name": "CGNet", "classes": classes, "M": M, "N": N}


@pytest.mark.parametrize("preprocess", [{}, {"mean": [1.0, 2.0]}, {"mean": "blue"}, None])
def test_a_damaged_record_is_one_sentence(tmp_path, preprocess):
    path = str(tmp_path / "bad.pth")
    ckpt = self_contained(build_model("CGNet", 19, M=1, N=1).state_dict(),
                          {"name": "CGNet", "classes": 19, "M": 1, "N": 1}, "cityscapes", MEAN)
    ckpt["preprocess"] = preprocess
    save_checkpoint(ckpt, path)
    with pytest.raises(UserError, match=r"bad.pth has a damaged 'network'/'preprocess' record"):
        read_weights(path)


def test_the_mean_comes_from_the_checkpoint_then_the_inform_file_then_the_release(tmp_path, capsys):
    sd = build_model("CGNet", 19, M=1, N=1).state_dict()
    ours, original = str(tmp_path / "ours.pth"), str(tmp_path / "original.pth")
    save_checkpoint(self_contained(sd, {"name": "CGNet", "classes": 19, "M": 1, "N": 1}, "cityscapes", MEAN), ours)
    save_checkpoint({"epoch": 1, "model": sd}, original)
    inform = str(tmp_path / "inform.pkl")
    with open(inform, "wb") as f:  # the original's format: a pickled dict of float32 arrays
        pickle.dump({"mean": np.array([1, 2, 3], np.float32), "std": np.ones(3, np.float32),
                     "classWeights": np.ones(19, np.float32)}, f)
    assert input_mean(read_weights(ours), ours).tolist() == pytest.approx(MEAN)
    assert input_mean(read_weights(ours), ours, inform).tolist() == pytest.approx(MEAN)
    assert "using the checkpoint's" in capsys.readouterr().out
    assert input_mean(read_weights(original), original, inform).tolist() == [1, 2, 3]
    with pytest.raises(UserError, match="--inform_data_file .* does not exist"):
        input_mean(read_weights(original), original, str(tmp_path / "missing.pkl"))
    released = input_mean(read_weights(original), original)
    assert released.tolist() == pytest.approx([73.15835921, 82.90891754, 72.39239876])
    assert "original release's Cityscapes mean" in capsys.readouterr().out
