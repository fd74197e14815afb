"""The layouts table (dataset/layouts.py), one test per layout, each made in the shape the tool or repository
really writes it (issue 32, items 3 and 4): mmsegmentation's img_dir/ + ann_dir/, the U-Net tutorial's
train/image/ + train/label/, image-segmentation-keras' images_prepped_*/ + annotations_prepped_*/, ADE20K's
training/ and validation/, KITTI's training/image_2/ + training/semantic/, CVAT's COCO 1.0 with images/default/;
a COCO file of several MB with its categories last; and --images/--masks and --pairs for any other layout."""
import csv
import json

import cv2
import numpy as np
import pytest

from conftest import prepare, refused
from dataset.synthetic import SHAPE_CLASSES, shapes

H, W = 24, 32


def scene(i, seed=0):
    return shapes(np.random.default_rng([seed, i]), H, W)


def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), array)


def pair(root, image, mask, i, binary=False, seed=0):
    rgb, label = scene(i, seed)
    write(root / image, rgb[:, :, ::-1])
    write(root / mask, np.where(label > 0, 255, 0).astype(np.uint8) if binary else label)


def lists(root):
    """{split: [(image, mask or None)]} of the lists prepare_dataset.py wrote."""
    out = {}
    for split in ("train", "val", "test"):
        path = root / f"cgnet_{split}_list.txt"
        if path.is_file():
            out[split] = [tuple(line.split()) for line in path.read_text().splitlines()]
    return out


def laid_out(root, image, mask, counts):
    """A dataset of `counts` {split: n} pairs at the paths `image` and `mask` ({split} and {i} filled in),
    prepared; its lists."""
    for split, n in counts.items():
        for i in range(n):
            pair(root, image.format(split=split, i=i), mask.format(split=split, i=i), i)
    prepare(root)
    return lists(root)


def test_mmsegmentation_img_dir_and_ann_dir(tmp_path):
    found = laid_out(tmp_path / "mmseg", "img_dir/{split}/{split}{i}.jpg", "ann_dir/{split}/{split}{i}.png",
                     {"train": 3, "val": 2})
    assert len(found["train"]) == 3 and len(found["val"]) == 2
    assert found["val"][0] == ("img_dir/val/val0.jpg", "ann_dir/val/val0.png")


def test_unet_membrane_image_and_label_per_split(tmp_path):
    root = tmp_path / "membrane"
    for i in range(5):
        pair(root, f"train/image/{i}.png", f"train/label/{i}.png", i, binary=True)
    for i in range(2):  # the tutorial's test/: images and its own predictions, no masks
        write(root / f"test/{i}.png", scene(i, 1)[0])
        write(root / f"test/{i}_predict.png", scene(i, 1)[1])
    desc = prepare(root)
    found = lists(root)
    assert desc["class_names"] == ["background", "foreground"]  # binary 0/255 masks
    assert len(found["train"]) + len(found["val"]) == 5 and found["train"][0][1].startswith(".cgnet/labels/train/")


def test_image_segmentation_keras_prepped_folders(tmp_path):
    found = laid_out(tmp_path / "dataset1", "images_prepped_{split}/0001TP_{i:06d}.png",
                     "annotations_prepped_{split}/0001TP_{i:06d}.png", {"train": 4, "test": 2})
    assert len(found["train"]) + len(found["val"]) == 4 and len(found["test"]) == 2
    assert found["train"][0][0].startswith("images_prepped_train/") and found["test"][0] == (
        "images_prepped_test/0001TP_000000.png",)


def test_ade20k_training_and_validation(tmp_path):
    found = laid_out(tmp_path / "ADEChallengeData2016", "images/{split}/ADE_{split}_{i:08d}.jpg",
                     "annotations/{split}/ADE_{split}_{i:08d}.png", {"training": 3, "validation": 2})
    assert len(found["train"]) == 3 and len(found["val"]) == 2


def test_kitti_image_2_and_semantic(tmp_path):
    root = tmp_path / "kitti"
    for i in range(4):
        pair(root, f"training/image_2/{i:06d}_10.png", f"training/semantic/{i:06d}_10.png", i)
        rgb = scene(i, 2)[1]
        write(root / f"training/semantic_rgb/{i:06d}_10.png", np.dstack([rgb] * 3))  # KITTI ships both
    for i in range(2):
        write(root / f"testing/image_2/{i:06d}_10.png", scene(i, 3)[0])
    prepare(root)
    found = lists(root)
    assert len(found["train"]) + len(found["val"]) == 4 and len(found["test"]) == 2
    assert all(m.startswith("training/semantic/") for _, m in found["train"])


def coco_export(root, subset_folder=True, pad_annotations=0):
    """A CVAT COCO 1.0 export with its images (images/default/, file_name the bare name); categories last, as
    some writers put them, after annotations padded with many points to make the file several MB."""
    folder = root / "images" / ("default" if subset_folder else "")
    images, annotations = [], []
    for i in range(3):
        rgb, label = scene(i, 4)
        write(folder / f"frame_{i:06d}.png", rgb[:, :, ::-1])
        images.append({"id": i + 1, "file_name": f"frame_{i:06d}.png", "height": H, "width": W})
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "area": 16,
                            "bbox": [2, 2, 4, 4], "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]]})
    for k in range(pad_annotations):  # tiny triangles of many points at one pixel: megabytes of numbers
        annotations.append({"id": 100 + k, "image_id": 1, "category_id": 2, "iscrowd": 0, "area": 1,
                            "bbox": [0, 0, 1, 1], "segmentation": [[0.25, 0.25, 0.75, 0.25, 0.75, 0.75] * 200]})
    doc = {"licenses": [], "info": {}, "images": images, "annotations": annotations,
           "categories": [{"id": 1, "name": "box", "supercategory": ""},
                          {"id": 2, "name": "disc", "supercategory": ""}]}
    path = root / "annotations" / "instances_default.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_cvat_coco_with_images_in_images_default(tmp_path, capsys):
    root = tmp_path / "cvat"
    coco_export(root)
    desc = prepare(root, "--val_fraction", "0")
    assert "found COCO" in capsys.readouterr().out and desc["samples"]["train"] == 3
    assert lists(root)["train"][0][0] == "images/default/frame_000000.png"


