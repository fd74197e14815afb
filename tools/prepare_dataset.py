"""Prepare your own segmentation data for custom_train.py / custom_test.py: check every mask once, write the
lists, a description of the classes and the statistics into DATA_DIR, and print the training command.

    python tools/prepare_dataset.py ./data/mine                    # classes.txt or labelmap.txt found there
    python tools/prepare_dataset.py ./data/mine --classes my_classes.txt --val_fraction 0.1

Layouts: images/ + masks/ (or annotations/, labels/), optionally with train/ val/ test/ subfolders inside both;
Pascal VOC's JPEGImages/ + SegmentationClass/ (+ ImageSets/Segmentation/{train,val}.txt). An image and its mask
pair by relative path and stem (images/a/x.jpg <-> masks/a/x.png). Masks: class-index PNGs (255 = ignore),
palettized PNGs read by index (VOC), binary 0/255 or 0/1 masks (two classes), RGB colour masks mapped through
the classes file's colours. The user's files are never changed; what the loader cannot read as it is goes to
DATA_DIR/.cgnet/labels/. A refused dataset gets one sentence naming the file, and nothing is written.
"""
import argparse
import hashlib
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

from dataset import custom  # noqa: E402
from dataset.inform import get_inform  # noqa: E402
from dataset.palettes import default_palette  # noqa: E402
from utils.log import log  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.files import (IMAGE_EXTENSIONS, atomic_write, check_writable_dir, save_json, save_png,  # noqa: E402
                         staged_folder)
from utils.progress import iterate, plural  # noqa: E402

MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".gif", ".jpg", ".jpeg")  # JPEGs only to refuse them by name
MASK_FOLDERS = ("masks", "annotations", "labels")
SPLITS = ("train", "val", "test")
SHOW = 3  # file names quoted in a notice
LAYOUTS = ("images/ + masks/ (or annotations/, labels/), optionally with train/ val/ test/ inside both, or "
           "Pascal VOC's JPEGImages/ + SegmentationClass/")


