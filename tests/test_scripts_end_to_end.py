"""End to end: each of the five scripts' main() on tiny synthetic datasets in the real layouts, on the CPU."""
import glob
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import camvid_test
import camvid_train
import cityscapes_eval
import cityscapes_test
import cityscapes_train
from conftest import TINY, train_argv
from utils.optim import poly_lr

pytestmark = pytest.mark.slow  # every test trains or evaluates through the scripts

@pytest.fixture(scope="module")
def cv(synthetic):
    return synthetic("camvid", n_train=4, n_val=2, n_test=2, size=(36, 48))


def cs_train_args(root, out, *extra):
    return cityscapes_train.get_args_parser().parse_args(train_argv(root, out, *extra))


@pytest.fixture(scope="module")
def trained(cs, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run"))
    summary = cityscapes_train.main(cs_train_args(cs, out, "--max_epochs", "2"))
    return out, summary


def log_rows(run_dir):
    lines = open(os.path.join(run_dir, "log.txt")).read().splitlines()
    return lines, [line.split() for line in lines[2:]]


def test_training_writes_the_original_checkpoints_and_log(trained):
    out, summary = trained
    run_dir = summary["run_dir"]
    assert run_dir == os.path.join(out, "ckpt/", "cityscapes", "CGNet_M1N2bs2cpu_ontrain")
    assert sorted(os.listdir(run_dir)) == ["checkpoint.pth", "log.txt", "model_1.pth", "model_2.pth"]
    lines, rows = log_rows(run_dir)
    assert lines[0].startswith("Parameters: ") and lines[1].startswith("Epoch")
    assert [r[0] for r in rows] == ["1", "2"]
    assert len(rows[0]) == 5 and len(rows[1]) == 5  # validated at epoch 0 (interval) and the last
    released = torch.load(os.path.join(run_dir, "model_2.pth"), weights_only=True)
    # the original's {"epoch", "model"}, plus what inference needs (self-contained checkpoints)
    assert set(released) == {"epoch", "model", "network", "dataset", "preprocess", "class_names", "palette",
                             "tensor_sha256"}  # the checksum of its tensors, verified when it is read
    assert released["epoch"] == 2 and released["class_names"][0] == "road" and released["palette"][0] == [128, 64, 128]
    ckpt = torch.load(os.path.join(run_dir, "checkpoint.pth"), weights_only=True)
    assert {"model", "optimizer", "epoch", "iteration", "seed", "args"} <= set(ckpt)
    assert ckpt["seed"] == 3 and ckpt["iteration"] == 2 * 3


def test_resume_continues_epochs_and_the_lr_schedule(cs, trained, tmp_path):
    out, summary = trained
    run_dir = summary["run_dir"]
    args = cs_train_args(cs, out, "--max_epochs", "3", "--resume", os.path.join(run_dir, "checkpoint.pth"))
    result = cityscapes_train.main(args)
    assert result["epochs"] == 3
    lines, rows = log_rows(run_dir)
    assert [r[0] for r in rows] == ["1", "2", "3"]
    per_epoch = 3  # 6 images, batch 2
    assert float(rows[2][-1]) == pytest.approx(poly_lr(1e-3, 3 * per_epoch - 1, 3 * per_epoch), abs=1e-7)
    ckpt = torch.load(os.path.join(run_dir, "checkpoint.pth"), weights_only=True)
    assert ckpt["epoch"] == 3 and ckpt["optimizer"]["state"]


def test_eval_writes_pngs_and_metrics(cs, trained, tmp_path):
    out, summary = trained
    args = cityscapes_eval.get_args_parser().parse_args([
        "--data_dir", cs, "--val_data_list", f"{cs}/cityscapes_val_list.txt",
        "--inform_data_file", f"{out}/inform.pkl", "--resume", os.path.join(summary["run_dir"], "model_2.pth"),
        "--save_seg_dir", str(tmp_path / "val"), *TINY])
    result = cityscapes_eval.main(args)
    names = [os.path.basename(p)[:-4] for p in sorted(glob.glob(f"{cs}/leftImg8bit/val/*/*.png"))]
    files = sorted(os.listdir(tmp_path / "val"))
    assert files == sorted([f"{n}.png" for n in names] + [f"{n}_color.png" for n in names]
                           + ["metrics.json", "confusion.png"])
    metrics = json.load(open(tmp_path / "val" / "metrics.json"))
    assert metrics["mIoU"] == pytest.approx(result["mIoU"]) and len(metrics["IoU"]) == 19
    matrix = np.array(metrics["confusion"]["pixels"])  # rows: ground truth, columns: prediction
    assert matrix.shape == (19, 19) and metrics["confusion"]["classes"][0] == "road"
    assert matrix.sum() * metrics["pixel_accuracy"] == pytest.approx(np.trace(matrix))
    pred = np.array(Image.open(tmp_path / "val" / f"{names[0]}.png"))
    assert pred.shape == (48, 96) and pred.max() < 19
    assert Image.open(tmp_path / "val" / f"{names[0]}_color.png").mode == "P"


def test_our_miou_equals_the_official_cityscapes_evaluator(cs, trained, tmp_path):
    out, summary = trained
    ckpt = os.path.join(summary["run_dir"], "model_2.pth")
    common = ["--data_dir", cs, "--inform_data_file", f"{out}/inform.pkl", "--resume", ckpt, *TINY]
    ours = cityscapes_eval.main(cityscapes_eval.get_args_parser().parse_args(
        ["--val_data_list", f"{cs}/cityscapes_val_list.txt", "--save_seg_dir", str(tmp_path / "v"), *common]))
    cityscapes_test.main(cityscapes_test.get_args_parser().parse_args(
        ["--test_data_list", f"{cs}/cityscapes_val_list.txt", "--save_seg_dir", str(tmp_path / "c"),
         "--submit_dir", str(tmp_path / "submit"), *common]))
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev
    from cityscapesscripts.helpers.labels import labels
    ev.args.predictionPath = str(tmp_path / "submit")
    ev.args.evalLabels = [label.id for label in labels if label.id >= 0]
    ev.args.JSONOutput, ev.args.quiet, ev.args.evalInstLevelScore = False, True, False
    gts = sorted(glob.glob(f"{cs}/gtFine/val/*/*_gtFine_labelIds.png"))
    preds = [ev.getPrediction(ev.args, gt) for gt in gts]
    official = ev.evaluateImgLists(preds, gts, ev.args)
    assert ours["mIoU"] == pytest.approx(official["averageScoreClasses"], abs=1e-4)


def test_test_script_writes_colour_and_label_id_pngs_and_zip(cs, trained, tmp_path):
    out, summary = trained
    args = cityscapes_test.get_args_parser().parse_args([
        "--data_dir", cs, "--test_data_list", f"{cs}/cityscapes_test_list.txt",
        "--inform_data_file", f"{out}/inform.pkl", "--resume", os.path.join(summary["run_dir"], "model_2.pth"),
        "--save_seg_dir", str(tmp_path / "test"), "--submit_dir", str(tmp_path / "submit"),
        "--zip", str(tmp_path / "submit.zip"), *TINY])
    cityscapes_test.main(args)
    names = sorted(os.path.basename(p)[:-4] for p in glob.glob(f"{cs}/leftImg8bit/test/*/*.png"))
    assert sorted(os.listdir(tmp_path / "submit")) == [f"{n}.png" for n in names]
    assert sorted(os.listdir(tmp_path / "test")) == [f"{n}_color.png" for n in names]
    ids = np.array(Image.open(tmp_path / "submit" / f"{names[0]}.png"))
    assert set(np.unique(ids)) <= {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33}
    import zipfile
    assert sorted(zipfile.ZipFile(tmp_path / "submit.zip").namelist()) == [f"{n}.png" for n in names]


def test_camvid_train_and_test(cv, tmp_path):
    train_args = camvid_train.get_args_parser().parse_args([
        "--data_dir", cv, "--train_data_list", f"{cv}/camvid_trainval_list.txt",
        "--val_data_list", f"{cv}/camvid_val_list.txt", "--inform_data_file", str(tmp_path / "inform.pkl"),
        "--savedir", str(tmp_path / "ckpt"), "--input_size", "24,24", "--batch_size", "2", "--max_epochs", "1",
        "--seed", "0", *TINY])
    summary = camvid_train.main(train_args)
    assert summary["run_dir"].endswith(os.path.join("camvid", "CGNet_M1N2bs2cpu_ontrainval"))
    assert os.path.exists(os.path.join(summary["run_dir"], "model_1.pth"))
    test_args = camvid_test.get_args_parser().parse_args([
        "--data_dir", cv, "--test_data_list", f"{cv}/camvid_test_list.txt",
        "--inform_data_file", str(tmp_path / "inform.pkl"), "--resume", os.path.join(summary["run_dir"], "model_1.pth"),
        "--save_seg_dir", str(tmp_path / "pred"), *TINY])
    result = camvid_test.main(test_args)
    assert len(result["IoU"]) == 11 and 0 <= result["mIoU"] <= 1
    assert os.path.exists(tmp_path / "pred" / "metrics.json")
    color = Image.open(next(glob.iglob(str(tmp_path / "pred" / "*_color.png"))))
    assert color.getpalette()[:6] == [128, 128, 128, 128, 0, 0]  # CamVid colours: sky, building


def test_seeded_cpu_runs_are_repeatable(cs, tmp_path):
    a = cityscapes_train.main(cs_train_args(cs, str(tmp_path / "a"), "--max_epochs", "1"))
    b = cityscapes_train.main(cs_train_args(cs, str(tmp_path / "b"), "--max_epochs", "1"))
    wa = torch.load(os.path.join(a["run_dir"], "model_1.pth"), weights_only=True)["model"]
    wb = torch.load(os.path.join(b["run_dir"], "model_1.pth"), weights_only=True)["model"]
    assert a["loss"] == b["loss"] and all(torch.equal(wa[k], wb[k]) for k in wa)


def eval_args(cs, out, ckpt, save, *extra):
    return cityscapes_eval.get_args_parser().parse_args([
        "--data_dir", cs, "--val_data_list", f"{cs}/cityscapes_val_list.txt", "--inform_data_file",
        f"{out}/inform.pkl", "--resume", ckpt, "--save_seg_dir", str(save), *TINY, *extra])


def test_fast_eval_path_equals_the_plain_loop(cs, trained, tmp_path):
    out, summary = trained
    ckpt = os.path.join(summary["run_dir"], "model_2.pth")
    fast = cityscapes_eval.main(eval_args(cs, out, ckpt, tmp_path / "fast"))
    plain = cityscapes_eval.main(eval_args(cs, out, ckpt, tmp_path / "plain", "--plain", "true"))
    assert fast["mIoU"] == plain["mIoU"]
    for name in os.listdir(tmp_path / "plain"):
        if name.endswith(".png"):
            assert np.array_equal(np.array(Image.open(tmp_path / "fast" / name)),
                                  np.array(Image.open(tmp_path / "plain" / name))), name


@pytest.mark.parametrize("extra", [["--multi_scale", "0.5,1.0,1.5", "--flip", "true"], ["--amp", "bf16"]])
def test_multi_scale_flip_and_amp_evaluate_at_full_resolution(cs, trained, tmp_path, extra):
    out, summary = trained
    result = cityscapes_eval.main(eval_args(cs, out, os.path.join(summary["run_dir"], "model_2.pth"),
                                            tmp_path / "v", "--panel", "true", "--overlay", "true", *extra))
    assert 0 <= result["mIoU"] <= 1
    name = sorted(n for n in os.listdir(tmp_path / "v") if n.endswith("_leftImg8bit.png"))[0]
    assert np.array(Image.open(tmp_path / "v" / name)).shape == (48, 96)
    stem = name[:-4]
    assert Image.open(tmp_path / "v" / f"{stem}_panel.png").size == (3 * 96 + 2 * 4, 48)
    assert Image.open(tmp_path / "v" / f"{stem}_overlay.png").size == (96, 48)
