"""COCO JSON (the COCO exports of CVAT, Label Studio and Roboflow) as class-index masks, through pycocotools.

Files: annotations/instances_*.json (COCO, CVAT), _annotations.coco.json in each split folder (Roboflow), any
JSON in DATA_DIR or annotations/ with images, annotations and categories (Label Studio), or --coco FILE. A file
whose name or folder says train, val/valid or test gives that split; several such files are used as train/val.
An image's file_name is looked for beside the file, in images/ and in DATA_DIR (and for instances_X.json in
images/X/, as CVAT's COCO 1.0 export puts them in images/default/, and in X/, as COCO's own train2017/).

Classes: the categories in id order as 1..n with background 0 (a category named background is class 0; an added
background that no pixel is, as in our own pre-labels, is dropped: the categories are then the classes 0..n-1);
a Roboflow group category (the supercategory of the others, with no annotation of its own) is no class. A
classes file (--classes) fixes the order instead; pixels no annotation covers are then its background class, or
ignored (255) where it names none.

Overlaps: the annotations of an image are drawn in file order, each later one on top (as LabelMe and CVAT draw
them). Crowd regions (iscrowd 1, RLE) are pixels of their category like any other: CVAT and Label Studio export
brush masks that way. Polygons and RLE, compressed or not, are decoded by pycocotools; an annotation with
neither (a box) is drawn as its bbox.
"""
import json
import re

import numpy as np

from dataset.classes_file import BACKGROUND_NAMES
from dataset.layouts import split_name
from utils.errors import UserError
from utils.files import top_level_keys

try:
    from pycocotools import mask as coco_mask
except ImportError:  # a requirement (requirements.txt); said in one sentence where COCO is read
    coco_mask = None


def require():
    if coco_mask is None:
        raise UserError("reading COCO JSON needs pycocotools; install it with pip install -r requirements.txt.")


KEYS = ("images", "annotations", "categories")


def looks_like_coco(path):
    return top_level_keys(path, KEYS) >= set(KEYS)


def find(data_dir):
    """The COCO files of data_dir, sorted."""
    candidates = set(data_dir.glob("annotations/*.json")) | set(data_dir.glob("*.json"))
    candidates |= set(data_dir.glob("*/_annotations.coco.json")) | set(data_dir.glob("_annotations.coco.json"))
    return sorted(p for p in candidates if not p.name.startswith("cgnet_") and looks_like_coco(p))


def split_of(path):
    """train/val/test from a COCO file's name or its folder's, else None."""
    for text in (path.stem, path.parent.name):
        for word in re.split(r"[^A-Za-z]+", text):
            if split_name(word):
                return split_name(word)
    return None


def load(path):
    require()
    try:
        with open(path, encoding="utf-8-sig") as f:
            doc = json.load(f)
        ok = all(isinstance(doc.get(k), list) for k in ("images", "annotations", "categories"))
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        ok = False
    if not ok:
        raise UserError(f"COCO file {path} cannot be read as COCO JSON (a JSON object with the lists images, "
                        f"annotations and categories); export it again.")
    return doc


def class_names(docs, table):
    """(names, background index or None, whether background was added): a classes file's order (background only
    if it names one: else what no annotation covers is ignored, 255), else background then the categories of every
    file in id order (Roboflow's group category, the supercategory of others used by no annotation, left out).
    An added background that no pixel turns out to be is dropped again by dataset.prepare."""
    added = False
    if table:
        names = [n for n, _ in table]
    else:
        cats = {c["id"]: c["name"] for _, doc in docs for c in doc["categories"]}
        used = {a.get("category_id") for _, doc in docs for a in doc["annotations"]}
        groups = {c.get("supercategory") for _, doc in docs for c in doc["categories"] if c.get("name") !=
                  c.get("supercategory")}
        names = []
        for i, name in sorted(cats.items()):
            if (i in used or name not in groups) and name not in names and name.lower() not in BACKGROUND_NAMES:
                names.append(name)
        names = ["background"] + names
        added = not any(name.lower() in BACKGROUND_NAMES for name in cats.values())
    background = next((i for i, n in enumerate(names) if n.lower() in BACKGROUND_NAMES), None)
    return names, background, added


