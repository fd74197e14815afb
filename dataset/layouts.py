"""Where the images and masks of your own data are, how they pair, and which split each pair is in.

Folder pairs, first match wins: Pascal VOC's JPEGImages/ + SegmentationClass/ (+ ImageSets/Segmentation/*.txt);
images/ + masks/ (or annotations/, labels/, gt/), optionally with train/ val/ test/ inside both; Kaggle's X/ +
X_masks/ (X_mask/, X_labels/, Xannot/: train/ + train_masks/ as Carvana's, a split named X becomes that split,
and test/ without masks gives test images); split folders (train/, val/ or valid/, test/) each holding images/ +
masks/, or images and masks side by side (Roboflow's train/x.jpg + train/x_mask.png); else side by side in
images/ or DATA_DIR (x.jpg + x_mask.png). A mask pairs with the image of the same relative name, or of that name
plus a suffix (_mask, _label, _gt, _L, ...) found from the names when only one suffix pairs them best, else given
with --mask_suffix.
"""
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from utils.errors import UserError
from utils.files import IMAGE_EXTENSIONS

MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".gif", ".jpg", ".jpeg")  # JPEGs only to refuse them by name
MASK_FOLDERS = ("masks", "annotations", "labels", "gt", "groundtruth", "ground_truth", "segmentations")
PAIR_ENDINGS = ("_masks", "_mask", "_labels", "_label", "_annot", "annot", "_gt", "_segmentation")
SUFFIXES = ("_mask", "_masks", "-mask", "_label", "_labels", "_gt", "_GT", "_L", "_seg", "_segmentation",
            "_annotation", "_anno", "_m")  # side by side in one folder only these: "img_1" + "0" is no pair
SPLITS = ("train", "val", "test")
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test"}
LAYOUTS = ("images/ + masks/ (or annotations/, labels/), Pascal VOC's JPEGImages/ + SegmentationClass/, X/ + "
           "X_masks/ as Kaggle's, images and masks side by side (x.jpg + x_mask.png), LabelMe JSON or COCO JSON")


@dataclass
class Folders:
    """One folder of images and the folder of their masks (None: images only, the test split)."""
    images: Path
    masks: Path = None
    split: str = None       # a split the folder pair stands for (train/ + train_masks/)
    voc: Path = None        # VOC's ImageSets/Segmentation
    side_by_side: bool = False


def split_name(text):
    return SPLIT_NAMES.get(text.lower())


def has_files(folder, extensions):
    return folder.is_dir() and any(p.suffix.lower() in extensions for p in folder.rglob("*") if p.is_file())


def find_folders(data_dir):
    """[Folders] of the first layout that fits data_dir, or [] when none does."""
    if (data_dir / "JPEGImages").is_dir() and (data_dir / "SegmentationClass").is_dir():
        return [Folders(data_dir / "JPEGImages", data_dir / "SegmentationClass", voc=data_dir / "ImageSets" /
                        "Segmentation")]
    masks = next((data_dir / m for m in MASK_FOLDERS if has_files(data_dir / m, MASK_EXTENSIONS)), None)
    if (data_dir / "images").is_dir() and masks:
        return [Folders(data_dir / "images", masks)]
    pairs = []
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        mask = next((data_dir / (folder.name + e) for e in PAIR_ENDINGS
                     if has_files(data_dir / (folder.name + e), MASK_EXTENSIONS)), None)
        if mask is not None:
            pairs.append(Folders(folder, mask, split_name(folder.name)))
    if pairs:
        taken = {f.images for f in pairs} | {f.masks for f in pairs}
        test = next((p for p in sorted(data_dir.iterdir()) if p.is_dir() and p not in taken
                     and split_name(p.name) == "test"), None)
        return pairs + ([Folders(test, None, "test")] if test else [])
    splits = [p for p in sorted(data_dir.iterdir()) if p.is_dir() and split_name(p.name)]
    if splits:  # train/images/ + train/masks/, ...; or Roboflow's train/x.jpg + train/x_mask.png, valid/, test/
        inner = [(p, next((p / m for m in MASK_FOLDERS if has_files(p / m, MASK_EXTENSIONS)), None)) for p in splits]
        return [Folders(p / "images", m, split_name(p.name)) if m and (p / "images").is_dir() else
                Folders(p, p, split_name(p.name), side_by_side=True) for p, m in inner]
    for folder in (data_dir / "images", data_dir):
        if folder.is_dir():
            return [Folders(folder, folder, side_by_side=True)]
    return []


def files_by_stem(folder, extensions, what, skip=()):
    """{relative path without extension (posix): relative path} of the files under folder."""
    found = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.suffix.lower() not in extensions or not path.is_file() or "/." in f"/{rel}" or rel in skip:
            continue  # hidden files and folders (.ipynb_checkpoints, ._x.png of macOS, .cgnet/) are no samples
        stem = rel[:-len(path.suffix)]
        if stem in found:
            raise UserError(f"{folder / found[stem]} and {folder / rel} are two {what}s of the same name; keep one "
                            f"(images and masks pair by name).")
        found[stem] = rel
    return found


