"""Small synthetic datasets: street scenes in the exact on-disk layouts of Cityscapes and CamVid, and shapes in
the layouts of your own data (tools/prepare_dataset.py): voc (JPEGImages/ + palettized SegmentationClass/
PNGs + ImageSets), binary (images/ + masks/ of 0/255), colour (images/{train,val,test}/ + RGB masks/ + CVAT's
labelmap.txt). tools/make_demo_data.py writes them from the command line.

The demo and the end-to-end tests train, evaluate and test on these, so that the project runs without the
real datasets; street_scene() also gives the benchmarks and export checks their images. Every image comes
from a random generator seeded by (seed, dataset, split, index): the same arguments always give the same
bytes. A folder that already holds a complete set made with the same arguments (demo_data.json says which)
is left as it is.
"""
import json
import os

import cv2
import numpy as np
from PIL import Image

from dataset.palettes import CITYSCAPES_LABEL_IDS, default_palette
from utils.errors import UserError
from utils.files import atomic_write

GENERATOR_VERSION = 1  # bump when the scenes change, so that old folders are regenerated

# Scenes are drawn in Cityscapes trainIds; EGO (the ego-vehicle hood) is void in both datasets.
(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY, PERSON, RIDER,
 CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE) = range(19)
EGO = 19
TO_TRAIN_ID = np.array(list(range(19)) + [255], np.uint8)
TO_LABEL_ID = np.array(list(CITYSCAPES_LABEL_IDS) + [1], np.uint8)  # 1 = 'ego vehicle'
# SegNet's CamVid merges wall into building, terrain into tree, trucks and buses into car,
# and riders with their bikes into bicyclist; dataset.palettes.CAMVID_CLASSES gives the order.
TO_CAMVID = np.array([3, 4, 1, 1, 7, 2, 6, 6, 5, 5, 0, 9, 10, 8, 8, 8, 8, 10, 10, 11], np.uint8)

CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt", "lindau"), "test": ("berlin", "bielefeld")}
CAMVID_SEQS = {"train": ("0001TP", "0006R0"), "val": ("0016E5",), "test": ("Seq05VD",)}
SPLITS = ("train", "val", "test")