def image_candidates(path, data_dir, file_name):
    name = file_name.replace("\\", "/")
    base = name.rsplit("/", 1)[-1]
    folders = [path.parent, path.parent / "images", data_dir / "images", data_dir, path.parent.parent / "images"]
    subset = re.fullmatch(r"instances_(.+)", path.stem)
    if subset:  # CVAT's COCO 1.0 with images: images/default/ for instances_default.json (datumaro's rule)
        folders += [data_dir / "images" / subset.group(1), path.parent.parent / "images" / subset.group(1),
                    data_dir / subset.group(1)]  # COCO's own annotations/instances_train2017.json: train2017/
    return [f / n for f in folders for n in (name, base)]


def images(path, doc, data_dir):
    """[(image id, image path, (H, W) stated, annotations in file order)]; unknown image or category refused."""
    known = {im["id"]: im for im in doc["images"]}
    cats = {c["id"] for c in doc["categories"]}
    per_image = {i: [] for i in known}
    for n, a in enumerate(doc["annotations"], 1):
        if a.get("image_id") not in known:
            raise UserError(f"COCO file {path} annotation {a.get('id', n)} names the image id {a.get('image_id')}, "
                            f"which its images list does not hold; export the dataset again.")
        if a.get("category_id") not in cats:
            raise UserError(f"COCO file {path} annotation {a.get('id', n)} names the category id "
                            f"{a.get('category_id')}, which its categories list does not hold; export the dataset "
                            f"again.")
        per_image[a["image_id"]].append(a)
    out = []
    for image_id, im in known.items():
        found = next((c for c in image_candidates(path, data_dir, str(im.get("file_name", ""))) if c.is_file()), None)
        if found is None:
            raise UserError(f"COCO file {path} names the image {im.get('file_name')!r} (id {image_id}), which is "
                            f"neither beside it nor in {data_dir / 'images'}; put the images there.")
        out.append((image_id, found, (im.get("height"), im.get("width")), per_image[image_id]))
    return out


def annotation_mask(path, a, h, w):
    """(H, W) bool of one annotation."""
    seg = a.get("segmentation")
    what = f"COCO file {path} annotation {a.get('id')}"
    if isinstance(seg, dict):
        size = list(seg.get("size") or [])
        if size != [h, w]:
            raise UserError(f"{what} is an RLE of size {size} (H, W) but its image is {[h, w]}; export the dataset "
                            f"again.")
        counts = seg.get("counts")
        rle = coco_mask.frPyObjects(seg, h, w) if isinstance(counts, list) else \
            {"size": size, "counts": counts.encode() if isinstance(counts, str) else counts}
    elif isinstance(seg, list) and seg:
        for polygon in seg:
            if len(polygon) < 6:
                raise UserError(f"{what} has a polygon of {len(polygon) // 2} point(s), fewer than 3; delete or "
                                f"redraw it.")
        rle = coco_mask.merge(coco_mask.frPyObjects([list(map(float, p)) for p in seg], h, w))
    else:
        x, y, bw, bh = a.get("bbox") or (0, 0, 0, 0)  # a box without a segmentation: its rectangle
        rle = coco_mask.frPyObjects([[x, y, x + bw, y, x + bw, y + bh, x, y + bh]], h, w)[0]
    return coco_mask.decode(rle).astype(bool)


def rasterize(path, doc, annotations, size, value_of, background):
    """(H, W) uint8 class indices of one image: its annotations in file order, later on top."""
    h, w = size
    label = np.full((h, w), 255 if background is None else background, np.uint8)
    names = {c["id"]: c["name"] for c in doc["categories"]}
    for a in annotations:
        name = names[a["category_id"]]
        value = value_of.get(name, background if name.lower() in BACKGROUND_NAMES else None)
        if value is None:
            raise UserError(f"COCO file {path} has the category {name!r}, which the classes file does not name; add "
                            f"it to the classes file.")
        label[annotation_mask(path, a, h, w)] = value
    return label


def encode(mask):
    """A compressed RLE of an (H, W) bool mask, as JSON can hold it."""
    require()
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
