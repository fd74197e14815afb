"""Where the images and masks of your own data are, how they pair, and which split each pair is in.

The layouts are a table (TABLE), tried in order, the first that fits wins; each has a test made from the tool's
real output shape (tests/test_layouts.py). Pascal VOC's JPEGImages/ + SegmentationClass/ (+ ImageSets/
Segmentation/*.txt; CVAT's Segmentation mask export); an image folder + a mask folder (images/ + masks/,
annotations/, labels/, ...; mmsegmentation's img_dir/ + ann_dir/, KITTI's image_2/ + semantic/), optionally with
train/ val/ test/ (or training/ validation/) inside both (ADE20K); folder pairs named alike (Kaggle's X/ +
X_masks/, X_annot, ...; image-segmentation-keras' images_prepped_X/ + annotations_prepped_X/), a split word in the
name giving the split; split folders (train/, val/ or valid/ or validation/, test/, training/, testing/) each
holding such a pair (the U-Net tutorial's train/image/ + train/label/, KITTI's training/image_2/ +
training/semantic/), or images and masks side by side (Roboflow's train/x.jpg + train/x_mask.png); else side by
side in images/ or DATA_DIR (x.jpg + x_mask.png). Where none fits, --images DIR --masks DIR (or a CSV of
image,mask[,split] rows, --pairs) say where they are. A mask pairs with the image of the same relative name, or
of that name plus a suffix (_mask, _label, _gt, _L, ...) found from the names when only one suffix pairs them
best, else given with --mask_suffix.
"""
import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from utils.errors import UserError
from utils.files import IMAGE_EXTENSIONS

MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".gif", ".jpg", ".jpeg")  # JPEGs only to refuse them by name
IMAGE_FOLDERS = ("images", "image", "img_dir", "imgs", "img", "image_2", "JPEGImages")
MASK_FOLDERS = ("masks", "mask", "annotations", "labels", "label", "ann_dir", "semantic", "gt", "groundtruth",
                "ground_truth", "segmentations", "SegmentationClass")
PAIR_ENDINGS = ("_masks", "_mask", "_labels", "_label", "_annot", "annot", "_gt", "_segmentation")
PAIR_WORDS = (("images", "annotations"), ("images", "masks"), ("images", "labels"), ("image", "label"),
              ("image", "mask"), ("img", "ann"), ("img", "mask"))  # images_prepped_train/ + annotations_prepped_train/
SUFFIXES = ("_mask", "_masks", "-mask", "_label", "_labels", "_gt", "_GT", "_L", "_seg", "_segmentation",
            "_annotation", "_anno", "_m")  # side by side in one folder only these: "img_1" + "0" is no pair
SPLITS = ("train", "val", "test")
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test"}


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


def split_in(name):
    """The split a folder's name says (train, images_prepped_test, ...), else None."""
    return next((split_name(w) for w in re.split(r"[^A-Za-z]+", name) if split_name(w)), None)


def first(folder, names, extensions):
    return next((folder / n for n in names if has_files(folder / n, extensions)), None)


def voc(data_dir):
    if (data_dir / "JPEGImages").is_dir() and (data_dir / "SegmentationClass").is_dir():
        return [Folders(data_dir / "JPEGImages", data_dir / "SegmentationClass", voc=data_dir / "ImageSets" /
                        "Segmentation")]
    return []


def folder_pair(data_dir):
    images, masks = first(data_dir, IMAGE_FOLDERS, IMAGE_EXTENSIONS), first(data_dir, MASK_FOLDERS, MASK_EXTENSIONS)
    return [Folders(images, masks)] if images and masks and images != masks else []


def named_pairs(data_dir):
    """X/ + X_masks/ (Kaggle's, with test/ alone as test images), images_prepped_X/ + annotations_prepped_X/."""
    folders = sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    pairs = []
    for folder in folders:
        names = [folder.name + e for e in PAIR_ENDINGS]
        names += [re.sub(rf"(?<![A-Za-z]){i}(?![A-Za-z])", m, folder.name) for i, m in PAIR_WORDS
                  if re.search(rf"(?<![A-Za-z]){i}(?![A-Za-z])", folder.name)]
        mask = first(data_dir, [n for n in names if n != folder.name], MASK_EXTENSIONS)
        if mask is not None:
            pairs.append(Folders(folder, mask, split_in(folder.name)))
    if not pairs:
        return []
    taken = {f.images for f in pairs} | {f.masks for f in pairs}
    test = next((p for p in folders if p not in taken and split_in(p.name) == "test"
                 and has_files(p, IMAGE_EXTENSIONS)), None)
    return pairs + ([Folders(test, None, "test")] if test else [])


