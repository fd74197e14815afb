"""Pictures for eval/test: a prediction blended on its image, and input | prediction | ground truth panels."""
import numpy as np

SEPARATOR = 4  # px of white between panel tiles


def palette_array(palette):
    """A flat 768-entry PIL palette; unlisted indices (e.g. the ignore label) are black."""
    flat = np.zeros(768, np.uint8)
    flat[:3 * len(palette)] = np.asarray(palette, np.uint8).ravel()
    return flat


def colorize(label, palette):
    """(H, W) class indices -> (H, W, 3) RGB uint8."""
    table = palette_array(palette).reshape(256, 3)
    return table[label]


def _check(image_rgb, label):
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.shape[:2] != label.shape:
        raise ValueError(f"expected an (H, W, 3) image and an (H, W) label, got {image_rgb.shape} and {label.shape}")


def _known(label, palette):
    return (label >= 0) & (label < len(palette))


def overlay(image_rgb, label, palette, alpha=0.5):
    """(H, W, 3) uint8 image with the class colours blended in; pixels of no class (ignore) keep the image."""
    _check(image_rgb, label)
    out = np.empty(image_rgb.shape, np.uint8)
    rows = max(1, 2 ** 20 // max(1, label.shape[1]))  # a band of ~1 Mpixel at a time: float copies of a
    for y in range(0, label.shape[0], rows):          # 48-megapixel photo would take gigabytes
        image, band = image_rgb[y:y + rows], label[y:y + rows]
        known = _known(band, palette)
        colours = colorize(np.where(known, band, 0), palette).astype(np.float32)
        blended = (1 - alpha) * image.astype(np.float32) + alpha * colours
        out[y:y + rows] = np.clip(np.where(known[..., None], np.rint(blended), image), 0, 255)
    return out


def _colour(label, palette):
    """Colours for labels; anything outside the palette (the ignore label) is black."""
    known = _known(label, palette)
    rgb = colorize(np.where(known, label, 0), palette)
    rgb[~known] = 0
    return rgb


def panel(image_rgb, pred, palette, gt=None, ignore_label=None):
    """input | prediction | ground truth (when given) side by side, as in the paper's Figure 6."""
    _check(image_rgb, pred)
    tiles = [image_rgb.astype(np.uint8), _colour(pred, palette)]
    if gt is not None:
        _check(image_rgb, gt)
        gt_rgb = _colour(gt, palette)
        if ignore_label is not None:
            gt_rgb[gt == ignore_label] = 0
        tiles.append(gt_rgb)
    white = np.full((image_rgb.shape[0], SEPARATOR, 3), 255, np.uint8)
    parts = [tiles[0]]
    for tile in tiles[1:]:
        parts += [white, tile]
    return np.concatenate(parts, axis=1)