def get_args_parser():
    p = argparse.ArgumentParser(description="Check your own segmentation dataset and write what custom_train.py "
                                            "needs into it.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("data_dir", help=f"the dataset folder: {LAYOUTS}")
    p.add_argument("--classes", default=None, metavar="FILE",
                   help="one class per line in index order: 'name', 'name R G B' or CVAT's 'name:r,g,b::'; "
                        "default: classes.txt or labelmap.txt in DATA_DIR, else class_0, class_1, ...")
    p.add_argument("--val_fraction", type=fraction, default=0.2,
                   help="share of the pairs held out for validation when the data gives no split")
    p.add_argument("--name", default=None,
                   help="dataset name: the checkpoint/ and result/ sub-folder (default: DATA_DIR's folder name)")
    return p


def fraction(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1)")
    return value


def find_layout(data_dir):
    """(images folder, masks folder, VOC split folder or None)."""
    if (data_dir / "JPEGImages").is_dir() and (data_dir / "SegmentationClass").is_dir():
        return data_dir / "JPEGImages", data_dir / "SegmentationClass", data_dir / "ImageSets" / "Segmentation"
    masks = next((data_dir / m for m in MASK_FOLDERS if (data_dir / m).is_dir()), None)
    if (data_dir / "images").is_dir() and masks:
        return data_dir / "images", masks, None
    raise UserError(f"{data_dir} holds neither layout this tool reads: {LAYOUTS}; move the images and masks into "
                    f"such folders (see the README, 'Train on your own data').")


def files_by_stem(folder, extensions, what):
    """{relative path without extension (posix): relative path} of the files under folder."""
    found = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.suffix.lower() not in extensions or not path.is_file() or "/." in f"/{rel}":
            continue  # hidden files and folders (.ipynb_checkpoints, ._x.png of macOS) are no samples
        stem = rel[:-len(path.suffix)]
        if stem in found:
            raise UserError(f"{folder / found[stem]} and {folder / rel} are two {what}s of the same name; keep one "
                            f"(images and masks pair by name).")
        found[stem] = rel
    return found


def split_of(stem, voc_sets, subfolders):
    """The given split of a stem ('train', 'val', 'test'), or None when the data gives none."""
    if voc_sets:
        return next((s for s in SPLITS if stem in voc_sets.get(s, ())), None)
    if subfolders:
        head = stem.split("/", 1)[0]
        return head if head in SPLITS and "/" in stem else None
    return None


def read_voc_sets(folder):
    sets = {}
    for split in SPLITS:
        path = folder / f"{split}.txt" if folder else None
        if path and path.is_file():
            lines = path.read_text(encoding="utf-8-sig").splitlines()
            sets[split] = {line.split()[0] for line in lines if line.strip()}
    return sets


def assign_splits(images, masks, voc_sets, val_fraction):
    """{split: [(image rel, mask rel or None)]} and the names of unpaired files. Without a given val split,
    about val_fraction of the training pairs, drawn by a hash of their names, become val."""
    subfolders = not voc_sets and any("/" in stem and stem.split("/", 1)[0] in SPLITS for stem in images)
    splits = {s: [] for s in SPLITS}
    unpaired = []
    for stem, image in images.items():
        split = split_of(stem, voc_sets, subfolders)
        mask = masks.get(stem)
        if split == "test" and mask is None:
            splits["test"].append((image, None))
        elif mask is None:
            unpaired.append(f"{image} (no mask)")
        elif (voc_sets or subfolders) and split is None:
            unpaired.append(f"{image} (in no split)")
        else:
            splits[split or "train"].append((image, mask))
    unpaired += [f"{mask} (no image)" for stem, mask in masks.items() if stem not in images]
    if not splits["val"] and val_fraction > 0 and len(splits["train"]) > 1:
        # Each pair's place follows from its own name alone: adding images never moves the earlier ones.
        draw = {pair: int(hashlib.sha256(pair[0].encode()).hexdigest()[:12], 16) / 16 ** 12 for pair in splits["train"]}
        held = {pair for pair, u in draw.items() if u < val_fraction}
        if not held or len(held) == len(draw):  # few pairs: still one for val and the rest for training
            held = {min(draw, key=draw.get)}
        splits["val"] = [p for p in splits["train"] if p in held]
        splits["train"] = [p for p in splits["train"] if p not in held]
    return splits, unpaired


@dataclass(eq=False)  # compared by identity: `in jobs` asks "this very mask"
class Checked:
    """One mask as the check read it."""
    path: Path
    rel: str          # relative to the masks folder
    split: str
    kind: str         # custom.read_mask's: grey, index, palette, colour
    counts: dict      # value (colour masks: class index) -> pixels
    palette: list     # a palettized mask's colours, else None
    size: tuple       # (H, W) of its image


def check_pair(image_path, mask_path, colours):
    """Decode an image and its mask; one sentence naming the file for anything the loader cannot use."""
    if mask_path.suffix.lower() in (".jpg", ".jpeg"):
        raise UserError(f"mask {mask_path} is a JPEG; JPEG compression changes the class values at every edge, so "
                        f"masks must be lossless PNG: export it again as PNG.")
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)  # as the loader sees it (EXIF orientation applied)
    if image is None:
        raise UserError(f"image {image_path} cannot be decoded (damaged, or not an image); replace or remove it.")
    values, kind, palette = custom.read_mask(mask_path)
    if values.shape[:2] != image.shape[:2]:
        raise UserError(f"mask {mask_path} is {values.shape[1]}x{values.shape[0]} but its image {image_path} is "
                        f"{image.shape[1]}x{image.shape[0]} as the loader reads it (EXIF orientation applied); "
                        f"masks must match their images pixel for pixel.")
    if kind == "colour":
        if colours is None:
            raise UserError(f"mask {mask_path} is an RGB colour image; give --classes FILE with one 'name R G B' "
                            f"line per class (or CVAT's labelmap.txt) so that its colours can be read.")
        index = custom.colour_to_index(values, colours)
        unknown = np.unique(values[index < 0].reshape(-1, 3), axis=0)
        if len(unknown) > custom.JPEG_COLOURS:
            raise UserError(f"mask {mask_path} has {len(unknown)} colours that are not in the classes file; saved as "
                            f"JPEG or drawn with anti-aliasing? masks must be lossless PNG with exactly the "
                            f"classes' colours.")
        if len(unknown):
            shown = ", ".join(f"({r},{g},{b})" for r, g, b in unknown[:SHOW].tolist())
            raise UserError(f"mask {mask_path} has colours not in the classes file: {shown}; add a class for each "
                            f"to the classes file (--classes) or repaint them.")
        values = index
    uniq, counts = np.unique(values, return_counts=True)
    return kind, dict(zip(uniq.tolist(), counts.tolist())), palette, image.shape[:2]


