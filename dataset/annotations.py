"""Predictions as annotations a labelling tool opens: LabelMe JSON (one file per image) and COCO JSON (one file),
so that a trained model pre-labels new images, a person corrects them, and tools/prepare_dataset.py reads them back.

The images are hard-linked (else copied) into OUT/images/, so that the annotations name paths inside the dataset
folder OUT, as CVAT, datumaro and LabelMe want them. OUT/classes.txt holds the model's classes in its order, so
that the corrected annotations prepare to the model's class indices and fine-tuning keeps its classifier.

COCO (OUT/annotations/instances_default.json, categories first): every pixel of a class is covered by exactly one
annotation, so that readers stacking annotations in either order rebuild the same labels (datumaro, and so
CVAT's import, stacks them the other way round from LabelMe). Each region of a class is a polygon along its
pixels' edges when pycocotools rasterizes that polygon back to exactly the region (simplified where that still
holds), else (a region with holes, a pixel-thin one) the RLE of its pixels.

LabelMe (OUT/images/{stem}.json beside each image, OUT/labels.txt as labelme2voc wants it): each class region
becomes the polygon of its outer contour (cv2.findContours), simplified by approxPolyDP to within EPSILON pixels
(regions()). The shapes are ordered largest first, so that drawing them in order, each later one on top (LabelMe's
rule), rebuilds the prediction: a region inside another's hole encloses less and comes after it. Whatever an
outline covers that is not its own (background in its hole or in a bay that several regions close, another region
it encloses) is drawn again after it. Regions on the image's border keep their border pixels. A class named
background (background, _background_) is not written where nothing covers it: the readers give unlabelled pixels
to it.
"""
import os
import shutil
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from dataset import coco, labelme
from dataset.coco import coco_mask
from dataset.classes_file import BACKGROUND_NAMES
from utils.files import save_json, save_text

EPSILON = 0.5     # px: a staircase edge becomes one line, and no pixel centre moves across it by more than half
FORMATS = ("labelme", "coco")
COCO_FILE = "annotations/instances_default.json"  # CVAT's own export name: prepare_dataset.py finds it there
IMAGES = "images"          # where COCO's file_name is relative to (datumaro, CVAT), and LabelMe's files lie
LABELS_FILE = "labels.txt"  # labelme2voc's: __ignore__, _background_ (its unlabelled pixels), the classes
CLASSES_FILE = "classes.txt"  # the model's classes in its order: read first by tools/prepare_dataset.py


def background_of(names):
    return next((i for i, n in enumerate(names) if str(n).lower() in BACKGROUND_NAMES), None)


def polygon(crop, origin, size, scale=1):
    """The outline of crop (a region's box at origin (x, y) in an image of size (H, W)) drawn `scale` times
    larger, simplified to within EPSILON image pixels: (N >= 3, 2) of the outer pixels' centres at that scale,
    from the box's corner. Where the region meets the image's border it is traced a pixel beyond it (the caller
    clips the points to the image), so that simplification moves the class boundaries only, never the border.
    A region of a pixel or two keeps its points, repeated up to three (what both readers take as a polygon),
    rather than vanishing: a fresh network's predictions are full of them."""
    (x0, y0), (h, w) = origin, crop.shape
    pad = (int(y0 == 0), int(y0 + h == size[0]), int(x0 == 0), int(x0 + w == size[1]))  # top, bottom, left, right
    big = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    outline = outline_of(cv2.copyMakeBorder(big, *pad, cv2.BORDER_REPLICATE)) - (pad[2], pad[0])
    points = cv2.approxPolyDP(outline, scale * EPSILON, True)[:, 0, :]
    if len(points) < 3:
        points = outline[:, 0, :]
    return points if len(points) >= 3 else np.concatenate([points] * 3)[:3]


GROW = 2  # px a shape may reach into the shapes drawn after it (they cover that again)


@dataclass
class Region:
    cls: int             # class index (a piece of background given back: the background class)
    points: np.ndarray   # (N, 2) polygon through the outer pixels' centres, in pixel coordinates in the image
    crop: np.ndarray     # (h, w) uint8 of what the polygon outlines, in the box at `origin`
    origin: tuple        # (x, y) of that box
    inside: np.ndarray   # (h, w) bool of what the outline encloses (crop and its holes), in the same box


def outline_of(mask):
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return max(contours, key=len)


