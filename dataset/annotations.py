"""Predictions as annotations a labelling tool opens: LabelMe JSON (one file per image) and COCO JSON (one file),
so that a trained model pre-labels new images, a person corrects them, and tools/prepare_dataset.py reads them back.

Each class region becomes the polygon of its outer contour (cv2.findContours), simplified by approxPolyDP to
within EPSILON pixels (regions()). The shapes are ordered largest first, so that drawing them in order, each
later one on top (the rule of both readers), rebuilds the prediction: a region inside another's hole encloses
less and comes after it. A hole that is background is given back as a background polygon in LabelMe; COCO has
no background category, so there a region with background holes is written as an RLE of its pixels. COCO's
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


def polygon(contour):
    """The simplified outline (N >= 3, 2); a region of a pixel or two keeps its points, repeated up to three (what
    both readers take as a polygon), rather than vanishing: a fresh network's predictions are full of them."""
    points = cv2.approxPolyDP(contour, EPSILON, True)[:, 0, :]
    if len(points) < 3:
        points = contour[:, 0, :]
    return points if len(points) >= 3 else np.concatenate([points] * 3)[:3]


GROW = 2  # px a shape may reach into the shapes drawn after it (they cover that again)


@dataclass
class Region:
    cls: int             # class index (a background lake: the background class)
    points: np.ndarray   # (N, 2) polygon through the outer pixels' centres, in pixel coordinates
    crop: np.ndarray     # (h, w) uint8 of what the polygon outlines, in the box at `origin`
    origin: tuple        # (x, y) of that box
    exact: np.ndarray = None  # (H, W) bool of a region with background lakes (COCO writes it as an RLE)


def outline_of(mask):
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return max(contours, key=len)


def components(label, names):
    """[(enclosed area, class, (x, y, w, h), (h, w) bool)] of every region and background lake."""
    background = background_of(names)
    parts, taken = [], np.zeros(label.shape, bool)
    for c in np.unique(label).tolist():
        if c == background or c >= len(names):
            continue
        count, comps, stats, _ = cv2.connectedComponentsWithStats((label == c).astype(np.uint8), connectivity=8)
        for k in range(1, count):  # each region in its bounding box: cost follows the region, not the image
            x, y, w, h = (int(v) for v in stats[k, :4])
            part = comps[y:y + h, x:x + w] == k
            inside = np.zeros((h, w), np.uint8)
            cv2.drawContours(inside, [outline_of(part.astype(np.uint8))], -1, 1, -1)
            parts.append((int(inside.sum()), c, (x, y, w, h), part))
            if background is None:
                continue
            lakes = (inside > 0) & ~part & (label[y:y + h, x:x + w] == background) & ~taken[y:y + h, x:x + w]
            n, lake_ids, lake_stats, _ = cv2.connectedComponentsWithStats(lakes.astype(np.uint8), connectivity=8)
            for j in range(1, n):
                lx, ly, lw, lh = (int(v) for v in lake_stats[j, :4])
                lake = lake_ids[ly:ly + lh, lx:lx + lw] == j
                taken[y + ly:y + ly + lh, x + lx:x + lx + lw] |= lake
                area = np.zeros((lh, lw), np.uint8)
                cv2.drawContours(area, [outline_of(lake.astype(np.uint8))], -1, 1, -1)
                parts.append((int(area.sum()), background, (x + lx, y + ly, lw, lh), lake))
    return parts


def regions(label, names):
    """[Region] that, drawn in this order each later one on top, rebuild label. Ordered by the area each outline
    encloses, largest first: whatever lies inside an outline encloses less, so it comes later. Each outline may
    reach GROW pixels into the shapes drawn after it, so that where two regions meet only the later one's
    simplified edge counts, and no gap of unlabelled pixels opens between them."""
    background = background_of(names)
    parts = sorted(components(label, names), key=lambda p: -p[0])  # stable: equal areas keep class order
    rank = np.full(label.shape, -1, np.int32)
    for r, (_, _, (x, y, w, h), own) in enumerate(parts):
        rank[y:y + h, x:x + w][own] = r
    out = []
    kernel = np.ones((3, 3), np.uint8)
    for r, (_, c, (x, y, w, h), own) in enumerate(parts):
        x0, y0 = max(0, x - GROW), max(0, y - GROW)
        x1, y1 = min(label.shape[1], x + w + GROW), min(label.shape[0], y + h + GROW)
        mine = (rank[y0:y1, x0:x1] == r).astype(np.uint8)
        later = rank[y0:y1, x0:x1] > r
        crop = mine | (cv2.dilate(mine, kernel, iterations=GROW).astype(bool) & later).astype(np.uint8)
        exact = None
        if c != background and background is not None:
            box = label[y:y + h, x:x + w] == background
            inside = np.zeros((h, w), np.uint8)
            cv2.drawContours(inside, [outline_of(own.astype(np.uint8))], -1, 1, -1)
            if (box & (inside > 0)).any():
                exact = np.zeros(label.shape, bool)
                exact[y:y + h, x:x + w] = own
        out.append(Region(c, polygon(outline_of(crop)) + (x0, y0), crop, (x0, y0), exact))
    return out


def pixel_edges(region):
    """The polygon of a region in COCO's coordinates, where pixel x spans [x, x + 1]: the outline of its pixels'
    edges, not of their centres (pycocotools leaves out a pixel whose centre is on the polygon). Traced on the
    region at twice the resolution, where the outer pixels' centres lie a quarter pixel inside the edges."""
    big = cv2.resize(region.crop, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    outline = outline_of(big)
    simple = cv2.approxPolyDP(outline, 2 * EPSILON, True)[:, 0, :].astype(float)
    if len(simple) < 3:  # a pixel or two: its 2x outline as it is (4 points at least)
        simple = outline[:, 0, :].astype(float)
    return (simple + 0.5) / 2 + region.origin


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
                continue  # a background lake: COCO draws none; the region around it is an RLE instead
            if region.exact is not None:
                segmentation, area = coco.encode(region.exact), int(region.exact.sum())
            else:
                outline = pixel_edges(region)
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
