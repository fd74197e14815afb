"""Classes files in every form a labelling tool exports, read right or refused (never read as something else), and
the Kaggle-style layouts: folder pairs, mask-name suffixes, GIF masks, the exact val share, a binary dataset's
colours (issue 25, items 3, 4 and 7)."""
import json
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import prepare, refused
from dataset.classes_file import background_class, read_classes
from dataset.layouts import held_out
from dataset.synthetic import shapes
from utils.errors import UserError

TRIAL = "id,name,r,g,b\n0,background,0,0,0\n1,road,128,64,128\n2,car,0,0,142\n3,person,220,20,60\n4,sky,70,130,180\n"
EXPECTED = [("background", (0, 0, 0)), ("road", (128, 64, 128)), ("car", (0, 0, 142)), ("person", (220, 20, 60)),
            ("sky", (70, 130, 180))]


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def index_dataset(root, n=4, size=(32, 48), classes=5):
    """images/ + masks/ of grey class-index masks using the values 0..classes-1."""
    for i in range(n):
        rgb, label = shapes(np.random.default_rng([3, i]), *size)
        label = np.minimum(label, classes - 1)
        label[0, :classes] = np.arange(classes)  # every class present in every mask
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "images" / f"{i}.png"), rgb[:, :, ::-1])
        cv2.imwrite(str(root / "masks" / f"{i}.png"), label)
    return root


# ------------------------------------------------------------------------------------------ classes files

def test_the_trial_csv_with_a_header_is_read_right(tmp_path, capsys):
    assert read_classes(write(tmp_path / "classes.csv", TRIAL)) == EXPECTED
    root = index_dataset(tmp_path / "mine")
    write(root / "classes.csv", TRIAL)
    desc = prepare(root)
    assert desc["class_names"] == [n for n, _ in EXPECTED] and desc["palette"] == [list(c) for _, c in EXPECTED]
    assert "classes from" in capsys.readouterr().out and len(desc["class_names"]) == 5


@pytest.mark.parametrize("name, text", [
    ("a.csv", "background,0,0,0\nroad,128,64,128\ncar,0,0,142\nperson,220,20,60\nsky,70,130,180\n"),
    ("b.csv", "0,background,0,0,0\n2,car,0,0,142\n1,road,128,64,128\n3,person,220,20,60\n4,sky,70,130,180\n"),
    ("class_dict.csv", "name,r,g,b\n" + "".join(f"{n},{r},{g},{b}\n" for n, (r, g, b) in EXPECTED)),
    ("c.csv", "Name,Color\nbackground,#000000\nroad,#804080\ncar,#00008e\nperson,#dc143c\nsky,#4682b4\n"),
    ("a.json", json.dumps([{"name": n, "color": list(c)} for n, c in EXPECTED])),
    ("b.json", json.dumps({str(i): {"name": n, "colour": "#%02x%02x%02x" % c} for i, (n, c) in enumerate(EXPECTED)})),
    ("c.json", json.dumps({n: list(c) for n, c in EXPECTED})),
    ("labelmap.txt", "# label:color_rgb:parts:actions\n" + "".join(f"{n}:{r},{g},{b}::\n"
                                                                   for n, (r, g, b) in EXPECTED)),
    ("d.txt", "".join(f"{n} {r} {g} {b}\n" for n, (r, g, b) in EXPECTED)),
])
def test_every_coloured_form(tmp_path, name, text):
    assert read_classes(write(tmp_path / name, text)) == EXPECTED


@pytest.mark.parametrize("name, text, names", [
    ("a.txt", "\ufeffsky\nroad\n\ntraffic light\n", ["sky", "road", "traffic light"]),
    ("labels.txt", "__ignore__\n_background_\ndog\ncat\n", ["_background_", "dog", "cat"]),  # labelme2voc's
    ("b.txt", "1 road\n0 sky\n", ["sky", "road"]),
    ("a.csv", "sky\nroad\n", ["sky", "road"]),
    ("b.csv", "id,name\n1,road\n0,sky\n", ["sky", "road"]),
    ("a.json", '["sky", "road"]', ["sky", "road"]),
    ("b.json", '{"0": "sky", "1": "road"}', ["sky", "road"]),
    ("c.json", '{"categories": [{"id": 7, "name": "road"}, {"id": 3, "name": "sky"}]}', ["sky", "road"]),
])
def test_every_plain_form(tmp_path, name, text, names):
    assert [n for n, _ in read_classes(write(tmp_path / name, text))] == names


