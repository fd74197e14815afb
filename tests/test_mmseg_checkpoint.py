"""mmsegmentation's CGNet checkpoints: recognised, renamed onto the original's names, predicting what mmseg predicts."""
import os

import numpy as np
import pytest
import torch

from engine.checkpoint import read_weights
from model import build_model
from model.mmseg import MEAN_RGB
from utils.checkpoint import read_checkpoint
from utils.errors import UserError
from conftest import ROOT

REFERENCE = os.path.join(ROOT, "..", "shared", "reference", "mmseg")
CKPT = os.path.join(REFERENCE, "mmseg_cgnet_seed3.pth")


@pytest.fixture(scope="module")
def reference():
    """The checkpoint made by mmsegmentation 1.2.2's CGNet code, and mmseg's logits for a given input."""
    if not os.path.isfile(CKPT):
        pytest.skip(f"the mmsegmentation reference vector is absent ({REFERENCE}: ../shared beside the clone)")
    return torch.load(CKPT, weights_only=True), torch.load(os.path.join(REFERENCE, "mmseg_cgnet_seed3_logits.pt"),
                                                           weights_only=True)


def load(weights):
    model = build_model(**weights.network)
    model.load_state_dict(weights.state_dict)
    return model.eval()


def test_logits_match_mmsegmentation(reference):
    ckpt, vector = reference
    weights = read_weights(CKPT)
    assert weights.layout == "mmseg" and weights.dataset == "cityscapes"
    assert weights.network == {"name": "CGNet", "classes": 19, "M": 3, "N": 21, "head_bias": True}
    model = load(weights)
    assert len(weights.state_dict) == len(ckpt["state_dict"]) == 499
    assert sum(p.numel() for p in model.parameters()) == 496306 + 19  # the original's + the head's bias
    with torch.no_grad():
        logits = model(vector["input"])
    ref = vector["logits"]
    assert (logits - ref).abs().max() <= 1e-4 * ref.abs().max()
    assert torch.equal(logits.argmax(1), ref.argmax(1))


def test_the_head_bias_is_used(reference):
    """Without its bias the head would predict something else: the bias is loaded, not dropped."""
    weights = read_weights(CKPT)
    model = load(weights)
    with torch.no_grad():
        x = reference[1]["input"]
        with_bias = model(x)
        model.classifier[0].conv.bias.zero_()
        assert not torch.allclose(model(x), with_bias, atol=1e-3)


def test_the_mean_is_mmsegmentations_in_rgb_order(reference):
    mean = read_weights(CKPT).mean
    # red, green, blue: the original's BGR-ordered inform mean reversed (ORIGINAL.md §3 has 73.16, 82.91, 72.39)
    np.testing.assert_allclose(mean, [72.39239876, 82.90891754, 73.15835921], rtol=1e-6)
    assert mean[0] < mean[2]


def test_original_release_checkpoints_keep_their_state_dict():
    """head_bias is off by default: the original's classifier has no bias, its state_dict is unchanged."""
    names = [line.split()[0] for line in open(os.path.join(ROOT, "tests", "data", "cgnet_m3n21_state_dict.txt"))
             if line.strip() and not line.startswith("#")]
    assert list(build_model("CGNet", 19).state_dict()) == names
    assert "classifier.0.conv.bias" in build_model("CGNet", 19, head_bias=True).state_dict()


def save_variant(path, ckpt, drop=(), config=None, state_dict=None):
    sd = {k: v for k, v in (state_dict or ckpt["state_dict"]).items() if not k.startswith(drop or "\0")}
    meta = dict(ckpt["meta"], config=config if config is not None else ckpt["meta"]["config"])
    torch.save({"meta": meta, "state_dict": sd}, path)
    return str(path)


def refusal(path):
    with pytest.raises(UserError) as e:
        read_weights(path)
    message = str(e.value)
    assert path in message and message.count(". ") == 0 and message.endswith(".")  # one sentence naming the file
    return message


def test_foreign_mmsegmentation_files_are_refused_saying_what_they_are(reference, tmp_path):
    ckpt, _ = reference
    resnet = {"backbone.stem.0.weight": torch.zeros(32, 3, 3, 3),
              "backbone.layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1),
              "decode_head.conv_seg.weight": torch.zeros(19, 512, 1, 1)}
    config = "model = dict(\n    type='EncoderDecoder',\n    backbone=dict(type='ResNetV1c', depth=50),\n" \
             "    decode_head=dict(type='PSPHead', in_channels=2048))\n"
    assert "ResNetV1c + PSPHead" in refusal(save_variant(tmp_path / "pspnet.pth", ckpt, config=config,
                                                         state_dict=resnet))
    assert "of another network" in refusal(save_variant(tmp_path / "nocfg.pth", ckpt, config="", state_dict=resnet))
    assert "CGNet M3N20 with 19 classes" in refusal(save_variant(tmp_path / "n20.pth", ckpt,
                                                                 drop=("backbone.level2.20.",)))
    sd = dict(ckpt["state_dict"])
    sd["decode_head.conv_seg.weight"], sd["decode_head.conv_seg.bias"] = sd["decode_head.conv_seg.weight"][:11], \
        sd["decode_head.conv_seg.bias"][:11]
    assert "CGNet M3N21 with 11 classes" in refusal(save_variant(tmp_path / "c11.pth", ckpt, state_dict=sd))
    aux = dict(ckpt["state_dict"], **{"auxiliary_head.conv_seg.weight": torch.zeros(19, 64, 1, 1)})
    assert "auxiliary_head.conv_seg.weight" in refusal(save_variant(tmp_path / "aux.pth", ckpt, state_dict=aux))


def numpy_meta_file(path, numpy1_names):
    """A release-era file: numpy scalars, arrays and dtypes in `meta`; numpy 1.x pickled them as numpy.core.*."""
    meta = {"seed": np.int64(5), "lr": np.float64(0.01), "iter": np.array(60000, np.int32),
            "mean": np.array(MEAN_RGB, np.float32), "flag": np.bool_(True), "dtype": np.dtype("float64")}
    torch.save({"meta": meta, "state_dict": {"w": torch.ones(2)}}, path, _use_new_zipfile_serialization=False)
    if numpy1_names:  # the legacy format keeps the pickle as it is in the file
        data = open(path, "rb").read()
        assert data.count(b"numpy._core.multiarray\n") >= 2
        open(path, "wb").write(data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    return str(path)


@pytest.mark.parametrize("numpy1_names", [False, True])
def test_numpy_scalars_and_arrays_in_meta_load_with_weights_only(tmp_path, numpy1_names):
    ckpt = read_checkpoint(numpy_meta_file(tmp_path / "meta.pth", numpy1_names))
    meta = ckpt["meta"]
    assert meta["seed"] == 5 and meta["lr"] == 0.01 and int(meta["iter"]) == 60000 and meta["flag"]
    np.testing.assert_array_equal(meta["mean"], np.array(MEAN_RGB, np.float32))
    assert meta["dtype"] == np.float64
    with pytest.raises(Exception):  # only inside read_checkpoint: nothing is allowed globally
        torch.load(tmp_path / "meta.pth", weights_only=True)


def test_numpy_object_arrays_are_still_refused(tmp_path):
    path = tmp_path / "object.pth"
    torch.save({"meta": {"o": np.array([None, 1], dtype=object)}, "state_dict": {"w": torch.ones(1)}}, path)
    with pytest.raises(UserError, match="was refused: it contains a Python object"):
        read_checkpoint(str(path))
