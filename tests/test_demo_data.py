import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from dataset.synthetic import make_camvid, make_cityscapes
from tools.make_demo_data import get_args_parser
from dataset.palettes import CITYSCAPES_LABEL_IDS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CS_NAME = re.compile(r"^([a-z]+)_\d{6}_\d{6}_leftImg8bit\.png$")
SIZE = (32, 64)


def read(path):
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def lines(root, name):
    with open(os.path.join(root, name)) as f:
        text = f.read()
    assert text.endswith("\n")
    return text.splitlines()


def all_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory):
    return make_cityscapes(str(tmp_path_factory.mktemp("cs")), n_train=3, n_val=2, n_test=2, size=SIZE)


@pytest.fixture(scope="module")
def camvid(tmp_path_factory):
    return make_camvid(str(tmp_path_factory.mktemp("cv")), n_train=3, n_val=2, n_test=2, size=SIZE)


def test_cityscapes_layout_and_lists(cityscapes):
    train = lines(cityscapes, "cityscapes_train_list.txt")
    val = lines(cityscapes, "cityscapes_val_list.txt")
    assert (len(train), len(val)) == (3, 2)
    assert lines(cityscapes, "cityscapes_trainval_list.txt") == train + val
    for split, rows in (("train", train), ("val", val)):
        for row in rows:
            img, lab = row.split(" ")
            _, img_split, city, name = img.split("/")
            assert CS_NAME.match(name) and name.startswith(city + "_") and img_split == split
            stem = name[:-len("_leftImg8bit.png")]
            assert img == f"leftImg8bit/{split}/{city}/{name}"
            assert lab == f"gtFine/{split}/{city}/{stem}_gtFine_labelTrainIds.png"
            for path in (img, lab, lab.replace("labelTrainIds", "labelIds")):
                assert os.path.isfile(os.path.join(cityscapes, path))
    test = lines(cityscapes, "cityscapes_test_list.txt")
    assert len(test) == 2
    for img in test:
        assert img.startswith("leftImg8bit/test/") and CS_NAME.match(img.split("/")[-1])
        assert os.path.isfile(os.path.join(cityscapes, img))
    assert not os.path.exists(os.path.join(cityscapes, "gtFine", "test"))
    assert not any(".tmp" in f for f in all_files(cityscapes))


def test_cityscapes_labels_match_images_and_ids(cityscapes):
    to_label_id = np.array(CITYSCAPES_LABEL_IDS)
    seen = set()
    for row in lines(cityscapes, "cityscapes_trainval_list.txt"):
        img_rel, lab_rel = row.split(" ")
        img, train_ids = read(os.path.join(cityscapes, img_rel)), read(os.path.join(cityscapes, lab_rel))
        label_ids = read(os.path.join(cityscapes, lab_rel.replace("labelTrainIds", "labelIds")))
        assert img.shape == SIZE + (3,) and img.dtype == np.uint8
        assert train_ids.shape == label_ids.shape == SIZE and train_ids.dtype == label_ids.dtype == np.uint8
        values = set(np.unique(train_ids).tolist())
        assert values <= set(range(19)) | {255}
        seen |= values
        valid = train_ids != 255
        assert (label_ids[valid] == to_label_id[train_ids[valid]]).all()
        assert set(np.unique(label_ids[~valid]).tolist()) <= set(range(7))  # Cityscapes void ids
    assert len(seen - {255}) >= 6


