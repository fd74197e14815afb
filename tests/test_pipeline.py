"""End to end: each of the five scripts' main() on tiny synthetic datasets in the real layouts, on the CPU."""
import glob
import json
import os
import pickle
import shlex

import numpy as np
import pytest
import torch
from PIL import Image

import camvid_test
import camvid_train
import cityscapes_eval
import cityscapes_test
import cityscapes_train
from dataset.inform import compute_inform, get_inform, read_inform
from tools.make_demo_data import make_camvid, make_cityscapes
from utils.errors import UserError
from utils.optim import poly_lr

TINY = ["--M", "1", "--N", "2", "--num_workers", "0", "--cuda", "false"]


@pytest.fixture(scope="module")
def cs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cityscapes"))
    make_cityscapes(root, n_train=6, n_val=2, n_test=2, size=(48, 96))
    return root


@pytest.fixture(scope="module")
def cv(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("camvid"))
    make_camvid(root, n_train=4, n_val=2, n_test=2, size=(36, 48))
    return root


def cs_train_args(root, out, *extra):
    return cityscapes_train.get_args_parser().parse_args([
        "--data_dir", root, "--train_data_list", f"{root}/cityscapes_train_list.txt",
        "--val_data_list", f"{root}/cityscapes_val_list.txt", "--inform_data_file", f"{out}/inform.pkl",
        "--savedir", f"{out}/ckpt/", "--input_size", "32,32", "--batch_size", "2", "--seed", "3",
        "--train_type", "ontrain", *TINY, *extra])


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
    assert set(released) == {"epoch", "model", "network", "dataset", "preprocess"} and released["epoch"] == 2
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
    assert files == sorted([f"{n}.png" for n in names] + [f"{n}_color.png" for n in names] + ["metrics.json"])
    metrics = json.load(open(tmp_path / "val" / "metrics.json"))
    assert metrics["mIoU"] == pytest.approx(result["mIoU"]) and len(metrics["IoU"]) == 19
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


README_COMMANDS = [
    (cityscapes_train, "--gpus 0,1 --dataset cityscapes --train_type ontrain --train_data_list "
                       "./dataset/list/Cityscapes/cityscapes_train_list.txt --max_epochs 300"),
    (cityscapes_train, "--gpus 0,1 --dataset cityscapes --train_type ontrainval --train_data_list "
                       "./dataset/list/Cityscapes/cityscapes_trainval_list.txt --max_epochs 350"),
    (cityscapes_eval, "--gpus 0 --val_data_list ./dataset/list/Cityscapes/cityscapes_val_list.txt --resume "
                      "./checkpoint/cityscapes/CGNet_M3N21bs16gpu2_ontrain/model_cityscapes_train_on_trainset.pth"),
    (cityscapes_test, "--gpus 0 --test_data_list ./dataset/list/Cityscapes/cityscapes_test_list.txt --resume "
                      "./checkpoint/cityscapes/CGNet_M3N21bs16gpu2_ontrainval/model_cityscapes_train_on_trainvalset.pth"),
    (camvid_train, ""),
    (camvid_test, ""),
]


@pytest.mark.parametrize("script, line", README_COMMANDS)
def test_original_command_lines_parse(script, line):
    args = script.get_args_parser().parse_args(shlex.split(line))
    assert args.model == "CGNet" and args.cuda is True


def test_original_defaults():
    c = cityscapes_train.get_args_parser().parse_args([])
    assert (c.input_size, c.batch_size, c.max_epochs, c.gpus, c.classes, c.lr) == ((680, 680), 16, 350, "0,1", 19, 1e-3)
    assert c.data_dir == "./data/cityscapes" and c.resume is None and c.val_interval == 50
    v = camvid_train.get_args_parser().parse_args([])
    assert (v.input_size, v.batch_size, v.max_epochs, v.gpus, v.classes, v.ignore_label) == ((360, 360), 8, 800, "0", 11, 11)
    assert cityscapes_eval.get_args_parser().parse_args([]).save_seg_dir == "./result/cityscapes/val/"
    assert cityscapes_test.get_args_parser().parse_args([]).save_seg_dir == "./result/cityscapes/test/"


@pytest.mark.parametrize("text, value", [("true", True), ("0", False), ("yes", True), ("No", False)])
def test_boolean_flags_accept_words_and_digits(text, value):
    args = cityscapes_train.get_args_parser().parse_args(["--cuda", text, "--random_mirror", text])
    assert args.cuda is value and args.random_mirror is value


def test_inform_matches_the_formulas_on_a_hand_checked_example(tmp_path):
    root = tmp_path
    (root / "img").mkdir()
    a = np.zeros((2, 2, 3), np.uint8)
    a[..., 0], a[..., 1], a[..., 2] = 10, 20, 30             # BGR
    b = np.zeros((2, 2, 3), np.uint8)
    b[0, :, 0], b[1, :, 0] = 0, 40                           # blue 0/40 -> mean 20, std 20
    la = np.array([[0, 0], [1, 255]], np.uint8)
    lb = np.array([[2, 2], [2, 2]], np.uint8)
    import cv2
    for name, img, lab in (("a", a, la), ("b", b, lb)):
        cv2.imwrite(str(root / "img" / f"{name}.png"), img)
        cv2.imwrite(str(root / "img" / f"{name}_l.png"), lab)
    (root / "list.txt").write_text("img/a.png img/a_l.png\nimg/b.png img/b_l.png\n")
    info = compute_inform(str(root), "list.txt", 3, 255)
    assert info["mean"].tolist() == pytest.approx([(10 + 20) / 2, 20 / 2, 30 / 2])
    assert info["std"].tolist() == pytest.approx([(0 + 20) / 2, 0, 0])
    share = np.array([2, 1, 4]) / 7                          # class pixels among the 7 labelled ones
    assert info["classWeights"].tolist() == pytest.approx((1 / np.log(1.10 + share)).tolist(), rel=1e-6)
    assert all(v.dtype == np.float32 for v in info.values())


def test_original_style_inform_pickle_loads_and_foreign_pickles_are_refused(tmp_path):
    original = {"mean": np.array([73.158, 82.909, 72.392], np.float32),
                "std": np.array([47.6, 48.5, 47.7], np.float32),
                "classWeights": np.ones(19, np.float32)}
    for protocol in (2, 3, 4):
        path = tmp_path / f"ok{protocol}.pkl"
        path.write_bytes(pickle.dumps(original, protocol=protocol))
        assert read_inform(str(path))["mean"].tolist() == pytest.approx(original["mean"].tolist())
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"mean": Evil()}))
    with pytest.raises(UserError, match="not a valid statistics file"):
        read_inform(str(bad))
    assert not marker.exists()
    with pytest.raises(UserError, match="19 classes but --classes is 11"):
        path = tmp_path / "ok3.pkl"
        get_inform(str(path), str(tmp_path), "none.txt", 11, 11)


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