def split_folders(data_dir):
    """train/ val/ test/ (or training/, validation/, valid/, testing/), each holding an image folder + a mask
    folder, or the images and masks side by side (Roboflow's); a test folder with images only gives test images."""
    found = []
    for p in sorted(p for p in data_dir.iterdir() if p.is_dir() and split_name(p.name)):
        images, masks = first(p, IMAGE_FOLDERS, IMAGE_EXTENSIONS), first(p, MASK_FOLDERS, MASK_EXTENSIONS)
        if images and masks:
            found.append(Folders(images, masks, split_name(p.name)))
        elif images and split_name(p.name) == "test":
            found.append(Folders(images, None, "test"))
        else:
            found.append(Folders(p, p, split_name(p.name), side_by_side=True))
    return found


def side_by_side(data_dir):
    folder = next((f for f in (data_dir / "images", data_dir) if f.is_dir()), None)
    return [Folders(folder, folder, side_by_side=True)] if folder else []


# (what a user would call it, how it is found): tried in order, the first that finds folders wins.
TABLE = (
    ("Pascal VOC's JPEGImages/ + SegmentationClass/ (CVAT's Segmentation mask)", voc),
    ("images/ + masks/ (or annotations/, labels/, label/, ...; mmsegmentation's img_dir/ + ann_dir/, KITTI's "
     "image_2/ + semantic/; split subfolders such as ADE20K's training/ and validation/ inside both)", folder_pair),
    ("X/ + X_masks/ as Kaggle's, images_prepped_X/ + annotations_prepped_X/", named_pairs),
    ("train/ val/ test/ (training/ validation/ testing/) each holding images/ + masks/ (U-Net's image/ + label/, "
     "KITTI's image_2/ + semantic/) or images and masks side by side", split_folders),
    ("images and masks side by side (x.jpg + x_mask.png)", side_by_side),
)
LAYOUTS = "; ".join(name for name, _ in TABLE) + "; LabelMe JSON or COCO JSON"
EXPLICIT = ("--images DIR --masks DIR (once per split, e.g. --images img/train --masks lbl/train --images img/val "
            "--masks lbl/val) or --pairs FILE.csv (rows image,mask[,split])")


def find_folders(data_dir):
    """[Folders] of the first layout of TABLE that fits data_dir, or [] when none does."""
    return next((found for _, find in TABLE for found in [find(data_dir)] if found), [])


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


def mask_pairs(data_dir, mask_suffix, folders_given=None):
    """The mask layout of data_dir (or of the Folders given): ([(split or None, image path, mask path or None)],
    the unpaired files' names, a few words on the layout), or None when no mask layout fits."""
    rows, unpaired, words = [], [], []
    for folders in folders_given or find_folders(data_dir):
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


def given_folders(images, masks):
    """[Folders] of --images DIR --masks DIR, given once per split or once for all: a pair's split is the one its
    image folder's name or its parent's says (img/train, train/image), else split subfolders inside both, else
    drawn."""
    if len(images) != len(masks):
        raise UserError(f"--images is given {len(images)} time(s) and --masks {len(masks)}; give them in pairs, one "
                        f"--masks for each --images.")
    found = []
    for i, m in zip(images, masks):
        i, m = Path(i), Path(m)
        for flag, folder in (("--images", i), ("--masks", m)):
            if not folder.is_dir():
                raise UserError(f"{flag} {folder} is not a folder; give the folder that holds the "
                                f"{'images' if flag == '--images' else 'masks'}.")
        found.append(Folders(i, m, split_in(i.resolve().name) or split_in(i.resolve().parent.name)))
    return found


def csv_pairs(path):
    """[(split or None, image, mask or None)] of a CSV of image,mask[,split] rows (a header row is allowed), paths
    relative to the CSV's folder; a test row may leave the mask empty."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = [[c.strip() for c in row] for row in csv.reader(f) if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--pairs {path} cannot be read ({getattr(e, 'strerror', None) or e}); give a UTF-8 CSV of "
                        f"image,mask[,split] rows.") from None
    if rows and rows[0][0].lower() in ("image", "images", "img", "image_path", "filename", "file"):
        rows = rows[1:]  # a header
    base, out = Path(path).resolve().parent, []
    for n, row in enumerate(rows, 1):
        where = f"--pairs {path} row {n}"
        if len(row) < 2 or len(row) > 3:
            raise UserError(f"{where} has {len(row)} column(s); give image,mask or image,mask,split.")
        split = split_name(row[2]) if len(row) == 3 and row[2] else None
        if len(row) == 3 and row[2] and split is None:
            raise UserError(f"{where} names the split {row[2]!r}; give train, val or test (or leave it empty).")
        image, mask = base / row[0], (base / row[1]) if row[1] else None
        if not image.is_file() or (mask is not None and not mask.is_file()):
            missing = image if not image.is_file() else mask
            raise UserError(f"{where} names {missing}, which does not exist; paths are relative to the CSV's folder.")
        if mask is None and split != "test":
            raise UserError(f"{where} has no mask; only a test row may leave it empty.")
        out.append((split, image, mask))
    if not out:
        raise UserError(f"--pairs {path} holds no image,mask row.")
    return out


def safe_name(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text) or "custom"