def test_camvid_layout_and_labels(camvid):
    for split, n in (("train", 3), ("val", 2), ("test", 2)):
        rows = lines(camvid, f"camvid_{split}_list.txt")
        assert len(rows) == n
        for row in rows:
            img_rel, lab_rel = row.split(" ")
            assert re.fullmatch(rf"{split}/\w+_\d{{6}}\.png", img_rel)
            assert lab_rel == f"{split}annot/{img_rel.split('/')[1]}"
            img, lab = read(os.path.join(camvid, img_rel)), read(os.path.join(camvid, lab_rel))
            assert img.shape == SIZE + (3,) and lab.shape == SIZE and lab.dtype == np.uint8
            assert lab.max() <= 11
    assert (lines(camvid, "camvid_trainval_list.txt")
            == lines(camvid, "camvid_train_list.txt") + lines(camvid, "camvid_val_list.txt"))


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    a = make_camvid(str(tmp_path / "a"), n_train=2, n_val=1, n_test=1, size=SIZE, seed=3)
    b = make_camvid(str(tmp_path / "b"), n_train=2, n_val=1, n_test=1, size=SIZE, seed=3)
    c = make_camvid(str(tmp_path / "c"), n_train=2, n_val=1, n_test=1, size=SIZE, seed=4)
    assert all_files(a) == all_files(b) == all_files(c)
    for rel in all_files(a):
        with open(os.path.join(a, rel), "rb") as fa, open(os.path.join(b, rel), "rb") as fb:
            assert fa.read() == fb.read(), rel
    img = "train/" + lines(a, "camvid_train_list.txt")[0].split(" ")[0].split("/")[1]
    assert not np.array_equal(read(os.path.join(a, img)), read(os.path.join(c, img)))


def test_classes_look_different(tmp_path):
    root = make_cityscapes(str(tmp_path), n_train=4, n_val=1, n_test=1, size=(64, 128))
    pixels = {k: [] for k in ("sky", "road", "vegetation")}
    for row in lines(root, "cityscapes_train_list.txt"):
        img_rel, lab_rel = row.split(" ")
        img, lab = read(os.path.join(root, img_rel)).astype(float), read(os.path.join(root, lab_rel))
        for name, cls in (("sky", 10), ("road", 0), ("vegetation", 8)):
            pixels[name].append(img[lab == cls])
    pixels = {k: np.concatenate(v) for k, v in pixels.items()}
    means = {k: v.mean(0) for k, v in pixels.items()}
    b, g, r = means["sky"]
    assert b > r + 30 and np.abs(means["sky"] - means["road"]).max() > 40  # blue sky, grey road
    for k, v in pixels.items():  # closer to its own class mean than to the others'
        own = np.linalg.norm(v - means[k], axis=1).mean()
        assert all(own < np.linalg.norm(v - means[o], axis=1).mean() for o in means if o != k), k


def test_second_run_skips_and_other_params_regenerate(tmp_path):
    root = make_cityscapes(str(tmp_path), n_train=1, n_val=1, n_test=1, size=SIZE)
    img = os.path.join(root, lines(root, "cityscapes_train_list.txt")[0].split(" ")[0])
    os.utime(img, (0, 0))
    make_cityscapes(root, n_train=1, n_val=1, n_test=1, size=SIZE)
    assert os.stat(img).st_mtime == 0
    make_cityscapes(root, n_train=2, n_val=1, n_test=1, size=SIZE)
    assert os.stat(img).st_mtime != 0 and len(lines(root, "cityscapes_train_list.txt")) == 2


@pytest.mark.parametrize("argv", [
    ["--dataset", "kitti", "--out", "x"], ["--dataset", "camvid"], ["--dataset", "camvid", "--out", "x", "--train", "0"],
    ["--dataset", "camvid", "--out", "x", "--val", "-2"], ["--dataset", "camvid", "--out", "x", "--size", "0,10"],
    ["--dataset", "camvid", "--out", "x", "--size", "64"], ["--dataset", "camvid", "--out", "x", "--seed", "-1"],
    ["--dataset", "camvid", "--out", "x", "--test", "two"]])
def test_cli_rejects_bad_arguments(argv):
    with pytest.raises(SystemExit) as e:
        get_args_parser().parse_args(argv)
    assert e.value.code != 0


@pytest.mark.slow
def test_cli_runs_as_a_script(tmp_path):
    script = os.path.join(ROOT, "tools", "make_demo_data.py")
    ok = subprocess.run([sys.executable, script, "--dataset", "camvid", "--out", str(tmp_path), "--train", "1",
                         "--val", "1", "--test", "1", "--size", "32,48"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "wrote camvid" in ok.stdout and os.path.isfile(tmp_path / "camvid_test_list.txt")
    bad = subprocess.run([sys.executable, script, "--dataset", "camvid", "--out", str(tmp_path), "--size", "a,b"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "--size" in bad.stderr