def decide_classes(classes_path, table, checked):
    """(class names, palette or None, binary): the classes file's, else what the masks' values say."""
    index = [c for c in checked if c.kind != "colour"]
    values = {v for c in index for v in c.counts}
    if table:
        n = len(table)
        binary = values == {0, 255} and n == 2 and len(index) == len(checked)
        for c in index:
            bad = sorted(v for v in c.counts if v >= n and v != custom.IGNORE)
            if bad and not binary:
                raise UserError(f"mask {c.path} has the values {bad[:5]} beyond the {n} classes of {classes_path} "
                                f"(0..{n - 1}) and the ignore label {custom.IGNORE}; add those classes to the "
                                f"classes file or fix the mask.")
        palette = [list(colour) for _, colour in table] if table[0][1] else None
        names = [name for name, _ in table]
    else:
        binary = values == {0, 255} and len(index) == len(checked)
        names = palette = None
    if binary:
        log("notice: the masks hold only the values 0 and 255: read as binary masks, 0 = background and 255 = the "
            "foreground (class 1), not 255 = ignore.")
        return names or ["background", "foreground"], palette, True
    if names:
        return names, palette, False
    used = sorted(v for v in values if v != custom.IGNORE)
    if used and used[-1] > 254:
        bad = next(c for c in index if max(c.counts) > 255)
        raise UserError(f"mask {bad.path} has the value {max(bad.counts)}; class values must be 0..254 (255 = "
                        f"ignore): renumber its classes.")
    if used == [0, 1]:
        log("notice: the masks hold only the values 0 and 1: two classes, 0 = background and 1 = foreground.")
        return ["background", "foreground"], None, False
    n = used[-1] + 1 if used else 1
    if len(used) < n:  # values that skip numbers: said, not renumbered behind the user's back
        total = {}
        for c in index:
            for v, count in c.counts.items():
                total[v] = total.get(v, 0) + count
        present = ", ".join(f"{v} ({plural(total[v], 'pixel')})" for v in used)
        log(f"notice: the masks use the class values {present}: that makes {n} classes 0..{n - 1}, "
            f"{n - len(used)} of which never occur; they are not renumbered. A classes file (--classes) names "
            f"the {n} classes in index order (its line {used[-1] + 1} names value {used[-1]}); to train only "
            f"{len(used)} classes, renumber the masks 0..{len(used) - 1}.")
    return [f"class_{i}" for i in range(n)], None, False


def converted(mask_rel):
    """Where a mask the loader cannot read as it is goes, relative to DATA_DIR."""
    return Path(custom.LABELS, Path(mask_rel).with_suffix(".png")).as_posix()


def write_converted(data_dir, jobs, colours, binary):
    """Grey class-index PNGs under DATA_DIR/.cgnet/labels/, appearing all together or not at all."""
    if not jobs:
        return
    with staged_folder(str(data_dir / custom.LABELS), log) as stage:
        for c in iterate(jobs, "writing class-index masks", "masks"):
            values, kind, _ = custom.read_mask(c.path)
            if kind == "colour":
                values = custom.colour_to_index(values, colours)
            elif binary:
                values = np.where(values == 255, 1, values)
            out = Path(stage, Path(c.rel).with_suffix(".png"))
            out.parent.mkdir(parents=True, exist_ok=True)
            save_png(str(out), values.astype(np.uint8))


def pixel_table(names, pixels):
    total = max(1, sum(pixels))
    lines = [f"{'id':>4}  {'class':<20}{'pixels':>14}{'share':>9}"]
    for i, (name, count) in enumerate(zip(names, pixels)):
        lines.append(f"{i:>4}  {name:<20}{count:>14,}{count / total * 100:>8.2f}%" + ("" if count else "  no pixel"))
    return "\n".join(lines)


