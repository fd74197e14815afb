"""Predictions as annotations a labelling tool opens: LabelMe JSON (one file per image) and COCO JSON (one file),
so that a trained model pre-labels new images, a person corrects them, and tools/prepare_dataset.py reads them back.

Each class region becomes the polygon of its outer contour (cv2.findContours), simplified by approxPolyDP to
within EPSILON pixels. The shapes are ordered largest first, so that drawing them in order, each later one on
top (the rule of both readers), rebuilds the prediction: a region inside another's hole is smaller than that
region and comes after it. A hole that is background is given back as a background polygon in LabelMe; COCO
has no background category, so there a region with background holes is written as an RLE of its pixels.
The background class (a class named background, dataset.classes_file.background_class) is not written.
"""
import os
import threading

import cv2
import numpy as np

from dataset import coco, labelme
from dataset.classes_file import BACKGROUND_NAMES
from utils.files import save_json

EPSILON = 1.0     # px: vertices within a pixel of the contour add nothing a person would correct
FORMATS = ("labelme", "coco")
COCO_FILE = "annotations/instances_default.json"  # CVAT's own export name: prepare_dataset.py finds it there


def background_of(names):
    return next((i for i, n in enumerate(names) if str(n).lower() in BACKGROUND_NAMES), None)


def polygon(contour):
    points = cv2.approxPolyDP(contour, EPSILON, True)[:, 0, :]
    return points if len(points) >= 3 else None


def filled(contours, shape, offset):
    """(H, W) uint8 of the given contours filled (their holes included)."""
    canvas = np.zeros(shape, np.uint8)
    cv2.drawContours(canvas, contours, -1, 1, -1, offset=offset)
    return canvas


def regions(label, names):
    """[(class index, polygon (N, 2) int, region mask or None)], drawn in this order (later on top) they rebuild
    label. The (H, W) mask comes with a region that has background holes; each such hole (a 'lake') follows as
    (background, polygon, None). Ordered by the area each outline encloses, largest first: whatever lies inside
    an outline encloses less, so it comes later."""
    background = background_of(names)
    shapes = []
    for c in np.unique(label).tolist():
        if c == background or c >= len(names):
            continue
        count, components, stats, _ = cv2.connectedComponentsWithStats((label == c).astype(np.uint8), connectivity=8)
        for k in range(1, count):  # each region in its bounding box: cost follows the region, not the image
            x, y, w, h = (int(v) for v in stats[k, :4])
            part = (components[y:y + h, x:x + w] == k).astype(np.uint8)
            outline, _ = cv2.findContours(part, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            inside = filled(outline, part.shape, (0, 0))
            lakes = np.zeros_like(part)
            if background is not None:
                lakes = ((inside > 0) & (part == 0) & (label[y:y + h, x:x + w] == background)).astype(np.uint8)
            mask = None
            if lakes.any():
                mask = np.zeros(label.shape, bool)
                mask[y:y + h, x:x + w] = part > 0
            points = polygon(outline[0] + (x, y))
            if points is not None:
                shapes.append((int(inside.sum()), c, points, mask))
            for lake in cv2.findContours(lakes, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0] if lakes.any() else ():
                points = polygon(lake + (x, y))
                if points is not None:
                    shapes.append((int(filled([lake], part.shape, (0, 0)).sum()), background, points, None))
    shapes.sort(key=lambda s: -s[0])  # stable: equal areas keep class order
    return [(c, points, mask) for _, c, points, mask in shapes]


def pixel_edges(label, c, points):
    """The polygon of a region in COCO's coordinates, where pixel x spans [x, x + 1]: the outline of its pixels'
    edges, not of their centres (pycocotools leaves out a pixel whose centre is on the polygon). Traced on the
    region at twice the resolution, where the outer pixels' centres lie a quarter pixel inside the edges, and
    simplified to EPSILON of those half pixels: a pixel a simplified edge cuts is lost here, where LabelMe's
    rasterizer (PIL, outline included) keeps it."""
    x, y, w, h = cv2.boundingRect(points.reshape(-1, 1, 2).astype(np.int32))
    part = np.zeros((h + 2, w + 2), np.uint8)
    inside = np.zeros_like(part)
    cv2.fillPoly(inside, [points.astype(np.int32) - (x - 1, y - 1)], 1)
    cv2.polylines(inside, [points.astype(np.int32) - (x - 1, y - 1)], True, 1)
    part[1:-1, 1:-1] = label[y:y + h, x:x + w] == c
    part &= inside  # this region only, not a neighbour of the same class inside its bounding box
    big = cv2.resize(part, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = max(contours, key=cv2.contourArea)
    simple = cv2.approxPolyDP(outline, EPSILON, True)[:, 0, :].astype(float)
    return (simple + 0.5) / 2 + (x - 1, y - 1)


def labelme_document(image_path, json_path, label, names):
    shapes = [(names[c], points.tolist()) for c, points, _ in regions(label, names)]
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
        for c, points, mask in regions(label, self.names):
            if c not in self.category:
                continue  # a background hole: COCO draws none; the region around it is an RLE instead
            x, y, bw, bh = cv2.boundingRect(points.reshape(-1, 1, 2).astype(np.int32))
            if mask is not None:
                segmentation, area = coco.encode(mask), int(mask.sum())
            else:
                outline = pixel_edges(label, c, points)
                segmentation, area = [outline.ravel().tolist()], float(cv2.contourArea(outline.astype(np.float32)))
            self.annotations.append({"id": len(self.annotations) + 1, "image_id": image_id,
                                     "category_id": self.category[c], "segmentation": segmentation,
                                     "area": area, "bbox": [x, y, bw, bh], "iscrowd": 0})

    def document(self):
        return {"info": {"description": "CGNet predictions (tools/segment.py --save_annotations coco)"},
                "licenses": [], "images": self.images, "annotations": self.annotations,
                "categories": [{"id": k, "name": self.names[c], "supercategory": ""} for c, k in self.category.items()]}


class Annotations:
    """What tools/segment.py --save_annotations writes: per image OUT/{stem}.json (LabelMe), or one
    OUT/annotations/instances_default.json (COCO) when close() is called. Paths inside the files are relative to
    where they end up (out), though they are written into the staging folder (stage). add() may be called from
    several threads."""

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
        if self.coco is None:
            return
        root = os.path.abspath(self.out)  # COCO's file_name: relative to the dataset folder, OUT
        for stem, image_path, label in sorted(self.pending, key=lambda p: p[0]):
            self.coco.add(os.path.relpath(os.path.abspath(image_path), root).replace(os.sep, "/"), label)
        save_json(os.path.join(self.stage, COCO_FILE), self.coco.document())
