"""LabelMe JSON files (LabelMe 4 and 5) as class-index masks.

A file per image, beside the images or in a folder of its own; its `imagePath` is relative to the file (a
missing image is looked for beside the file by its name, then taken from the embedded `imageData`). Shapes are
drawn in file order, each later one on top, as LabelMe draws them, with PIL's polygon fill as LabelMe's own
shape_to_mask: `polygon` (3 points or more), `rectangle` (2 corners), `circle` (centre and a point on the
circle) and `mask` (a PNG in the shape, placed at its first point). Lines and points cover no area and are
left out with a notice. labelme2voc's conventions hold where the labels define a background (a classes file
naming `_background_` or background, or a shape so labelled): pixels no shape covers are that class; where they
define none, those pixels (the gaps between polygons) are ignored (255), not a class. Shapes labelled `__ignore__`
are the ignore label, and a classes file (labels.txt, classes.txt) beside the files fixes the class order.
"""
import base64
import io
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dataset.classes_file import BACKGROUND_NAMES, IGNORE_NAME
from utils.errors import UserError
from utils.files import IMAGE_EXTENSIONS, top_level_keys

AREAS = {"polygon": 3, "rectangle": 2, "circle": 2, "mask": 1}  # shape type: the points it needs
NO_AREA = ("line", "linestrip", "point", "points")
IGNORE = 255
KEYS = ("shapes", "imagePath")


def load(path):
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"LabelMe file {path} cannot be read ({getattr(e, 'strerror', None) or e}); save it again "
                        f"from LabelMe.") from None


def find(data_dir):
    """The LabelMe files under data_dir (hidden folders left out), sorted."""
    found = []
    for path in sorted(data_dir.rglob("*.json")):
        rel = path.relative_to(data_dir).as_posix()
        if "/." in f"/{rel}" or path.name.startswith("cgnet_"):
            continue
        if top_level_keys(path, KEYS) >= set(KEYS):
            found.append(path)
    return found


def image_of(path, doc):
    """(image path, or None when only the embedded imageData holds it)."""
    name = str(doc.get("imagePath") or "").replace("\\", "/")  # LabelMe on Windows writes backslashes
    candidates = [path.parent / name] if name else []
    candidates += [path.with_suffix(e) for e in IMAGE_EXTENSIONS] + [path.with_suffix(e.upper()) for e in
                                                                     IMAGE_EXTENSIONS]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None and not doc.get("imageData"):
        raise UserError(f"LabelMe file {path} names the image {name or '(none)'}, which does not exist beside it, "
                        f"and embeds no imageData; put the image at that path or save the file again with the "
                        f"image data.")
    return found


def embedded_image(path, doc):
    """The BGR image embedded in a LabelMe file."""
    try:
        with Image.open(io.BytesIO(base64.b64decode(doc["imageData"]))) as im:
            return np.ascontiguousarray(np.asarray(im.convert("RGB"))[:, :, ::-1])
    except Exception:  # PIL and base64 raise several types for broken data, all alike here
        raise UserError(f"LabelMe file {path} embeds imageData that is not an image; save it again from "
                        f"LabelMe.") from None


def area_shapes(path, doc):
    """The shapes that cover an area, checked; and the number left out (lines, points)."""
    kept, left = [], 0
    for n, shape in enumerate(doc["shapes"], 1):
        kind = shape.get("shape_type") or "polygon"
        label = shape.get("label")
        if kind in NO_AREA:
            left += 1
            continue
        if kind not in AREAS:
            raise UserError(f"LabelMe file {path} shape {n} ({label!r}) has the type {kind!r}; this tool reads "
                            f"{', '.join(AREAS)} (and leaves out {', '.join(NO_AREA[:3])}).")
        points = shape.get("points") or []
        if not isinstance(label, str) or not label:
            raise UserError(f"LabelMe file {path} shape {n} has no label; label it in LabelMe.")
        if len(points) < AREAS[kind]:
            raise UserError(f"LabelMe file {path} shape {n} ({label!r}) is a {kind} of {len(points)} point(s), "
                            f"fewer than the {AREAS[kind]} it needs; delete or redraw it.")
        kept.append(shape)
    return kept, left


