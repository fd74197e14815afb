"""mmsegmentation's CGNet checkpoint, as downloaded, in every script that takes a checkpoint (synthetic Cityscapes)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import benchmark
import cityscapes_eval
import cityscapes_test
from dataset.datasets import load_image, normalize, read_list, to_tensor
from dataset.palettes import CITYSCAPES_LABEL_IDS
from engine.checkpoint import read_weights
from model import build_model
from model.mmseg import MEAN_RGB
from conftest import ROOT
from tools import convert_checkpoint
from utils.errors import UserError

REFERENCE = os.path.join(ROOT, "..", "shared", "reference", "mmseg")
CKPT = os.path.join(REFERENCE, "mmseg_cgnet_seed3.pth")  # mmsegmentation's release layout, random weights
COMMON = ["--num_workers", "0", "--cuda", "false"]


@pytest.fixture(scope="module")
def cs(synthetic):
    if not os.path.isfile(CKPT):
        pytest.skip(f"the mmsegmentation reference vector is absent ({REFERENCE}: ../shared beside the clone)")
    return synthetic("cityscapes", n_train=1, n_val=2, n_test=2, size=(64, 128))


def predictions(root, list_name, mean):
    """{name: trainId prediction} of the reference checkpoint, computed here directly (eager, fp32)."""
    weights = read_weights(CKPT)
    model = build_model(**weights.network)
    model.load_state_dict(weights.state_dict)
    model.eval()
    out = {}
    for s in read_list(os.path.join(root, list_name), root, False, "list"):
        with torch.no_grad():
            x = to_tensor(normalize(load_image(s.image), np.asarray(mean, np.float32)))[None]
            out[s.name] = model(x).argmax(1)[0].numpy().astype(np.uint8)
    return out


def eval_args(root, save, inform, *extra, ckpt=CKPT):
    return cityscapes_eval.get_args_parser().parse_args([
        "--data_dir", root, "--val_data_list", f"{root}/cityscapes_val_list.txt", "--inform_data_file", inform,
        "--resume", ckpt, "--save_seg_dir", str(save), *COMMON, *extra])


@pytest.mark.slow
def test_eval_uses_mmsegmentations_mean_not_the_inform_file(cs, tmp_path):
    inform = str(tmp_path / "inform.pkl")
    result = cityscapes_eval.main(eval_args(cs, tmp_path / "val", inform, "--plain", "true"))
    assert 0 <= result["mIoU"] <= 1 and result["images"] == 2
    assert not os.path.exists(inform)  # the dataset statistics were neither needed nor computed
    right = predictions(cs, "cityscapes_val_list.txt", MEAN_RGB)
    swapped = predictions(cs, "cityscapes_val_list.txt", MEAN_RGB[::-1])  # the original's order
    for name, pred in right.items():
        assert (pred != swapped[name]).sum() > 20  # red and blue swapped would show
        assert np.array_equal(np.array(Image.open(tmp_path / "val" / f"{name}.png")), pred), name


@pytest.mark.slow
def test_test_script_submission_comes_from_its_predictions(cs, tmp_path):
    args = cityscapes_test.get_args_parser().parse_args([
        "--data_dir", cs, "--test_data_list", f"{cs}/cityscapes_test_list.txt", "--inform_data_file",
        str(tmp_path / "inform.pkl"), "--resume", CKPT, "--save_seg_dir", str(tmp_path / "test"),
        "--submit_dir", str(tmp_path / "submit"), *COMMON])
    result = cityscapes_test.main(args)
    assert result["images"] == 2
    to_label_id = np.asarray(CITYSCAPES_LABEL_IDS, np.uint8)
    for name, pred in predictions(cs, "cityscapes_test_list.txt", MEAN_RGB).items():
        ids = np.array(Image.open(tmp_path / "submit" / f"{name}.png"))
        # the default fast path (BN folded, channels-last) may differ from eager fp32 on a rare near-tie
        assert (ids == to_label_id[pred]).mean() > 0.999, name


@pytest.mark.slow
def test_multi_scale_flip_of_the_scripts_is_multiscale_probs(cs, tmp_path):
    from model.inference import multiscale_probs
    scales = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    cityscapes_eval.main(eval_args(cs, tmp_path / "ms", str(tmp_path / "i.pkl"), "--plain", "false",
                                   "--multi_scale", ",".join(map(str, scales)), "--flip", "true"))
    weights = read_weights(CKPT)
    model = build_model(**weights.network)
    model.load_state_dict(weights.state_dict)
    model.eval()
    for s in read_list(f"{cs}/cityscapes_val_list.txt", cs, True, "list"):
        x = to_tensor(normalize(load_image(s.image), weights.mean))[None]
        with torch.no_grad():
            expected = multiscale_probs(model, x, scales, True, 19).argmax(1)[0].numpy()
        got = np.array(Image.open(tmp_path / "ms" / f"{s.name}.png"))
        assert (got == expected).mean() > 0.999


@pytest.mark.slow
def test_benchmark_loads_it(cs, tmp_path):
    out = tmp_path / "bench.json"
    benchmark.main(benchmark.get_args_parser().parse_args([
        "--device", "cpu", "--input_size", "32,64", "--mode", "exact", "--warmup", "0", "--runs", "1",
        "--checkpoint", CKPT, "--json", str(out)]))
    summary = json.loads(out.read_text())["summary"]
    assert summary["parameters"] == 496325 and (summary["M"], summary["N"], summary["classes"]) == (3, 21, 19)


@pytest.mark.slow
def test_convert_checkpoint_writes_a_self_contained_file_that_predicts_the_same(cs, tmp_path):
    out = str(tmp_path / "cgnet_ours.pth")
    result = convert_checkpoint.main(convert_checkpoint.get_args_parser().parse_args([CKPT, out]))
    assert result["dataset"] == "cityscapes" and result["network"]["head_bias"]
    saved = torch.load(out, weights_only=True)
    assert set(saved) == {"epoch", "model", "network", "dataset", "preprocess", "tensor_sha256"}
    np.testing.assert_allclose(saved["preprocess"]["mean"], MEAN_RGB)
    weights = read_weights(out)
    assert weights.layout == "ours" and weights.network == read_weights(CKPT).network
    for k, v in read_weights(CKPT).state_dict.items():
        assert torch.equal(weights.state_dict[k], v), k
    cityscapes_eval.main(eval_args(cs, tmp_path / "val", str(tmp_path / "i.pkl"), "--plain", "true", ckpt=out))
    for name, pred in predictions(cs, "cityscapes_val_list.txt", MEAN_RGB).items():
        assert np.array_equal(np.array(Image.open(tmp_path / "val" / f"{name}.png")), pred), name


def test_convert_original_release_needs_a_mean(tmp_path, capsys):
    model = build_model("CGNet", 11, M=1, N=2)
    path = tmp_path / "model_camvid.pth"
    torch.save({"epoch": 800, "model": {"module." + k: v for k, v in model.state_dict().items()}}, path,
               _use_new_zipfile_serialization=False)
    parse = convert_checkpoint.get_args_parser().parse_args
    with pytest.raises(UserError, match="--inform_data_file"):
        convert_checkpoint.main(parse([str(path), str(tmp_path / "a.pth")]))
    model19 = build_model("CGNet", 19, M=1, N=2)
    torch.save({"epoch": 300, "model": model19.state_dict()}, tmp_path / "cs.pth")
    result = convert_checkpoint.main(parse([str(tmp_path / "cs.pth"), str(tmp_path / "b.pth")]))
    assert "notice" in capsys.readouterr().out
    assert result["network"] == {"name": "CGNet", "classes": 19, "M": 1, "N": 2}
    np.testing.assert_allclose(result["mean"], [73.15835921, 82.90891754, 72.39239876])  # ORIGINAL.md §3, BGR order
    weights = read_weights(str(tmp_path / "b.pth"))
    assert weights.ckpt["epoch"] == 300 and weights.dataset == "cityscapes"


@pytest.mark.slow
def test_a_foreign_file_is_refused_by_the_eval_script_in_one_line(cs, tmp_path):
    ckpt = torch.load(CKPT, weights_only=True)
    sd = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("backbone.level2.20.")}
    path = tmp_path / "cgnet_m3n20.pth"
    torch.save({"meta": ckpt["meta"], "state_dict": sd}, path)
    run = subprocess.run([sys.executable, os.path.join(ROOT, "cityscapes_eval.py"), "--data_dir", cs,
                          "--val_data_list", f"{cs}/cityscapes_val_list.txt", "--resume", str(path),
                          "--save_seg_dir", str(tmp_path / "v"), *COMMON], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 2
    assert "mmsegmentation CGNet M3N20" in run.stderr and str(path) in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not os.path.exists(tmp_path / "v")


@pytest.mark.slow
def test_weights_fine_tunes_from_it_without_its_classifier_bias(cs, tmp_path, capsys):
    """--weights with the downloaded file: the original network has no classifier bias, so that one tensor is
    left out (with a notice) and every other weight is loaded."""
    import cityscapes_train
    from conftest import train_argv
    summary = cityscapes_train.main(cityscapes_train.get_args_parser().parse_args(
        train_argv(cs, str(tmp_path), "--M", "3", "--N", "21", "--weights", CKPT, "--max_epochs", "1",
                   "--batch_size", "1", "--val_data_list", "")))
    assert "classifier bias (classifier.0.conv.bias)" in capsys.readouterr().out
    trained = torch.load(os.path.join(summary["run_dir"], "model_1.pth"), weights_only=True)
    assert "classifier.0.conv.bias" not in trained["model"] and trained["network"]["name"] == "CGNet"