def components(label, names):
    """[(enclosed area, class, (x, y, w, h), (h, w) bool)] of every class region (background left out)."""
    background = background_of(names)
    parts = []
    for c in np.unique(label).tolist():
        if c == background or c >= len(names):
            continue
        count, comps, stats, _ = cv2.connectedComponentsWithStats((label == c).astype(np.uint8), connectivity=8)
        for k in range(1, count):  # each region in its bounding box: cost follows the region, not the image
            x, y, w, h = (int(v) for v in stats[k, :4])
            part = comps[y:y + h, x:x + w] == k
            parts.append((int(filled(outline_of(part.astype(np.uint8)), part.shape).sum()), c, (x, y, w, h), part))
    return parts


def filled(outline, shape):
    """(h, w) bool of what an outline encloses, the outline included."""
    inside = np.zeros(shape, np.uint8)
    cv2.drawContours(inside, [outline], -1, 1, -1)
    return inside > 0


def region(cls, own, box, rank, after):
    """The Region of the pixels own (bool, in box (x, y, w, h)) grown GROW px into the shapes ranked after `after`."""
    x, y, w, h = box
    x0, y0 = max(0, x - GROW), max(0, y - GROW)
    x1, y1 = min(rank.shape[1], x + w + GROW), min(rank.shape[0], y + h + GROW)
    mine = np.zeros((y1 - y0, x1 - x0), np.uint8)
    mine[y - y0:y - y0 + h, x - x0:x - x0 + w] = own
    crop = mine | (cv2.dilate(mine, np.ones((3, 3), np.uint8), iterations=GROW).astype(bool) &
                   (rank[y0:y1, x0:x1] > after)).astype(np.uint8)
    points = np.clip(polygon(crop, (x0, y0), rank.shape) + (x0, y0), 0, (rank.shape[1] - 1, rank.shape[0] - 1))
    return Region(cls, points, crop, (x0, y0), filled(outline_of(crop), crop.shape))


def regions(label, names):
    """[Region] that, drawn in this order each later one on top, rebuild label. The class regions are ordered by
    the area each outline encloses, largest first: whatever lies inside an outline encloses less, so it comes
    later. Each outline may reach GROW pixels into the shapes drawn after it, so that where two regions meet only
    the later one's simplified edge counts, and no gap of unlabelled pixels opens between them. What an outline
    still covers wrongly (a background lake inside a region, a bay that regions of several classes close, a
    region an outline grown across a narrow gap encloses) is given back: each such piece is drawn again right
    after the last shape that covers it (LabelMe's shapes; COCO's are written by coco_segmentation)."""
    parts = sorted(components(label, names), key=lambda p: -p[0])  # stable: equal areas keep class order
    rank = np.full(label.shape, -1, np.int32)
    for r, (_, _, (x, y, w, h), own) in enumerate(parts):
        rank[y:y + h, x:x + w][own] = r
    shapes = []
    drawn, last = np.full(label.shape, -1, np.int32), np.full(label.shape, -1, np.int32)  # class, shape drawn last
    for r, (_, c, box, own) in enumerate(parts):
        shape = region(c, own, box, rank, r)
        (x0, y0), (h, w) = shape.origin, shape.crop.shape
        drawn[y0:y0 + h, x0:x0 + w][shape.inside] = c
        last[y0:y0 + h, x0:x0 + w][shape.inside] = r
        shapes.append(shape)
    wrong, after = (drawn != label) & (last >= 0), {}
    for c in np.unique(label[wrong]).tolist():
        if c >= len(names):
            continue
        # 4-connected pieces: background an 8-connected outline separates is two pieces, each inside one outline
        count, pieces, stats, _ = cv2.connectedComponentsWithStats((wrong & (label == c)).astype(np.uint8),
                                                                   connectivity=4)
        for k in range(1, count):
            x, y, w, h = (int(v) for v in stats[k, :4])
            own = pieces[y:y + h, x:x + w] == k
            r = int(last[y:y + h, x:x + w][own].max())
            after.setdefault(r, []).append(region(c, own, (x, y, w, h), rank, r))
    return [s for r, shape in enumerate(shapes)
            for s in [shape] + sorted(after.get(r, []), key=lambda p: -p.inside.sum())]  # a piece in a piece: later


def labelme_document(image_path, json_path, label, names):
    """A background class's pieces are labelled _background_, the one name labelme2voc knows for it."""
    background = background_of(names)
    shapes = [("_background_" if r.cls == background else names[r.cls], r.points.tolist())
              for r in regions(label, names)]
    return labelme.document(image_path, json_path, shapes, label.shape)