class _Canvas:
    """Draws each shape into the label map and a 'look' map with the same cv2 call (no
    anti-aliasing), so that labels match the pixels exactly; render() turns looks into colours."""

    def __init__(self, rng, h, w):
        self.rng, self.h, self.w = rng, h, w
        self.label = np.zeros((h, w), np.uint8)
        self.part = np.zeros((h, w), np.uint8)
        self.looks = []  # (rgb, fine noise sigma, blotch amplitude rgb, vertical gradient rgb)

    def look(self, rgb, jitter=12.0, fine=6.0, blotch=(0, 0, 0), grad=(0, 0, 0)):
        rgb = np.clip(np.asarray(rgb, float) + self.rng.normal(0, jitter, 3), 0, 255)
        self.looks.append((rgb, fine, blotch, grad))
        assert len(self.looks) < 256, "too many looks for a uint8 look map"
        return len(self.looks) - 1

    def poly(self, pts, cls, look):
        pts = [np.round(np.asarray(pts, float)).astype(np.int32)]
        cv2.fillPoly(self.label, pts, int(cls))
        cv2.fillPoly(self.part, pts, int(look))

    def rect(self, x0, y0, x1, y1, cls, look):
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], cls, look)

    def ellipse(self, cx, cy, rx, ry, cls, look, thickness=-1):
        c, axes = (int(round(cx)), int(round(cy))), (max(1, int(round(rx))), max(1, int(round(ry))))
        cv2.ellipse(self.label, c, axes, 0, 0, 360, int(cls), thickness)
        cv2.ellipse(self.part, c, axes, 0, 0, 360, int(look), thickness)

    def line(self, p, q, thickness, cls, look):
        p, q = tuple(int(round(v)) for v in p), tuple(int(round(v)) for v in q)
        t = max(1, int(round(thickness)))
        cv2.line(self.label, p, q, int(cls), t)
        cv2.line(self.part, p, q, int(look), t)

    def box(self, x0, y0, x1, y1):
        """Row and column slices of a rectangle, clipped to the image."""
        ys = slice(min(max(0, int(y0)), self.h), min(max(0, int(y1)), self.h))
        xs = slice(min(max(0, int(x0)), self.w), min(max(0, int(x1)), self.w))
        return ys, xs

    def paint(self, mask, look):
        """Change the look only (lane marks, windows, tiles): the class stays what it was."""
        self.part[mask] = look

    def render(self):
        h, w, rng = self.h, self.w, self.rng
        rgb, fine, blotch, grad = (np.array(v, np.float32) for v in zip(*self.looks))
        coarse = rng.normal(size=(max(2, h // 12), max(2, w // 12))).astype(np.float32)
        coarse = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
        y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        p = self.part
        img = (rgb[p] + fine[p][..., None] * rng.normal(size=(h, w, 3)).astype(np.float32)
               + blotch[p] * coarse + grad[p] * y)
        img = img * rng.uniform(0.8, 1.15) + rng.normal(0, 3, (h, w, 3))  # exposure and sensor noise
        return np.clip(img, 0, 255).astype(np.uint8), self.label


def _building(c, x0, top, x1, bottom):
    rng = c.rng
    palette = ((150, 140, 130), (120, 110, 105), (175, 165, 145), (110, 95, 85), (165, 125, 105))
    c.rect(x0, top, x1, bottom, BUILDING, c.look(palette[rng.integers(len(palette))], 12, fine=7))
    # A grid of windows, cut with index arithmetic on the building's slice.
    win = c.look((55, 65, 80), 12, fine=5)
    m = (x1 - x0) * 0.08
    ys, xs = c.box(x0 + m, top + m, x1 - m, bottom - m)
    yy, xx = np.ogrid[ys, xs]
    py, px = max(3, int(c.h * rng.uniform(0.03, 0.06))), max(3, int(c.w * rng.uniform(0.02, 0.04)))
    mask = ((yy - ys.start) % py < py * rng.uniform(0.4, 0.7)) & ((xx - xs.start) % px < px * rng.uniform(0.4, 0.7))
    c.part[ys, xs][mask] = win


def _car(c, xc, yb, f):
    rng = c.rng
    cw = f * c.w * rng.uniform(0.22, 0.32)
    ch = cw * rng.uniform(0.5, 0.65)
    palette = ((180, 25, 25), (25, 45, 140), (215, 215, 215), (35, 35, 40), (150, 150, 155), (25, 95, 45))
    body = c.look(palette[rng.integers(len(palette))], 10, fine=5)
    x0, x1, bevel = xc - cw / 2, xc + cw / 2, cw * 0.05
    yt = yb - ch * 0.6
    c.poly([(x0, yt + bevel), (x0 + bevel, yt), (x1 - bevel, yt), (x1, yt + bevel), (x1, yb - ch * 0.1),
            (x0, yb - ch * 0.1)], CAR, body)
    c.poly([(x0 + cw * 0.18, yb - ch), (x1 - cw * 0.2, yb - ch), (x1 - cw * 0.05, yt), (x0 + cw * 0.05, yt)], CAR, body)
    c.poly([(x0 + cw * 0.22, yb - ch * 0.93), (x1 - cw * 0.24, yb - ch * 0.93), (x1 - cw * 0.1, yt),
            (x0 + cw * 0.1, yt)], CAR, c.look((45, 55, 65), 8, fine=5))
    wheel = c.look((22, 22, 22), 4, fine=4)
    for xw in (x0 + cw * 0.2, x1 - cw * 0.2):
        c.ellipse(xw, yb - ch * 0.14, ch * 0.15, ch * 0.14, CAR, wheel)


def _big_vehicle(c, xc, yb, f):
    """A bus (long window strip) or a truck (cabin and a plain cargo box)."""
    rng = c.rng
    bw = f * c.w * rng.uniform(0.35, 0.5)
    bh = bw * rng.uniform(0.55, 0.7)
    x0, x1, wheel = xc - bw / 2, xc + bw / 2, c.look((22, 22, 22), 4, fine=4)
    if rng.random() < 0.5:
        cls = BUS
        c.rect(x0, yb - bh, x1, yb - bh * 0.08, BUS, c.look(((215, 190, 40), (190, 40, 40))[rng.integers(2)], 10))
        c.rect(x0 + bw * 0.04, yb - bh * 0.85, x1 - bw * 0.04, yb - bh * 0.55, BUS, c.look((45, 55, 65), 8))
    else:
        cls = TRUCK
        c.rect(x0, yb - bh, x0 + bw * 0.7, yb - bh * 0.08, TRUCK, c.look((225, 225, 220), 10, fine=5))
        c.rect(x0 + bw * 0.7, yb - bh * 0.6, x1, yb - bh * 0.08, TRUCK, c.look((40, 70, 150), 15))
        c.rect(x0 + bw * 0.75, yb - bh * 0.55, x1 - bw * 0.04, yb - bh * 0.35, TRUCK, c.look((45, 55, 65), 8))
    for xw in (x0 + bw * 0.15, x1 - bw * 0.15):
        c.ellipse(xw, yb - bh * 0.1, bh * 0.1, bh * 0.1, cls, wheel)


def _person(c, xc, yb, f, cls=PERSON):
    rng = c.rng
    ph = f * c.h * rng.uniform(0.35, 0.5)
    clothes = c.look(((180, 40, 40), (40, 60, 150), (60, 120, 60), (200, 200, 190), (50, 50, 50))[rng.integers(5)], 15)
    legs, skin = c.look((45, 45, 65), 10), c.look((215, 175, 145), 15)
    lw = max(1.0, ph * 0.05)
    if cls == PERSON:
        for dx in (-ph * 0.06, ph * 0.06):
            c.rect(xc + dx - lw, yb - ph * 0.48, xc + dx + lw, yb, cls, legs)
    c.poly([(xc - ph * 0.1, yb - ph * 0.8), (xc + ph * 0.1, yb - ph * 0.8), (xc + ph * 0.13, yb - ph * 0.45),
            (xc - ph * 0.13, yb - ph * 0.45)], cls, clothes)
    c.ellipse(xc, yb - ph * 0.89, ph * 0.065, ph * 0.08, cls, skin)


def _cyclist(c, xc, yb, f):
    r = f * c.h * c.rng.uniform(0.07, 0.1)
    frame = c.look(((30, 30, 30), (160, 30, 30), (30, 60, 160))[c.rng.integers(3)], 8)
    t = max(1.0, r * 0.2)
    for xw in (xc - r * 1.3, xc + r * 1.3):
        c.ellipse(xw, yb - r, r, r, BICYCLE, frame, thickness=max(1, int(round(t))))
    c.line((xc - r * 1.3, yb - r), (xc, yb - r * 1.9), t, BICYCLE, frame)
    c.line((xc + r * 1.3, yb - r), (xc, yb - r * 1.9), t, BICYCLE, frame)
    c.line((xc - r * 1.3, yb - r), (xc + r * 1.3, yb - r), t, BICYCLE, frame)
    _person(c, xc, yb - r * 1.3, f * 0.8, cls=RIDER)


def _pole(c, xc, yb, f):
    rng = c.rng
    ph = max(4.0, f * c.h * rng.uniform(0.5, 0.8))
    pw = max(1.0, f * c.w * 0.008)
    top = yb - ph
    c.rect(xc - pw, top, xc + pw, yb, POLE, c.look((115, 115, 120), 12, fine=5))
    s = max(2.0, f * c.h * 0.05)
    if rng.random() < 0.6:  # a traffic sign: round, triangular or square
        face = c.look(((200, 30, 30), (30, 70, 180), (225, 200, 40))[rng.integers(3)], 12)
        shape, cy = rng.integers(3), top + s
        if shape == 0:
            c.ellipse(xc, cy, s, s, SIGN, face)
            c.ellipse(xc, cy, s * 0.6, s * 0.6, SIGN, c.look((235, 235, 235), 8))
        elif shape == 1:
            c.poly([(xc - s, cy + s * 0.8), (xc + s, cy + s * 0.8), (xc, cy - s)], SIGN, face)
        else:
            c.rect(xc - s, cy - s, xc + s, cy + s, SIGN, face)
    elif rng.random() < 0.6:  # a traffic light: dark housing, one lamp lit
        c.rect(xc - s * 0.6, top, xc + s * 0.6, top + s * 3, LIGHT, c.look((30, 30, 30), 6))
        lit = rng.integers(3)
        for k, rgb in enumerate(((230, 40, 30), (240, 180, 30), (40, 220, 90))):
            on = rgb if k == lit else tuple(v // 4 for v in rgb)
            c.ellipse(xc, top + s * (0.5 + k), s * 0.4, s * 0.4, LIGHT, c.look(on, 5, fine=4))


def street_scene(rng, h, w):
    """One random street scene: (RGB uint8 (H, W, 3), trainId-with-EGO classes uint8 (H, W))."""
    c = _Canvas(rng, h, w)
    hz = h * rng.uniform(0.38, 0.5)  # horizon: buildings stand on it and the road starts there
    c.rect(0, 0, w, h, SKY, c.look((115, 165, 220), 12, fine=3, blotch=(14, 14, 10), grad=(70, 50, 20)))

    x = -w * rng.uniform(0, 0.1)
    while x < w:
        bw = w * rng.uniform(0.12, 0.3)
        if rng.random() < 0.8:
            _building(c, x, rng.uniform(0.03 * h, max(0.04 * h, hz - 0.12 * h)), x + bw, hz)
        x += bw
    for _ in range(rng.integers(0, 3)):  # low walls
        x0 = w * rng.uniform(-0.1, 0.8)
        c.rect(x0, hz - h * rng.uniform(0.04, 0.09), x0 + w * rng.uniform(0.1, 0.35), hz + 1, WALL,
               c.look((180, 170, 150), 12, fine=9))
    for _ in range(rng.integers(1, 5)):  # trees: trunk and crown are both vegetation
        xt, yb, r = w * rng.uniform(0, 1), hz + h * rng.uniform(0, 0.04), h * rng.uniform(0.06, 0.14)
        c.rect(xt - r * 0.12, yb - r * 1.6, xt + r * 0.12, yb, VEGETATION, c.look((85, 65, 45), 10))
        c.ellipse(xt, yb - r * 1.8, r * rng.uniform(0.8, 1.3), r, VEGETATION,
                  c.look((60, 110, 40), 12, fine=14, blotch=(12, 28, 8)))
    if rng.random() < 0.5:  # a fence of light bars on a dark backing
        x0, x1, fh = w * rng.uniform(-0.1, 0.6), w * rng.uniform(0.5, 1.1), h * rng.uniform(0.03, 0.07)
        c.rect(x0, hz - fh, x1, hz + 1, FENCE, c.look((75, 65, 55), 10))
        ys, xs = c.box(x0, hz - fh, x1, hz + 1)
        xx = np.arange(xs.start, xs.stop)
        period = max(2, int(w * 0.012))
        c.part[ys, xs][:, xx % period < period // 2 + 1] = c.look((175, 150, 125), 12)

    # Ground: sidewalk everywhere, terrain on some sides, the road as a trapezoid to a vanishing point.
    c.rect(0, hz, w, h, SIDEWALK, c.look((170, 145, 160), 12, fine=6))
    vx, half = w * rng.uniform(0.35, 0.65), w * rng.uniform(0.03, 0.08)
    lb, rb = w * rng.uniform(-0.3, 0.15), w * rng.uniform(0.85, 1.3)
    for side, edge in ((-1, lb), (1, rb)):
        if rng.random() < 0.4:
            out = side * w * rng.uniform(0.15, 0.35)
            c.poly([(vx + side * half * 2, hz), (edge + out, h), (vx + side * 2 * w, h), (vx + side * 2 * w, hz)],
                   TERRAIN, c.look((145, 150, 85), 12, fine=10, blotch=(12, 16, 8)))
    yy, xx = np.ogrid[:h, :w]
    tile = max(3, int(h * 0.03))
    c.paint((c.label == SIDEWALK) & ((yy % tile == 0) | (xx % (2 * tile) == 0)), c.look((130, 115, 125), 8))
    c.poly([(vx - half, hz), (vx + half, hz), (rb, h), (lb, h)], ROAD, c.look((90, 90, 95), 10, fine=8))
    lane, cb = np.zeros((h, w), np.uint8), (lb + rb) / 2
    for t0 in np.arange(rng.uniform(0, 0.15), 1, 0.2):  # dashed centre line, wider when nearer
        t1, poly = t0 + 0.1, []
        for t, s in ((t0, 1), (t1, 1), (t1, -1), (t0, -1)):
            poly.append((vx + (cb - vx) * t + s * w * 0.006 * (0.2 + t), hz + (h - hz) * t))
        cv2.fillPoly(lane, [np.round(np.array(poly)).astype(np.int32)], 1)
    c.paint((lane == 1) & (c.label == ROAD), c.look((225, 225, 215), 8, fine=5))

    def road_x(y, side, frac):  # x of a point 'frac' road widths beyond one road edge at height y
        t = (y - hz) / (h - hz)
        left, right = vx - half + (lb - vx + half) * t, vx + half + (rb - vx - half) * t
        return (left - frac * (right - left)) if side < 0 else (right + frac * (right - left))

    # Things, drawn far to near so that nearer ones cover farther ones.
    things = []
    for _ in range(rng.integers(1, 5)):
        yb = hz + (h - hz) * rng.uniform(0.15, 0.9)
        xc = road_x(yb, -1, -rng.uniform(0.15, 0.85))  # somewhere across the road
        things.append((yb, _big_vehicle if rng.random() < 0.2 else _car, xc))
    for _ in range(rng.integers(0, 4)):
        yb = hz + (h - hz) * rng.uniform(0.1, 0.9)
        things.append((yb, _person, road_x(yb, rng.choice((-1, 1)), rng.uniform(0.03, 0.25))))
    if rng.random() < 0.35:
        yb = hz + (h - hz) * rng.uniform(0.2, 0.9)
        things.append((yb, _cyclist, road_x(yb, rng.choice((-1, 1)), -0.1)))
    for _ in range(rng.integers(1, 5)):
        yb = hz + (h - hz) * rng.uniform(0.05, 0.6)
        things.append((yb, _pole, road_x(yb, rng.choice((-1, 1)), rng.uniform(0.02, 0.12))))
    for yb, draw, xc in sorted(things, key=lambda thing: thing[0]):
        draw(c, xc, yb, max(0.05, (yb - hz) / (h - hz)))

    if rng.random() < 0.85:  # the ego-vehicle hood: void, as in the real data
        eh = h * rng.uniform(0.05, 0.1)
        c.ellipse(w / 2, h + h * 0.3, w * 0.8, h * 0.3 + eh, EGO, c.look((30, 32, 38), 6, fine=4, grad=(30, 30, 30)))
    return c.render()


def _save(path, data):
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
    atomic_write(path, write)  # an interrupted run never leaves half a file


def _save_png(path, array):
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise UserError(f"could not encode {path} as PNG.")
    _save(path, buf.tobytes())


def _complete(root, params, samples, lists):
    try:
        with open(os.path.join(root, "demo_data.json")) as f:
            if json.load(f) != params:
                return False
    except (OSError, ValueError):
        return False
    paths = [rel for _, _, img, labels in samples for rel in [img] + [lab for lab, _ in labels]] + list(lists)
    return all(os.path.isfile(os.path.join(root, p)) for p in paths)


def _build(root, params, samples, lists, verbose):
    """samples: (split index, index, image path, [(label path, class -> value table)]); lists: name -> lines."""
    root = str(root)
    if os.path.exists(root) and not os.path.isdir(root):
        raise UserError(f"{root} is a file; give --out a folder (it is created if missing).")
    if _complete(root, params, samples, lists):
        if verbose:
            print(f"{root} already holds this {params['dataset']} demo set; nothing to do.")
        return root
    meta = os.path.join(root, "demo_data.json")
    if os.path.exists(meta):
        os.remove(meta)  # until the new set is complete, it must not look complete
    h, w = params["size"]
    kind = ("cityscapes", "camvid").index(params["dataset"])
    for k, i, img, labels in samples:
        rgb, cls = street_scene(np.random.default_rng([params["seed"], kind, k, i]), h, w)
        _save_png(os.path.join(root, img), np.ascontiguousarray(rgb[..., ::-1]))  # cv2 writes BGR
        for lab, table in labels:
            _save_png(os.path.join(root, lab), table[cls])
    for name, lines in lists.items():
        _save(os.path.join(root, name), "".join(line + "\n" for line in lines).encode())
    _save(meta, (json.dumps(params, indent=1) + "\n").encode())
    if verbose:
        counts = ", ".join(f"{params['n_' + s]} {s}" for s in SPLITS)
        print(f"wrote {params['dataset']} demo set to {root}: {counts} images of {h}x{w}, "
              f"lists {', '.join(lists)}")
    return root


def _params(dataset, n_train, n_val, n_test, size, seed):
    size = [int(v) for v in size]
    if len(size) != 2 or min(size) < 1 or min(n_train, n_val, n_test) < 0 or seed < 0:
        raise ValueError("need size (H, W) >= 1, counts >= 0 and seed >= 0")
    return dict(dataset=dataset, n_train=int(n_train), n_val=int(n_val), n_test=int(n_test), size=size,
                seed=int(seed), version=GENERATOR_VERSION)


def make_cityscapes(root, n_train=24, n_val=6, n_test=6, size=(256, 512), seed=0, verbose=False):
    """Cityscapes layout: leftImg8bit/, gtFine/ (labelTrainIds and labelIds) and the four lists."""
    params = _params("cityscapes", n_train, n_val, n_test, size, seed)
    samples, lists = [], {}
    for k, split in enumerate(SPLITS):
        lines, cities = [], CITIES[split]
        for i in range(params["n_" + split]):
            city = cities[i % len(cities)]
            stem = f"{city}_{i // len(cities):06d}_000019"
            img = f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png"
            if split == "test":  # the real test labels are withheld, so the test list has images only
                samples.append((k, i, img, []))
                lines.append(img)
                continue
            gt = f"gtFine/{split}/{city}/{stem}_gtFine_"
            samples.append((k, i, img, [(gt + "labelTrainIds.png", TO_TRAIN_ID), (gt + "labelIds.png", TO_LABEL_ID)]))
            lines.append(f"{img} {gt}labelTrainIds.png")
        lists[f"cityscapes_{split}_list.txt"] = lines
    lists["cityscapes_trainval_list.txt"] = lists["cityscapes_train_list.txt"] + lists["cityscapes_val_list.txt"]
    return _build(root, params, samples, lists, verbose)


def make_camvid(root, n_train=24, n_val=6, n_test=6, size=(180, 240), seed=0, verbose=False):
    """SegNet CamVid layout: {train,val,test}/ and {train,val,test}annot/ and the four lists."""
    params = _params("camvid", n_train, n_val, n_test, size, seed)
    samples, lists = [], {}
    for k, split in enumerate(SPLITS):
        lines, seqs = [], CAMVID_SEQS[split]
        for i in range(params["n_" + split]):
            name = f"{seqs[i % len(seqs)]}_{30 * (i // len(seqs)):06d}.png"
            samples.append((k, i, f"{split}/{name}", [(f"{split}annot/{name}", TO_CAMVID)]))
            lines.append(f"{split}/{name} {split}annot/{name}")
        lists[f"camvid_{split}_list.txt"] = lines
    lists["camvid_trainval_list.txt"] = lists["camvid_train_list.txt"] + lists["camvid_val_list.txt"]
    return _build(root, params, samples, lists, verbose)


SHAPE_CLASSES = ("background", "disc", "box", "triangle", "bar")
SHAPE_LOOKS = ((200, 60, 50), (60, 170, 70), (60, 90, 200), (220, 200, 60))  # RGB of classes 1..4, jittered
SHAPE_COLOURS = ((0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0))  # colour masks' classes
CUSTOM_LAYOUTS = ("voc", "binary", "colour")


def shapes(rng, h, w, outline=False):
    """A textured background with 2-6 discs, boxes, triangles and bars: (RGB uint8 (H, W, 3), classes uint8
    (H, W), 0..4). With outline, each shape's border is 255 (void), as in Pascal VOC's masks."""
    c = _Canvas(rng, h, w)
    c.rect(0, 0, w, h, 0, c.look(rng.uniform(70, 180, 3), 20, fine=12, blotch=(25, 25, 25)))
    for _ in range(rng.integers(2, 7)):
        cls = int(rng.integers(1, 5))
        look = c.look(SHAPE_LOOKS[cls - 1], 18, fine=8)
        x, y, r = w * rng.uniform(0.1, 0.9), h * rng.uniform(0.1, 0.9), min(h, w) * rng.uniform(0.1, 0.22)
        if cls == 1:
            c.ellipse(x, y, r, r, cls, look)
        elif cls == 2:
            c.rect(x - r, y - r * 0.8, x + r, y + r * 0.8, cls, look)
        elif cls == 3:
            c.poly([(x - r, y + r), (x + r, y + r), (x, y - r)], cls, look)
        else:
            c.line((x - 1.5 * r, y - r), (x + 1.5 * r, y + r), max(2.0, r * 0.35), cls, look)
    rgb, label = c.render()
    if outline:
        edge = cv2.morphologyEx(label, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        label = np.where(edge, 255, label).astype(np.uint8)
    return rgb, label


def _palette_png(path, label):  # PIL writes palettized PNGs; cv2 cannot
    image = Image.fromarray(label, mode="L")
    image.putpalette([v for colour in default_palette(256) for v in colour])
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def make_custom(root, layout, n_train=24, n_val=6, n_test=0, size=(96, 128), seed=0, verbose=False):
    """Shapes in a layout of your own data: 'voc' (5 classes, VOC palette PNGs read by index, 255 outlines),
    'binary' (0/255 masks: shape or not), 'colour' (RGB masks and labelmap.txt; test images without masks)."""
    params = _params(layout, n_train, n_val, n_test, size, seed)
    root = str(root)
    if os.path.exists(root) and not os.path.isdir(root):
        raise UserError(f"{root} is a file; give --out a folder (it is created if missing).")
    h, w = params["size"]
    kind = CUSTOM_LAYOUTS.index(layout)
    sets = {}
    for k, split in enumerate(SPLITS):
        for i in range(params["n_" + split]):
            rgb, label = shapes(np.random.default_rng([params["seed"], 10 + kind, k, i]), h, w, outline=layout == "voc")
            bgr, name = np.ascontiguousarray(rgb[..., ::-1]), f"{split}_{i:04d}"
            labelled = split != "test"
            if layout == "voc":
                ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
                _save(os.path.join(root, "JPEGImages", f"{name}.jpg"), buf.tobytes())
                if labelled:
                    _palette_png(os.path.join(root, "SegmentationClass", f"{name}.png"), label)
                sets.setdefault(split, []).append(name)  # test.txt names images without masks, as VOC's
            elif layout == "binary":
                _save_png(os.path.join(root, "images", f"{name}.png"), bgr)
                if labelled:
                    _save_png(os.path.join(root, "masks", f"{name}.png"), np.where(label > 0, 255, 0).astype(np.uint8))
            else:
                _save_png(os.path.join(root, "images", split, f"{name}.png"), bgr)
                if labelled:
                    mask = np.asarray(SHAPE_COLOURS, np.uint8)[label]
                    _save_png(os.path.join(root, "masks", split, f"{name}.png"), np.ascontiguousarray(mask[..., ::-1]))
    for split, names in sets.items():
        text = "".join(n + "\n" for n in names)
        _save(os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt"), text.encode())
    if layout == "colour":  # CVAT's export format
        lines = ["# label:color_rgb:parts:actions"] + [f"{n}:{r},{g},{b}::" for n, (r, g, b) in
                                                       zip(SHAPE_CLASSES, SHAPE_COLOURS)]
        _save(os.path.join(root, "labelmap.txt"), "".join(line + "\n" for line in lines).encode())
    if verbose:
        print(f"wrote {layout} shapes dataset to {root}: " + ", ".join(f"{params['n_' + s]} {s}" for s in SPLITS)
              + f" images of {h}x{w}; next: python tools/prepare_dataset.py {root}")
    return root
