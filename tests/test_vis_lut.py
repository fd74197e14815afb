"""The uint8 colouring and blending (table lookups, cv2.addWeighted) against the float arithmetic they replace."""
import numpy as np
import pytest

from dataset.palettes import CAMVID_PALETTE, CITYSCAPES_PALETTE
from utils.vis import colorize, overlay


def float_overlay(image, label, palette, alpha):
    """The blend in float64, rounded to nearest; pixels of no class keep the image."""
    known = (label >= 0) & (label < len(palette))
    colours = np.asarray(palette, np.float64)[np.where(known, label, 0)]
    blended = np.rint((1 - alpha) * image + alpha * colours)
    return np.where(known[..., None], blended, image).astype(np.uint8)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
@pytest.mark.parametrize("palette", [CAMVID_PALETTE, CITYSCAPES_PALETTE])
def test_overlay_equals_the_float_blend(dtype, palette):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    label = rng.integers(0, len(palette) + 2, (37, 53)).astype(dtype)  # some pixels of no class
    if dtype == np.int64:
        label[0, :3] = [-1, 255, 300]
    for alpha in (0.0, 0.5, 1.0):  # weights exact in float32: equal to the last grey level
        assert np.array_equal(overlay(image, label, palette, alpha), float_overlay(image, label, palette, alpha))
    for alpha in (0.3, 0.7):  # float32 inside cv2.addWeighted: a half-way sum may round the other way
        diff = np.abs(overlay(image, label, palette, alpha).astype(int) - float_overlay(image, label, palette, alpha))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.05


def test_overlay_takes_bgr_with_a_reversed_palette_and_views():
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    label = rng.integers(0, 11, (8, 9)).astype(np.uint8)
    rgb_result = overlay(bgr[:, :, ::-1], label, CAMVID_PALETTE)  # a view with negative strides
    bgr_result = overlay(bgr, label, [c[::-1] for c in CAMVID_PALETTE])
    assert np.array_equal(rgb_result[:, :, ::-1], bgr_result)


def test_colorize_uint8_lookup_equals_indexing():
    label = np.arange(256, dtype=np.uint8).reshape(16, 16)
    table = np.zeros((256, 3), np.uint8)
    table[:19] = CITYSCAPES_PALETTE
    assert np.array_equal(colorize(label, CITYSCAPES_PALETTE), table[label])
    assert np.array_equal(colorize(label.astype(np.int64), CITYSCAPES_PALETTE), table[label])