@pytest.mark.parametrize("name, text, says", [
    ("classes.yaml", "- sky\n", "has the suffix .yaml"),
    ("classes.csv", "a,b,c\nd,e,f\n", "has the header a,b,c without a name column"),
    ("classes.csv", "sky,1\nroad,2\n", "has rows like sky,1"),
    ("classes.csv", "id,label_colour\n0,red\n", "without a name column"),
    ("classes.csv", "id,name\n1,road\n2,sky\n", "numbers its classes [1, 2], not 0..1"),
    ("classes.json", '{"version": 2}', "is a JSON object of none of its forms"),
    ("classes.json", "[1, 2]", "neither a name nor an object"),
    ("classes.json", "{oops", "is not valid JSON"),
    ("classes.txt", "a 1 2 3\nb\n", "gives colours for some classes but not for 'b'"),
    ("classes.txt", "a 1 2 3\nb 1 2 3\n", "two classes the same colour"),
    ("classes.txt", "a 1 2 300\n", "beyond 0..255"),
    ("classes.txt", "# only a comment\n", "names no class"),
    ("classes.txt", "sky\nsky\n", "names the class 'sky' twice"),
])
def test_a_file_that_cannot_be_read_unambiguously_is_refused(tmp_path, capsys, name, text, says):
    root = index_dataset(tmp_path / "mine")
    path = write(root / name, text)
    with pytest.raises(UserError, match=says.replace("[", r"\[").replace("]", r"\]")):
        read_classes(path)
    message = refused(root, capsys, "--classes", path)
    assert path in message and says in message


def test_classes_files_lying_in_the_folder_are_used_or_said_unused(tmp_path, capsys):
    root = index_dataset(tmp_path / "mine")
    write(root / "classes.csv", TRIAL)
    write(root / "classes.json", json.dumps([n for n, _ in EXPECTED]))
    assert prepare(root)["classes_file"] == str(root / "classes.csv")
    out = capsys.readouterr().out
    assert f"notice: {root / 'classes.json'} is not read ({root / 'classes.csv'} comes first)" in out
    other = write(tmp_path / "other.txt", "".join(n + "\n" for n, _ in EXPECTED))
    prepare(root, "--classes", other)
    out = capsys.readouterr().out
    assert f"notice: {root / 'classes.csv'} is not read (--classes names another file)" in out


def test_background_class():
    assert background_class(["_background_", "dog", "cat"]) == 0
    assert background_class(["sky", "Background", "road"]) == 1
    assert background_class(["road", "crack"]) == 0            # binary: index 0
    assert background_class(["road", "sky", "car"]) is None


# ------------------------------------------------------------------------------------------ layouts

def carvana(root, n=5):
    """Kaggle Carvana: train/x.jpg + train_masks/x_mask.gif (0/1 palettized), test/ without masks."""
    for i in range(n):
        rgb, label = shapes(np.random.default_rng([5, i]), 32, 48)
        for folder in ("train", "train_masks", "test"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "train" / f"car{i}.jpg"), rgb[:, :, ::-1])
        gif = Image.fromarray((label > 0).astype(np.uint8), "P")
        gif.putpalette([0, 0, 0, 255, 255, 255])
        gif.save(root / "train_masks" / f"car{i}_mask.gif")
    cv2.imwrite(str(root / "test" / "new.jpg"), rgb[:, :, ::-1])
    return root


def test_carvana_layout_with_gif_masks_gets_a_visible_foreground(tmp_path, capsys):
    root = carvana(tmp_path / "carvana")
    desc = prepare(root)
    out = capsys.readouterr().out
    assert "found masks: train/ + train_masks/ (mask = image name + '_mask'), test/" in out
    assert desc["samples"] == {"train": 4, "val": 1, "test": 1}
    assert desc["class_names"] == ["background", "foreground"] and desc["background"] == 0
    assert desc["palette"] == [[0, 0, 0], [255, 0, 0]]  # not the GIF's white
    image, label = open(root / "cgnet_train_list.txt").readline().split()
    stem = os.path.basename(image)[:-4]
    gif = np.asarray(Image.open(root / "train_masks" / f"{stem}_mask.gif"))
    assert (cv2.imread(str(root / label), cv2.IMREAD_UNCHANGED) == gif).all()
    assert open(root / "cgnet_test_list.txt").read() == "test/new.jpg\n"


