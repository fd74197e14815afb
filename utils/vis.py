"""Pictures for eval/test: a prediction blended on its image, input | prediction | ground truth panels, and
the confusion matrix."""
import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

SEPARATOR = 4  # px of white between panel tiles


def palette_array(palette):
    """A flat 768-entry PIL palette; unlisted indices (e.g. the ignore label) are black."""
    flat = np.zeros(768, np.uint8)
    flat[:3 * len(palette)] = np.asarray(palette, np.uint8).ravel()
    return flat


def colour_table(palette):
    """(256, 1, 3) uint8: cv2.LUT's table of the class colours; unlisted indices (e.g. the ignore label) black."""
    return palette_array(palette).reshape(256, 1, 3)


def colorize(label, palette):
    """(H, W) class indices -> (H, W, 3) uint8 colours. uint8 labels (what the segmenter predicts) go through one
    table lookup, cv2.LUT, several times faster than numpy's palette[label] on a video frame."""
    if label.dtype == np.uint8 and label.ndim == 2 and label.size:
        return cv2.LUT(cv2.merge([label, label, label]), colour_table(palette))
    return palette_array(palette).reshape(256, 3)[label]


def _check(image_rgb, label):
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.shape[:2] != label.shape:
        raise ValueError(f"expected an (H, W, 3) image and an (H, W) label, got {image_rgb.shape} and {label.shape}")


def _known(label, palette):
    if label.dtype == np.uint8:
        return label < len(palette)
    return (label >= 0) & (label < len(palette))


def overlay(image_rgb, label, palette, alpha=0.5, background=None):
    """(H, W, 3) uint8 image with the class colours blended in; pixels of no class (ignore) keep the image, and so
    do those of the class `background` (an index, e.g. dataset.classes_file.background_class's), so that a
    binary dataset's black background does not darken the whole photo.
    All in uint8: the colours by table lookup, the blend by cv2.addWeighted (float32 inside, rounded to nearest as
    np.rint: at alpha 0.5 it equals the float blend exactly). The channel order is the image's and the palette's:
    a BGR frame with the palette's colours reversed gives the BGR overlay, with no copy of the frame."""
    _check(image_rgb, label)
    image_rgb = np.ascontiguousarray(image_rgb, dtype=np.uint8)
    out = np.empty(image_rgb.shape, np.uint8)
    rows = max(1, 2 ** 22 // max(1, label.shape[1]))  # bands of ~4 Mpixel: bounded copies of a 48-megapixel photo
    for y in range(0, label.shape[0], rows):
        image, band = image_rgb[y:y + rows], label[y:y + rows]
        known = _known(band, palette)
        if background is not None:
            known &= band != background
        every = bool(known.all())
        codes = band if band.dtype == np.uint8 else np.where(known, band, 0).astype(np.uint8)
        cv2.addWeighted(image, 1 - alpha, colorize(codes, palette), alpha, 0.0, dst=out[y:y + rows])
        if not every:
            np.copyto(out[y:y + rows], image, where=~known[..., None])
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


def _font(size):
    try:
        return ImageFont.load_default(size=size)  # a scalable font where PIL has FreeType
    except (TypeError, ValueError, OSError, ImportError):
        return ImageFont.load_default()


def confusion_image(matrix, names, cell=None):
    """The confusion matrix (rows: ground truth, columns: prediction) normalised per row, as an RGB uint8
    picture: white (0 %) to dark blue (100 %), the percentage in each cell, class names on both axes and
    each row's pixel count; rows without ground truth are grey. Drawn with PIL (a runtime dependency), so it
    works wherever evaluation runs."""
    m = np.asarray(matrix, np.float64)
    n = len(names)
    totals = m.sum(1)
    share = np.divide(m, totals[:, None], out=np.zeros_like(m), where=totals[:, None] > 0)
    cell = cell or (34 if n <= 24 else max(8, 800 // n))
    font = _font(11 if cell >= 24 else max(6, cell - 3))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = lambda text: int(np.ceil(probe.textlength(text, font=font)))  # noqa: E731
    label_w = max(width(str(name)) for name in names) + 12
    count_w = max(width(f"{int(t):,}") for t in totals) + 12
    title_h = 22
    x0, y0 = label_w, title_h + label_w          # the grid's top-left corner; column names stand above it
    title = "rows: ground truth, columns: prediction (% of each row's pixels)"
    image = Image.new("RGB", (max(x0 + n * cell + count_w, width(title) + 12), y0 + n * cell + 8), "white")
    draw = ImageDraw.Draw(image)
    draw.text((6, 4), title, fill="black", font=font)
    dark = np.array([8, 48, 107], np.float64)
    for i in range(n):
        for j in range(n):
            if totals[i] == 0:
                colour = (200, 200, 200)
            else:
                colour = tuple(int(v) for v in np.rint(255 + (dark - 255) * share[i, j]))
            box = (x0 + j * cell, y0 + i * cell, x0 + (j + 1) * cell - 1, y0 + (i + 1) * cell - 1)
            draw.rectangle(box, fill=colour)
            if totals[i] and cell >= 24:
                text = f"{share[i, j] * 100:.0f}"
                draw.text((box[0] + (cell - width(text)) / 2, box[1] + cell / 2 - 7), text,
                          fill="white" if share[i, j] > 0.5 else "black", font=font)
        draw.text((x0 - width(str(names[i])) - 6, y0 + i * cell + cell / 2 - 7), str(names[i]), fill="black",
                  font=font)
        draw.text((x0 + n * cell + 6, y0 + i * cell + cell / 2 - 7), f"{int(totals[i]):,}", fill="black", font=font)
    for j, name in enumerate(names):  # column names, written sideways
        text = Image.new("RGB", (width(str(name)) + 4, cell), "white")
        ImageDraw.Draw(text).text((2, cell / 2 - 7), str(name), fill="black", font=font)
        text = text.rotate(90, expand=True)
        image.paste(text, (x0 + j * cell, y0 - 6 - text.height))
    return np.asarray(image)
