import numpy as np
import pytest
from PIL import Image

from dataset.palettes import CAMVID_PALETTE, CITYSCAPES_PALETTE
from utils.files import save_png
from utils.vis import SEPARATOR, overlay, panel


def test_overlay_blends_known_classes_and_leaves_ignore_alone():
    image = np.full((2, 3, 3), 100, np.uint8)
    label = np.array([[0, 13, 255], [10, 19, 0]])  # 19 is past the 19 Cityscapes classes
    out = overlay(image, label, CITYSCAPES_PALETTE, alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert out[0, 0].tolist() == [114, 82, 114]   # (100 + road (128, 64, 128)) / 2
    assert out[0, 1].tolist() == [50, 50, 121]    # car (0, 0, 142)
    assert out[0, 2].tolist() == [100, 100, 100]  # ignore: unblended
    assert out[1, 1].tolist() == [100, 100, 100]
    assert np.array_equal(overlay(image, label, CITYSCAPES_PALETTE, alpha=0.0), image)


def test_overlay_leaves_the_background_class_unblended():
    image = np.full((1, 3, 3), 200, np.uint8)
    label = np.array([[0, 1, 255]])
    binary = [[0, 0, 0], [255, 0, 0]]
    assert overlay(image, label, binary)[0, 0].tolist() == [100, 100, 100]  # blended: the photo darkened
    out = overlay(image, label, binary, background=0)
    assert out[0, 0].tolist() == [200, 200, 200] and out[0, 1].tolist() == [228, 100, 100]
    assert out[0, 2].tolist() == [200, 200, 200]


def test_panel_puts_input_prediction_and_ground_truth_side_by_side():
    h, w = 4, 5
    image = np.full((h, w, 3), 7, np.uint8)
    pred = np.full((h, w), 3, np.int64)
    gt = np.full((h, w), 3, np.uint8)
    gt[0, 0] = 11  # CamVid void
    out = panel(image, pred, CAMVID_PALETTE, gt=gt, ignore_label=11)
    assert out.shape == (h, 3 * w + 2 * SEPARATOR, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:, :w], image)
    assert (out[:, w:w + SEPARATOR] == 255).all()
    assert out[1, w + SEPARATOR].tolist() == list(CAMVID_PALETTE[3])
    gt_tile = out[:, 2 * (w + SEPARATOR):]
    assert gt_tile[0, 0].tolist() == [0, 0, 0]
    assert gt_tile[1, 1].tolist() == list(CAMVID_PALETTE[3])
    assert panel(image, pred, CAMVID_PALETTE).shape == (h, 2 * w + SEPARATOR, 3)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError):
        overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8), CAMVID_PALETTE)


def test_save_png_rgb_round_trip(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    path = tmp_path / "sub" / "x.png"
    save_png(path, rgb)
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), rgb)
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]  # no temporary file left behind