def test_a_classes_file_gives_a_binary_dataset_its_colours(tmp_path):
    root = carvana(tmp_path / "carvana")
    write(root / "classes.txt", "road 10 10 10\ncrack 250 250 0\n")
    assert prepare(root)["palette"] == [[10, 10, 10], [250, 250, 0]]


def side_by_side(root, suffixes, n=3):
    root.mkdir(parents=True)
    for i in range(n):
        rgb, label = shapes(np.random.default_rng([6, i]), 32, 48)
        cv2.imwrite(str(root / f"img_{i:03d}.jpg"), rgb[:, :, ::-1])
        for suffix in suffixes:
            cv2.imwrite(str(root / f"img_{i:03d}{suffix}.png"), label)
    return root


def test_images_and_masks_side_by_side_pair_by_their_suffix(tmp_path, capsys):
    root = side_by_side(tmp_path / "kaggle", ["_label"])
    desc = prepare(root)
    assert f"side by side in {root} (mask = image name + '_label')" in capsys.readouterr().out
    assert desc["samples"]["train"] + desc["samples"]["val"] == 3
    assert all(row.split()[1].endswith("_label.png") for row in open(root / "cgnet_train_list.txt"))


def test_two_suffixes_pairing_as_well_are_refused_until_one_is_given(tmp_path, capsys):
    root = side_by_side(tmp_path / "kaggle", ["_label", "_mask"])
    message = refused(root, capsys)
    assert "pair with their images by two name endings, '_label' and '_mask'" in message and "--mask_suffix" in message
    prepare(root, "--mask_suffix", "_mask")
    assert all(row.split()[1].endswith("_mask.png") for row in open(root / "cgnet_train_list.txt"))


def test_images_and_masks_folders_with_a_suffix(tmp_path):
    root = index_dataset(tmp_path / "mine")
    for mask in (root / "masks").glob("*.png"):
        mask.rename(mask.with_name(mask.stem + "_gt.png"))
    assert prepare(root)["samples"]["train"] == 3


@pytest.mark.parametrize("count, fraction, val", [(48, 0.2, 10), (10, 0.25, 2), (7, 0.1, 1), (2, 0.5, 1)])
def test_the_val_split_is_the_nearest_count_and_deterministic(count, fraction, val):
    names = [f"images/{i:03d}.png" for i in range(count)]
    held = held_out(names, fraction)
    assert len(held) == val and held == held_out(list(reversed(names)), fraction)


def test_the_val_split_of_a_dataset_is_exact(tmp_path):
    root = index_dataset(tmp_path / "mine", n=12, size=(16, 16))
    assert prepare(root, "--val_fraction", "0.25")["samples"] == {"train": 9, "val": 3, "test": 0}


def test_roboflow_masks_side_by_side_in_split_folders(tmp_path, capsys):
    root = tmp_path / "rf"
    for split, n in (("train", 3), ("valid", 2)):
        folder = root / split
        folder.mkdir(parents=True)
        for i, (rgb, label) in enumerate(shapes(np.random.default_rng([8, i]), 32, 48) for i in range(n)):
            cv2.imwrite(str(folder / f"x{i}_jpg.rf.ab12.jpg"), rgb[:, :, ::-1])
            cv2.imwrite(str(folder / f"x{i}_jpg.rf.ab12_mask.png"), label)
    write(root / "train" / "_classes.csv", "Pixel Value, Class\n0, background\n1, disc\n2, box\n3, triangle\n4, bar\n")
    desc = prepare(root)
    assert desc["samples"] == {"train": 3, "val": 2, "test": 0}
    assert desc["class_names"] == ["background", "disc", "box", "triangle", "bar"]


def test_split_folders_each_holding_images_and_masks(tmp_path):
    for split in ("train", "val"):
        index_dataset(tmp_path / "mine" / split, n=2)
    assert prepare(tmp_path / "mine")["samples"] == {"train": 2, "val": 2, "test": 0}