def coco_segmentation(own, box, size):
    """(segmentation, iscrowd) of one region (own: (h, w) bool in box (x, y, w, h) of an image of size (H, W)):
    a polygon along its pixels' edges, as simplified as pycocotools still rasterizes back to exactly own; else,
    where no polygon does (holes, pixel-thin parts), the RLE of its pixels."""
    x, y, w, h = box
    crop = np.pad(own, 1).astype(np.uint8)  # a pixel of margin: the outline of a region filling its box is whole
    outline = outline_of(cv2.resize(crop, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST))
    for epsilon in (2 * EPSILON, 0):  # at twice the resolution the outer pixels' centres lie a quarter inside
        points = cv2.approxPolyDP(outline, epsilon, True)[:, 0, :] if epsilon else outline[:, 0, :]
        if len(points) < 3:
            break
        edges = (points + 0.5) / 2 - 1  # in the box, where pixel x spans [x, x + 1]
        back = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([edges.ravel().tolist()], h, w)))
        if (back.astype(bool) == own).all():
            return [(edges + (x, y)).ravel().round(3).tolist()], 0
    full = np.zeros(size, bool)
    full[y:y + h, x:x + w] = own
    return coco.encode(full), 1


class CocoWriter:
    """Collects images and their predicted regions; document() is one COCO file (categories 1..n by class index,
    the background class left out), each pixel of a class in exactly one annotation."""

    def __init__(self, names):
        coco.require()
        self.names = list(names)
        background = background_of(names)
        self.category = {c: k for k, c in enumerate((i for i in range(len(names)) if i != background), 1)}
        self.images, self.annotations = [], []

    def add(self, file_name, label):
        image_id = len(self.images) + 1
        h, w = label.shape
        self.images.append({"id": image_id, "file_name": file_name, "height": int(h), "width": int(w)})
        for area, c, box, own in sorted(components(label, self.names), key=lambda p: (p[1], p[2][1], p[2][0])):
            segmentation, crowd = coco_segmentation(own, box, label.shape)
            self.annotations.append({"id": len(self.annotations) + 1, "image_id": image_id,
                                     "category_id": self.category[c], "segmentation": segmentation,
                                     "area": int(own.sum()), "bbox": list(box), "iscrowd": crowd})

    def document(self):
        """Categories first: a reader that looks at the start of the file knows it for COCO at once."""
        return {"categories": [{"id": k, "name": self.names[c], "supercategory": ""} for c, k in self.category.items()],
                "info": {"description": "CGNet predictions (tools/segment.py --save_annotations coco)"},
                "licenses": [], "images": self.images, "annotations": self.annotations}


class Annotations:
    """What tools/segment.py --save_annotations writes into OUT: the images in OUT/images/, OUT/classes.txt, and
    per image OUT/images/{stem}.json plus OUT/labels.txt (LabelMe), or one OUT/annotations/instances_default.json
    (COCO) when close() is called. The files are written into the staging folder (stage) that becomes OUT. add()
    may be called from several threads."""

    def __init__(self, fmt, out, stage, names):
        self.fmt, self.out, self.stage, self.names = fmt, out, stage, list(names)
        self.coco = CocoWriter(names) if fmt == "coco" else None
        self.lock = threading.Lock()
        self.pending = []
        os.makedirs(os.path.join(stage, IMAGES), exist_ok=True)

    def add(self, stem, image_path, label):
        name = stem + os.path.splitext(image_path)[1]
        link_or_copy(image_path, os.path.join(self.stage, IMAGES, name))
        if self.fmt == "labelme":
            final = os.path.join(self.out, IMAGES, stem + ".json")
            save_json(os.path.join(self.stage, IMAGES, stem + ".json"),
                      labelme_document(os.path.join(self.out, IMAGES, name), final, label, self.names))
        else:
            with self.lock:
                self.pending.append((name, label))

    def close(self):
        write_lines(os.path.join(self.stage, CLASSES_FILE), self.names)
        if self.coco is None:  # labelme2voc's labels.txt: it requires _background_ second, as class 0
            background = background_of(self.names)
            write_lines(os.path.join(self.stage, LABELS_FILE), ["__ignore__", "_background_"] +
                       [n for i, n in enumerate(self.names) if i != background])
            return
        for name, label in sorted(self.pending, key=lambda p: p[0]):
            self.coco.add(name, label)  # relative to images/
        save_json(os.path.join(self.stage, COCO_FILE), self.coco.document(), indent=None)


def write_lines(path, lines):
    save_text(path, "".join(f"{line}\n" for line in lines))


def link_or_copy(src, dst):
    """dst as a hard link of src (no space taken), or a copy where links cannot be made (another file system)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