def class_names(found_labels, table):
    """(names, background index or None): the classes file's order (table) or, without one, the labels sorted,
    behind `_background_` when a shape is labelled background. Only then is background a class: where the labels
    define none, the gaps no shape covers are ignored (255) rather than an unlabelled class of slivers."""
    if table:
        names = [n for n, _ in table]
    else:
        names = sorted(set(found_labels) - {IGNORE_NAME} - set(BACKGROUND_NAMES))
        if set(found_labels) & set(BACKGROUND_NAMES):
            names = ["_background_"] + names
    return names, next((i for i, n in enumerate(names) if n.lower() in BACKGROUND_NAMES), None)


def rasterize(path, doc, size, index, background):
    """(H, W) uint8 class indices of one LabelMe file; index: label -> class, size: the image's (H, W)."""
    h, w = size
    stated = (doc.get("imageHeight"), doc.get("imageWidth"))
    if all(isinstance(v, int) for v in stated) and stated != (h, w):
        raise UserError(f"LabelMe file {path} was drawn on a {stated[1]}x{stated[0]} image but its image is {w}x{h} "
                        f"as the loader reads it (EXIF orientation applied); open and save it again in LabelMe.")
    canvas = Image.new("L", (w, h), IGNORE if background is None else background)
    draw = ImageDraw.Draw(canvas)
    for n, shape in enumerate(area_shapes(path, doc)[0], 1):
        label = shape["label"]
        value = IGNORE if label == IGNORE_NAME else index.get(label, background if label.lower() in
                                                               BACKGROUND_NAMES else None)
        if value is None:
            raise UserError(f"LabelMe file {path} has the label {label!r}, which the classes file does not name; add "
                            f"it to the classes file or relabel the shape.")
        points = [(float(x), float(y)) for x, y in shape["points"]]
        kind = shape.get("shape_type") or "polygon"
        if kind == "polygon":
            draw.polygon(points, fill=value, outline=value)
        elif kind == "rectangle":
            (x0, y0), (x1, y1) = points[:2]
            draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=value, outline=value)
        elif kind == "circle":
            (cx, cy), (px, py) = points[:2]
            r = ((cx - px) ** 2 + (cy - py) ** 2) ** 0.5
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=value, outline=value)
        else:
            paste_mask(path, canvas, shape, value)
    return np.asarray(canvas)


def paste_mask(path, canvas, shape, value):
    try:
        with Image.open(io.BytesIO(base64.b64decode(shape["mask"]))) as im:
            mask = np.asarray(im.convert("L")) > 0
    except Exception:  # as embedded_image
        raise UserError(f"LabelMe file {path} has a mask shape ({shape['label']!r}) whose mask is not an image; "
                        f"redraw it.") from None
    x, y = (int(round(v)) for v in shape["points"][0])
    layer = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8))
    canvas.paste(Image.new("L", layer.size, value), (x, y), layer)


def document(image_path, json_path, shapes, size):
    """A LabelMe 5 file for image_path with `shapes` [(label, [[x, y], ...])]: what LabelMe opens."""
    h, w = size
    try:
        rel = Path(os.path.relpath(Path(image_path).resolve(), Path(json_path).resolve().parent)).as_posix()
    except ValueError:  # another drive on Windows
        rel = Path(image_path).resolve().as_posix()
    return {"version": "5.5.0", "flags": {}, "imagePath": rel, "imageData": None, "imageHeight": int(h),
            "imageWidth": int(w),
            "shapes": [{"label": label, "points": [[float(x), float(y)] for x, y in points], "group_id": None,
                        "description": "", "shape_type": "polygon", "flags": {}, "mask": None}
                       for label, points in shapes]}
