"""Predictions as annotations a labelling tool opens: LabelMe JSON (one file per image) and COCO JSON (one file),
so that a trained model pre-labels new images, a person corrects them, and tools/prepare_dataset.py reads them back.

Each class region becomes the polygon of its outer contour (cv2.findContours), simplified by approxPolyDP to
within EPSILON pixels (regions()). The shapes are ordered largest first, so that drawing them in order, each
later one on top (the rule of both readers), rebuilds the prediction: a region inside another's hole encloses
less and comes after it. Whatever an outline covers that is not its own (background in its hole or in a bay
that several regions close, another region it encloses) is drawn again after it: background as a background
polygon in LabelMe; COCO has no background category, so there a region whose outline covers background is
written as an RLE of its pixels. Regions on the image's border keep their border pixels. COCO's
polygons follow the pixels' edges, LabelMe's their centres, as each format's rasterizer reads them. A class
named background (background, _background_) is not written: the readers give unlabelled pixels to it.
"""
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dataset import coco, labelme
from dataset.classes_file import BACKGROUND_NAMES
from utils.files import atomic_write, save_json

EPSILON = 0.5     # px: a staircase edge becomes one line, and no pixel centre moves across it by more than half
FORMATS = ("labelme", "coco")
COCO_FILE = "annotations/instances_default.json"  # CVAT's own export name: prepare_dataset.py finds it there
LABELS_FILE = "labels.txt"  # labelme2voc's class order


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
    exact: np.ndarray = None  # (H, W) bool of crop, where the outline covers background (COCO writes it as RLE)


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
    after the last shape that covers it. COCO, which has no background, writes a shape that covers background
    as the RLE of its pixels (`exact`) instead."""
    background = background_of(names)
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
        if background is not None and (label[y0:y0 + h, x0:x0 + w][shape.inside] == background).any():
            shape.exact = np.zeros(label.shape, bool)
            shape.exact[y0:y0 + h, x0:x0 + w] = shape.crop > 0
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


def pixel_edges(region, size):
    """The polygon of a region in COCO's coordinates, where pixel x spans [x, x + 1]: the outline of its pixels'
    edges, not of their centres (pycocotools leaves out a pixel whose centre is on the polygon). Traced on the
    region at twice the resolution, where the outer pixels' centres lie a quarter pixel inside the edges."""
    return np.clip((polygon(region.crop, region.origin, size, 2) + 0.5) / 2 + region.origin, 0, (size[1], size[0]))


def labelme_document(image_path, json_path, label, names):
    shapes = [(names[r.cls], r.points.tolist()) for r in regions(label, names)]
    return labelme.document(image_path, json_path, shapes, label.shape)


class CocoWriter:
    """Collects images and their predicted regions; document() is one COCO file (categories 1..n by class index,
    the background class left out)."""

    def __init__(self, names):
        self.names = list(names)
        background = background_of(names)
        self.category = {c: k for k, c in enumerate((i for i in range(len(names)) if i != background), 1)}
        self.images, self.annotations = [], []

    def add(self, file_name, label):
        image_id = len(self.images) + 1
        h, w = label.shape
        self.images.append({"id": image_id, "file_name": file_name, "height": int(h), "width": int(w)})
        for region in regions(label, self.names):
            if region.cls not in self.category:
                continue  # background: COCO draws none; the regions that cover it are RLEs instead
            if region.exact is not None:
                segmentation, area = coco.encode(region.exact), int(region.exact.sum())
            else:
                outline = pixel_edges(region, label.shape)
                segmentation, area = [outline.ravel().tolist()], float(cv2.contourArea(outline.astype(np.float32)))
            x, y, bw, bh = cv2.boundingRect(region.points.reshape(-1, 1, 2).astype(np.int32))
            self.annotations.append({"id": len(self.annotations) + 1, "image_id": image_id,
                                     "category_id": self.category[region.cls], "segmentation": segmentation,
                                     "area": area, "bbox": [x, y, bw, bh], "iscrowd": 0})

    def document(self):
        return {"info": {"description": "CGNet predictions (tools/segment.py --save_annotations coco)"},
                "licenses": [], "images": self.images, "annotations": self.annotations,
                "categories": [{"id": k, "name": self.names[c], "supercategory": ""} for c, k in self.category.items()]}


class Annotations:
    """What tools/segment.py --save_annotations writes: per image OUT/{stem}.json and, when close() is called,
    OUT/labels.txt (LabelMe); or one OUT/annotations/instances_default.json (COCO) when close() is called. Paths
    inside the files are relative to where they end up (out), though they are written into the staging folder
    (stage). add() may be called from several threads."""

    def __init__(self, fmt, out, stage, names):
        self.fmt, self.out, self.stage, self.names = fmt, out, stage, list(names)
        self.coco = CocoWriter(names) if fmt == "coco" else None
        self.lock = threading.Lock()
        self.pending = []

    def add(self, stem, image_path, label):
        if self.fmt == "labelme":
            final = os.path.join(self.out, stem + ".json")
            save_json(os.path.join(self.stage, stem + ".json"), labelme_document(image_path, final, label, self.names))
        else:
            with self.lock:
                self.pending.append((stem, image_path, label))

    def close(self):
        if self.coco is None:  # labelme2voc's labels.txt: the class order, so the files prepare to the same ids
            text = "".join(f"{n}\n" for n in ["__ignore__"] + self.names)
            atomic_write(os.path.join(self.stage, LABELS_FILE), lambda tmp: Path(tmp).write_text(text))
            return
        root = os.path.abspath(self.out)  # COCO's file_name: relative to the dataset folder, OUT
        for stem, image_path, label in sorted(self.pending, key=lambda p: p[0]):
            self.coco.add(os.path.relpath(os.path.abspath(image_path), root).replace(os.sep, "/"), label)
        save_json(os.path.join(self.stage, COCO_FILE), self.coco.document())