def choose_suffix(image_stems, mask_stems, where, side_by_side):
    """The name ending that turns an image's name into its mask's: '' (the same name), or the one suffix that
    pairs the most masks. Two that pair as many: refused, --mask_suffix decides."""
    counts = {"": sum(m in image_stems for m in mask_stems)} if not side_by_side else {}
    for m in mask_stems:
        for cut in range(len(m) - 1, 0, -1):
            suffix = m[cut:]
            if "/" in suffix or len(suffix) > 16 or (side_by_side and suffix not in SUFFIXES):
                continue
            if not (side_by_side or suffix in SUFFIXES or not suffix[0].isalnum()):
                continue
            if m[:cut] in image_stems:
                counts[suffix] = counts.get(suffix, 0) + 1
    best = max(counts.values(), default=0)
    winners = sorted(s for s, c in counts.items() if c == best)
    if best == 0:
        return ""
    if len(winners) > 1:
        shown = " and ".join(repr(s) for s in winners[:2])
        raise UserError(f"the masks in {where} pair with their images by two name endings, {shown}, as often; give "
                        f"--mask_suffix with the one that marks a mask (e.g. --mask_suffix {winners[-1]}).")
    return winners[0]


def pair(folders, suffix):
    """(images {stem: rel}, masks {image stem: rel}, the suffix used) of one Folders; side by side the files with
    the suffix are the masks and the others the images."""
    images = files_by_stem(folders.images, IMAGE_EXTENSIONS, "image") if not folders.side_by_side else None
    if folders.masks is None:
        return images, {}, ""
    if folders.side_by_side:
        files = files_by_stem(folders.images, IMAGE_EXTENSIONS + (".gif",), "file")
        if suffix is None:
            suffix = choose_suffix(set(files), sorted(files), folders.images, True)
            if not suffix:
                return {}, {}, ""
        masks = {s[:-len(suffix)]: rel for s, rel in files.items() if s.endswith(suffix)}
        images = {s: rel for s, rel in files.items() if not s.endswith(suffix)}
        return images, masks, suffix
    found = files_by_stem(folders.masks, MASK_EXTENSIONS, "mask")
    if suffix is None:
        suffix = choose_suffix(set(images), list(found), folders.masks, False)
    masks = {}
    for stem, rel in found.items():
        key = stem[:-len(suffix)] if suffix and stem.endswith(suffix) else stem
        if key in masks:
            raise UserError(f"{folders.masks / masks[key]} and {folders.masks / rel} are two masks of the image "
                            f"{key}; keep one (or give --mask_suffix).")
        masks[key] = rel
    return images, masks, suffix


def read_voc_sets(folder):
    sets = {}
    for split in SPLITS:
        path = folder / f"{split}.txt" if folder else None
        if path and path.is_file():
            lines = path.read_text(encoding="utf-8-sig").splitlines()
            sets[split] = {line.split()[0] for line in lines if line.strip()}
    return sets


def split_of(stem, voc_sets, subfolders, given):
    """The given split of a stem ('train', 'val', 'test'), or None when the data gives none."""
    if given:
        return given
    if voc_sets:
        return next((s for s in SPLITS if stem in voc_sets.get(s, ())), None)
    if subfolders and "/" in stem:
        return split_name(stem.split("/", 1)[0])
    return None


def held_out(names, val_fraction):
    """The names (strings) that become val: exactly the nearest count to val_fraction of them (at least one and
    not all, when there are two or more), those with the lowest hash of their name, so that the draw is the same
    on every run and every machine."""
    if val_fraction <= 0 or len(names) < 2:
        return set()
    count = min(len(names) - 1, max(1, round(val_fraction * len(names))))
    ranked = sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    return set(ranked[:count])


def assign(samples, val_fraction):
    """samples: [(split or None, key, ...)] -> {split: [sample]}; without a given val split, val_fraction of the
    training samples become val (held_out)."""
    splits = {s: [] for s in SPLITS}
    for sample in samples:
        splits[sample[0] or "train"].append(sample)
    if not splits["val"]:
        held = held_out([s[1] for s in splits["train"]], val_fraction)
        splits["val"] = [s for s in splits["train"] if s[1] in held]
        splits["train"] = [s for s in splits["train"] if s[1] not in held]
    return splits


def mask_pairs(data_dir, mask_suffix):
    """The mask layout of data_dir: ([(split or None, image path, mask path or None)], the unpaired files' names,
    a few words on the layout), or None when no mask layout fits."""
    rows, unpaired, words = [], [], []
    for folders in find_folders(data_dir):
        images, masks, suffix = pair(folders, mask_suffix)
        if not masks and folders.masks is not None:
            continue
        if folders.masks is not None and not folders.side_by_side and not set(images) & set(masks):
            raise UserError(f"no image in {folders.images} has a mask of the same name in {folders.masks} (of "
                            f"{len(images)} images and {len(masks)} masks); images/a/x.jpg pairs with masks/a/x.png "
                            f"or, with --mask_suffix _mask, masks/a/x_mask.png.")
        voc_sets = read_voc_sets(folders.voc) if folders.voc else {}
        subfolders = not voc_sets and any("/" in s and split_name(s.split("/", 1)[0]) for s in images)
        for stem, image in images.items():
            split = split_of(stem, voc_sets, subfolders, folders.split)
            mask = masks.get(stem)
            if split == "test":
                rows.append(("test", folders.images / image, None))  # test images: predictions only
            elif mask is None:
                unpaired.append(f"{folders.images / image} (no mask)")
            elif (voc_sets or subfolders) and split is None:
                unpaired.append(f"{folders.images / image} (in no split)")
            else:
                rows.append((split, folders.images / image, folders.masks / mask))
        unpaired += [f"{folders.masks / m} (no image)" for stem, m in masks.items() if stem not in images]
        where = (f"side by side in {folders.images}" if folders.side_by_side else
                 f"{folders.images.name}/ + {folders.masks.name}/" if folders.masks else f"{folders.images.name}/")
        words.append(where + (f" (mask = image name + {suffix!r})" if suffix else ""))
    if not rows:
        return None
    return rows, unpaired, ", ".join(words)


def safe_name(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text) or "custom"