def test_a_coco_file_of_several_mb_with_its_categories_last_is_found(tmp_path, capsys):
    root = tmp_path / "big"
    path = coco_export(root, subset_folder=False, pad_annotations=900)
    assert path.stat().st_size > 3 * 2 ** 20
    assert json.loads(path.read_text()).popitem()[0] == "categories"  # the last key, megabytes in
    desc = prepare(root, "--val_fraction", "0")
    assert "found COCO" in capsys.readouterr().out and desc["class_names"] == ["background", "box", "disc"]


def odd_layout(root):
    """A layout no rule knows: photos/ and truth/ with a split level of their own names."""
    for split, n in (("fit", 3), ("check", 2)):
        for i in range(n):
            pair(root, f"photos/{split}/p{i}.jpg", f"truth/{split}/p{i}.png", i)


def test_a_layout_detection_misses_names_the_explicit_flags(tmp_path, capsys):
    root = tmp_path / "odd"
    odd_layout(root)
    (root / "photos" / "notes.txt").write_text("")
    message = refused(root, capsys)
    assert "none of the layouts" in message and all(f in message for f in ("--images", "--masks", "--pairs"))


def test_images_and_masks_given_per_split(tmp_path):
    root = tmp_path / "odd"
    odd_layout(root)
    prepare(root, "--images", str(root / "photos/fit"), "--masks", str(root / "truth/fit"),
            "--images", str(root / "photos/check"), "--masks", str(root / "truth/check"), "--val_fraction", "0.34")
    found = lists(root)
    assert len(found["train"]) + len(found["val"]) == 5  # no split word: the val share is drawn
    root2 = tmp_path / "named"
    for split in ("train", "val"):
        for i in range(2):
            pair(root2, f"rgb/{split}/x{i}.jpg", f"gt_{split}/x{i}.png", i)
    prepare(root2, "--images", str(root2 / "rgb/train"), "--masks", str(root2 / "gt_train"),
            "--images", str(root2 / "rgb/val"), "--masks", str(root2 / "gt_val"))
    found = lists(root2)
    assert [m for _, m in found["val"]] == ["gt_val/x0.png", "gt_val/x1.png"]  # the split from the folder's name


def test_a_csv_of_pairs_with_splits(tmp_path, capsys):
    root = tmp_path / "odd"
    odd_layout(root)
    rows = [("image", "mask", "split")] + [(f"photos/fit/p{i}.jpg", f"truth/fit/p{i}.png", "train") for i in range(3)]
    rows += [(f"photos/check/p{i}.jpg", f"truth/check/p{i}.png", "validation") for i in range(2)]
    with open(root / "pairs.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    prepare(root, "--pairs", str(root / "pairs.csv"))
    found = lists(root)
    assert len(found["train"]) == 3 and found["val"][1] == ("photos/check/p1.jpg", "truth/check/p1.png")
    with open(root / "bad.csv", "w") as f:
        f.write("photos/fit/p0.jpg,truth/fit/nothing.png\n")
    message = refused(root, capsys, "--pairs", str(root / "bad.csv"))
    assert "row 1 names" in message and "nothing.png" in message


@pytest.mark.parametrize("argv, says", [(["--images", "X"], "--images is given 1 time(s) and --masks 0"),
                                        (["--images", "nope", "--masks", "nope"], "--images nope is not a folder")])
def test_explicit_flags_refused_in_one_sentence(tmp_path, capsys, argv, says):
    root = tmp_path / "odd"
    odd_layout(root)
    assert says in refused(root, capsys, *argv)


def test_every_layout_of_the_table_is_named_in_the_refusal():
    from dataset import layouts
    assert all(name in layouts.LAYOUTS for name, _ in layouts.TABLE) and SHAPE_CLASSES


def test_a_coco_file_that_annotates_every_pixel_gets_no_empty_background(tmp_path, capsys):
    """Our COCO pre-labels of a model without a background class, after a CVAT round trip (no classes.txt): the
    categories are the classes, in their order, so fine-tuning that model keeps its classifier (item 1)."""
    from dataset.annotations import CocoWriter
    root = tmp_path / "cvat"
    writer = CocoWriter(["road", "car", "sky"])
    for i in range(3):
        rgb, label = scene(i, 5)
        write(root / "images" / f"x{i}.png", rgb[:, :, ::-1])
        writer.add(f"x{i}.png", np.minimum(label, 2))
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_default.json").write_text(json.dumps(writer.document()))
    desc = prepare(root, "--val_fraction", "0")
    assert desc["class_names"] == ["road", "car", "sky"] and "no background class is added" in capsys.readouterr().out
    masks = {line.split()[0]: cv2.imread(str(root / line.split()[1]), cv2.IMREAD_UNCHANGED)
             for line in (root / "cgnet_train_list.txt").read_text().splitlines()}
    assert all((masks[f"images/x{i}.png"] == np.minimum(scene(i, 5)[1], 2)).all() for i in range(3))  # exact