def crop_size(sizes):
    """A training crop no larger than the smallest image (at most 512), in multiples of 8 (CGNet's stride)."""
    return ",".join(str(max(8, min(512, min(s[k] for s in sizes)) // 8 * 8)) for k in (0, 1))


def write_list(path, rows):
    text = "".join(" ".join(row) + "\n" for row in rows)
    atomic_write(str(path), lambda tmp: Path(tmp).write_text(text))


def main(args):
    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        raise UserError(f"DATA_DIR {data_dir} is not a folder; give your dataset's folder, which holds the images "
                        f"and masks ({LAYOUTS}).")
    if args.classes and not os.path.isfile(args.classes):
        raise UserError(f"--classes {args.classes} does not exist; give a text file with one class per line.")
    classes_path = args.classes or next((str(data_dir / n) for n in custom.CLASSES_FILES if (data_dir / n).is_file()),
                                        None)
    table = custom.read_classes(classes_path) if classes_path else None
    colours = [c for _, c in table] if table and table[0][1] else None
    images_dir, masks_dir, voc_dir = find_layout(data_dir)
    images = files_by_stem(images_dir, IMAGE_EXTENSIONS, "image")
    masks = files_by_stem(masks_dir, MASK_EXTENSIONS, "mask")
    splits, unpaired = assign_splits(images, masks, read_voc_sets(voc_dir), args.val_fraction)
    if not splits["train"]:
        raise UserError(f"no training image in {images_dir} has a mask of the same name in {masks_dir} (of "
                        f"{plural(len(images), 'image')} and {plural(len(masks), 'mask')}); images/a/x.jpg pairs "
                        f"with masks/a/x.png.")
    check_writable_dir(str(data_dir), "DATA_DIR")
    if unpaired:
        log(f"notice: {plural(len(unpaired), 'file')} left out: {', '.join(unpaired[:SHOW])}"
            + (f" and {len(unpaired) - SHOW} more" if len(unpaired) > SHOW else "") + ".")
    if table:
        log(f"classes: {len(table)} from {classes_path}")

    # Every mask once, before anything is written.
    checked = []
    pairs = [(split, image, mask) for split in ("train", "val") for image, mask in splits[split]]
    for split, image, mask in iterate(pairs, "checking images and masks", "pairs"):
        kind, counts, palette, size = check_pair(images_dir / image, masks_dir / mask, colours)
        checked.append(Checked(masks_dir / mask, mask, split, kind, counts, palette, size))
    for image, _ in splits["test"]:
        if cv2.imread(str(images_dir / image), cv2.IMREAD_COLOR) is None:
            raise UserError(f"image {images_dir / image} cannot be decoded (damaged, or not an image); replace or "
                            f"remove it.")
    names, palette, binary = decide_classes(classes_path, table, checked)
    n = len(names)
    if n > 255:
        raise UserError(f"{classes_path} names {n} classes; at most 255 are supported (255 is the ignore label).")
    source = "classes file"
    if palette is None:  # a palettized mask's colours (VOC's stay VOC's), else a fixed default
        palette = next((c.palette[:n] for c in checked if c.palette and len(c.palette) >= n), None)
        source = "the masks' palette" if palette else "default"
        palette = palette or default_palette(n)
    pixels = [0] * n
    for c in checked:
        if c.split == "train":
            for v, count in c.counts.items():
                v = 1 if binary and v == 255 else v
                if v < n:
                    pixels[v] += count
    if not sum(pixels):
        raise UserError(f"the training masks hold no pixel of any class (all {custom.IGNORE} = ignore); check the "
                        f"masks.")
    # The loader reads grey class-index PNGs (one cv2.imread, checked from the header) for every dataset; masks
    # in any other form are converted once here rather than decoded by a rule in every training step, and the
    # user's own files are never changed.
    jobs = [c for c in checked if c.kind != "grey" or binary]
    label_of = {c.rel: (converted(c.rel) if c in jobs else (masks_dir / c.rel).relative_to(data_dir).as_posix())
                for c in checked}
    image_rel = lambda image: (images_dir / image).relative_to(data_dir).as_posix()  # noqa: E731

    write_converted(data_dir, jobs, colours, binary)
    lists = {}
    for split in SPLITS:
        rows = [(image_rel(i),) + ((label_of[m],) if m else ()) for i, m in splits[split]]
        if rows:
            lists[split] = custom.list_name(split)
            write_list(data_dir / lists[split], rows)
    name = args.name or re.sub(r"[^A-Za-z0-9_.-]+", "_", data_dir.resolve().name) or "custom"
    mask_format = "binary 0/255" if binary else ("colour" if colours and any(c.kind == "colour" for c in checked)
                                                 else "palette index" if any(c.kind == "palette" for c in checked)
                                                 else "index")
    description = {
        "name": name, "class_names": names, "palette": [list(map(int, c)) for c in palette],
        "ignore_label": custom.IGNORE, "masks": mask_format, "palette_from": source,
        "classes_file": classes_path, "lists": lists, "converted_masks": custom.LABELS if jobs else None,
        "samples": {s: len(splits[s]) for s in SPLITS},
        "training": {"input_size": crop_size([c.size for c in checked if c.split == "train"]),
                     "batch_size": min(8, len(splits["train"])), "max_epochs": 300},
        "train_pixels": dict(zip(names, pixels)),
    }
    inform = data_dir / custom.INFORM
    if inform.exists():
        inform.unlink()  # the masks may have changed under the same list text: always recomputed here
    get_inform(str(inform), str(data_dir), lists["train"], n, custom.IGNORE, log)
    save_json(str(data_dir / custom.DESCRIPTION), description)

    log(f"{name}: {n} classes ({mask_format} masks, colours: {source}); "
        + ", ".join(f"{len(splits[s])} {s}" for s in SPLITS if splits[s]))
    log("training pixels per class:\n" + pixel_table(names, pixels))
    command = f"python custom_train.py --data_dir {shlex.quote(str(data_dir))}"
    log(f"wrote {', '.join(lists.values())}, {custom.DESCRIPTION} and {custom.INFORM} into {data_dir}; "
        f"train with:\n  {command}")
    return description


if __name__ == "__main__":
    run_cli(main, get_args_parser())
