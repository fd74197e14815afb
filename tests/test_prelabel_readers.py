"""Our pre-labels (tools/segment.py --save_annotations) read by the tools people use, not only by our own reader:
labelme's own LabelFile + shapes_to_label and datumaro's coco_instances importer (what CVAT imports COCO with)
give back the authors' CamVid model's prediction of a real CamVid image on >= 99 % of its pixels (issue 32,
item 2). Also: every pixel of a class in exactly one COCO annotation, categories first, paths inside OUT."""
import json
import os
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from tools import segment
from utils.errors import run_cli

WEIGHTS = shared_path("camvid", "weights", "model_800.pth")
VAL = shared_path("camvid", "val")
pytestmark = pytest.mark.skipif(WEIGHTS is None or VAL is None,
                                reason="the real CamVid val images and the authors' weights are absent "
                                       "(../shared/camvid beside the clone, or set CGNET_SHARED)")
IMAGES = ["0016E5_07959.png", "0016E5_07961.png"]


@pytest.fixture(scope="module")
def prelabelled(tmp_path_factory):
    """{format: OUT} of the two real images pre-labelled in both formats, and {stem: the predicted class ids}."""
    root = tmp_path_factory.mktemp("prelabel")
    (root / "new").mkdir()
    for name in IMAGES:
        shutil.copy(os.path.join(VAL, name), root / "new" / name)
    outs = {}
    for fmt in ("labelme", "coco"):
        outs[fmt] = root / fmt
        run_cli(segment.main, segment.get_args_parser(), [str(root / "new"), "--resume", WEIGHTS, "--out",
                                                          str(outs[fmt]), "--cuda", "false", "--save_annotations", fmt])
    predicted = {os.path.splitext(n)[0]: cv2.imread(str(outs["coco"] / (os.path.splitext(n)[0] + ".png")),
                                                     cv2.IMREAD_UNCHANGED) for n in IMAGES}
    return outs, predicted


def names_of(out):
    return (out / "classes.txt").read_text().split()


def test_labelme_reads_our_labelme_files_as_predicted(prelabelled, monkeypatch):
    # labelme's module lifts Pillow's decompression-bomb limit for the whole process: put back after the test
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    pytest.importorskip("labelme", reason="labelme is a development requirement (requirements-dev.txt)")
    from labelme._label_file import LabelFile
    from labelme.utils import shapes_to_label
    outs, predicted = prelabelled
    out = outs["labelme"]
    lines = (out / "labels.txt").read_text().split()
    assert lines[:2] == ["__ignore__", "_background_"] and lines[2:] == names_of(out)  # labelme2voc's form
    value = {name: i for i, name in enumerate(names_of(out))}
    value["_background_"] = 255
    for stem, pred in predicted.items():
        path = out / "images" / f"{stem}.json"
        lf = LabelFile(str(path))
        assert lf.image_path == f"{stem}.png" and (out / "images" / lf.image_path).is_file()  # inside OUT
        cls, _ = shapes_to_label(pred.shape, lf.shapes, value)
        assert (cls == pred).mean() >= 0.99, (stem, (cls == pred).mean())


def test_datumaro_reads_our_coco_file_as_predicted(prelabelled):
    pytest.importorskip("datumaro", reason="datumaro is a development requirement (requirements-dev.txt)")
    import datumaro as dm
    from datumaro.plugins.transforms import PolygonsToMasks
    outs, predicted = prelabelled
    out = outs["coco"]
    text = (out / "annotations" / "instances_default.json").read_text()
    assert text.startswith('{"categories"')
    doc = json.loads(text)
    assert [c["name"] for c in doc["categories"]] == names_of(out)
    dataset = dm.Dataset.import_from(str(out), "coco_instances")
    labels = [c.name for c in dataset.categories()[dm.AnnotationType.label]]
    for item in dataset:
        pred = predicted[os.path.basename(item.id)]
        assert item.media.has_data and item.media.data.shape[:2] == pred.shape  # the image, found inside OUT
        back = np.full(pred.shape, 255, np.uint8)
        cover = np.zeros(pred.shape, np.int32)
        for ann in item.annotations:
            if ann.type == dm.AnnotationType.bbox:
                continue  # a crowd region's box, beside its mask
            if ann.type == dm.AnnotationType.polygon:  # rasterized as datumaro itself does (its polygons_to_masks)
                ann = PolygonsToMasks.convert_polygon(ann, *pred.shape)
            mask = ann.image.astype(bool)
            back[mask] = names_of(out).index(labels[ann.label])
            cover += mask
        assert cover.max() == 1  # no pixel in two annotations: the stacking order does not matter
        assert (back == pred).mean() >= 0.99, (item.id, (back == pred).mean())
