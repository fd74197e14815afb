"""Your own data, prepared for custom_train.py / custom_test.py: find its format, check every image and mask once,
decide its classes, and write the lists, a description and the statistics into DATA_DIR (tools/prepare_dataset.py
is the command line; README, 'Train on your own data').

Formats, tried in this order (or named with --format): COCO JSON (dataset.coco), masks (dataset.layouts; masks:
class-index PNGs with 255 = ignore, palettized PNGs read by index as VOC's, binary 0/255 or 0/1 masks and GIFs,
RGB colour masks read through the classes file's colours), LabelMe JSON (dataset.labelme). The user's files are
never changed; what the loader cannot read as it is (every annotation, and masks in any other form than 8-bit
grey) becomes grey class-index PNGs in DATA_DIR/.cgnet/labels/, and LabelMe's embedded images PNGs in
DATA_DIR/.cgnet/images/. A refused dataset gets one sentence naming the file, and nothing is written.
"""
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dataset import coco, custom, labelme, layouts
from dataset.classes_file import background_class, find_classes_file, read_classes
from dataset.inform import get_inform
from dataset.palettes import default_palette
from utils.log import log, notice
from utils.errors import UserError
from utils.files import check_writable_dir, save_json, save_png, save_text, staged_folder
from utils.progress import iterate, plural

FORMATS = ("auto", "coco", "masks", "labelme")
SHOW = 3  # file names quoted in a notice
BINARY_PALETTE = [[0, 0, 0], [255, 0, 0]]  # a foreground that stands out on a photo, where a GIF's white would not
IMAGES = os.path.join(".cgnet", "images")  # LabelMe's embedded images, written out for the loader


@dataclass(eq=False)  # compared by identity
class Sample:
    split: str             # train, val or test (test: an image alone)
    image: Path            # the image file (an embedded LabelMe image: where it is written)
    key: str               # posix name inside DATA_DIR: the split draw and the converted mask's name
    source: Path = None    # the mask or annotation file, named in messages
    read: object = None    # (H, W) of the image -> (values, kind, palette) as custom.read_mask
    embedded: object = None  # () -> BGR image, when the image is only inside a LabelMe file
    kind: str = None       # filled by the check: custom.read_mask's kinds, or "annotation"
    counts: dict = None    # value (colour masks: class index) -> pixels
    palette: list = None   # a palettized mask's colours
    size: tuple = None     # (H, W) of its image

    def decode(self):
        """The BGR image as the loader sees it (EXIF orientation applied), or the one inside its LabelMe file; one
        sentence naming the file when it cannot be decoded."""
        image = self.embedded() if self.embedded else cv2.imread(str(self.image), cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(f"image {self.image} cannot be decoded (damaged, or not an image); replace or remove it.")
        return image


def rel(path, data_dir):
    return Path(os.path.relpath(path, data_dir)).as_posix()


def key_of(path, data_dir):
    """A name inside DATA_DIR for any path (images outside it included): '..' becomes '_up'."""
    return "/".join("_up" if p == ".." else p for p in rel(path, data_dir).split("/"))


def from_masks(data_dir, mask_suffix, given=None, pairs=None):
    """Masks found by the layouts' table, or in the folders given (--images/--masks), or listed (--pairs)."""
    if pairs:
        rows, unpaired, words = layouts.csv_pairs(pairs), [], f"the pairs listed in {pairs}"
    else:
        found = layouts.mask_pairs(data_dir, mask_suffix, given)
        if found is None:
            if given:
                raise UserError(f"no image in {', '.join(str(f.images) for f in given)} has a mask in "
                                f"{', '.join(str(f.masks) for f in given)}; masks pair with images by name (and "
                                f"--mask_suffix).")
            return None
        rows, unpaired, words = found
    samples = [Sample(split, image, key_of(image, data_dir), mask, (lambda size, m=mask: custom.read_mask(m))
                      if mask else None) for split, image, mask in rows]
    return "masks", words, samples, unpaired, None, False


def from_labelme(data_dir, table):
    files = labelme.find(data_dir)
    if not files:
        return None
    samples, found_labels, left = [], [], 0
    for path in files:
        doc = labelme.load(path)
        image = labelme.image_of(path, doc)
        shapes, skipped = labelme.area_shapes(path, doc)
        found_labels += [s["label"] for s in shapes]
        left += skipped
        key = key_of(path.with_suffix(""), data_dir)
        embedded = None
        if image is None:
            image = data_dir / IMAGES / (key + ".png")
            embedded = lambda p=path: labelme.embedded_image(p, labelme.load(p))  # noqa: E731
        split = layouts.split_name(key.split("/", 1)[0]) if "/" in key else None
        samples.append(Sample(split, image, key, path,
                              lambda size, p=path: (labelme.rasterize(p, labelme.load(p), size, index, background),
                                                    "annotation", None), embedded))
    names, background = labelme.class_names(found_labels, table)
    index = {n: i for i, n in enumerate(names)}
    if left:
        notice(f"{plural(left, 'line or point shape')} left out: they cover no area.")
    if background is None:
        notice("no label names a background, so the pixels no shape covers are ignored (255), not a class; a "
               "classes file naming _background_ (labelme2voc's labels.txt) or a shape labelled _background_ makes "
               "them one.")
    where = files[0].parent if len({p.parent for p in files}) == 1 else data_dir
    return "LabelMe", f"{plural(len(files), 'LabelMe file')} in {where}", samples, [], names, False


def from_coco(data_dir, files, table):
    docs = [(path, coco.load(path)) for path in files]
    names, background, added = coco.class_names(docs, table)
    value_of = {n: i for i, n in enumerate(names)}
    splits = [coco.split_of(path) for path, _ in docs] if len(docs) > 1 else [None]
    if len(docs) > 1 and None in splits:
        raise UserError(f"COCO files {docs[0][0]} and {docs[1][0]} are several, but {docs[splits.index(None)][0]} "
                        f"names no split (train, val or test); give one file with --coco, or name each by its split.")
    samples, bare = [], 0
    for (path, doc), split in zip(docs, splits):
        for _, image, stated, annotations in coco.images(path, doc, data_dir):
            bare += not annotations
            samples.append(Sample(split, image, key_of(image, data_dir), path,
                                  lambda size, p=path, d=doc, a=annotations, s=stated, i=image: (
                                      check_stated(p, s, size, i) or coco.rasterize(p, d, a, size, value_of,
                                                                                    background), "annotation", None)))
    if bare:
        notice(f"{plural(bare, 'image')} of the COCO files have no annotation: read as all background.")
    words = ", ".join(str(p) for p, _ in docs) + (" (splits: " + ", ".join(splits) + ")" if splits[0] else "")
    return "COCO", words, samples, [], names, added


def check_stated(path, stated, size, image):
    if all(isinstance(v, int) for v in stated) and tuple(stated) != tuple(size):
        raise UserError(f"COCO file {path} gives {stated[1]}x{stated[0]} as the size of the image {image}, which is "
                        f"{size[1]}x{size[0]} as the loader reads it (EXIF orientation applied); export the dataset "
                        f"again.")


def find_format(data_dir, fmt, coco_file, mask_suffix, table, given=None, pairs=None):
    if given or pairs:
        return from_masks(data_dir, mask_suffix, given, pairs)
    if fmt in ("auto", "coco"):
        files = [Path(coco_file)] if coco_file else coco.find(data_dir)
        if files:
            return from_coco(data_dir, files, table)
    found = from_masks(data_dir, mask_suffix) if fmt in ("auto", "masks") else None
    if found is None and fmt in ("auto", "labelme"):
        found = from_labelme(data_dir, table)
    if found is None:
        named = {"coco": "no COCO file", "masks": "no images with masks", "labelme": "no LabelMe file"}.get(fmt)
        raise UserError(f"{data_dir} holds {named or 'none of the layouts this tool reads'}"
                        f"{'' if named else ': ' + layouts.LAYOUTS}; say where the images and masks are with "
                        f"{layouts.EXPLICIT} (docs/own-data.md).")
    if found[0] == "masks" and fmt == "auto" and labelme.find(data_dir):
        notice(f"{data_dir} also holds LabelMe files; the masks are used (--format labelme reads those).")
    return found


def check(sample, colours):
    """Decode an image and its mask or annotation; one sentence naming the file for anything the loader cannot
    use. Fills sample.kind, counts, palette, size."""
    if sample.source.suffix.lower() in (".jpg", ".jpeg"):
        raise UserError(f"mask {sample.source} is a JPEG; JPEG compression changes the class values at every edge, "
                        f"so masks must be lossless PNG: export it again as PNG.")
    image = sample.decode()
    values, kind, palette = sample.read(image.shape[:2])
    if values.shape[:2] != image.shape[:2]:
        raise UserError(f"mask {sample.source} is {values.shape[1]}x{values.shape[0]} but its image {sample.image} "
                        f"is {image.shape[1]}x{image.shape[0]} as the loader reads it (EXIF orientation applied); "
                        f"masks must match their images pixel for pixel.")
    if kind == "colour":
        values = colour_index(sample.source, values, colours)
    uniq, counts = np.unique(values, return_counts=True)
    sample.kind, sample.palette, sample.size = kind, palette, image.shape[:2]
    sample.counts = dict(zip(uniq.tolist(), counts.tolist()))


def colour_index(path, rgb, colours):
    if colours is None:
        raise UserError(f"mask {path} is an RGB colour image; give --classes FILE with one 'name R G B' line per "
                        f"class (or CVAT's labelmap.txt) so that its colours can be read.")
    index = custom.colour_to_index(rgb, colours)
    unknown = np.unique(rgb[index < 0].reshape(-1, 3), axis=0)
    if len(unknown) > custom.JPEG_COLOURS:
        raise UserError(f"mask {path} has {len(unknown)} colours that are not in the classes file; saved as JPEG or "
                        f"drawn with anti-aliasing? masks must be lossless PNG with exactly the classes' colours.")
    if len(unknown):
        shown = ", ".join(f"({r},{g},{b})" for r, g, b in unknown[:SHOW].tolist())
        raise UserError(f"mask {path} has colours not in the classes file: {shown}; add a class for each to the "
                        f"classes file (--classes) or repaint them.")
    return index


def drop_background(names, checked):
    """The classes without the background put in front of them, which no pixel is (every pixel is annotated, as
    in our own pre-labels): class v becomes v - 1, so that the classes are the categories in their order."""
    notice("every pixel is annotated, so no background class is added: the categories are the classes.")
    for c in checked:
        c.counts = {v if v == custom.IGNORE else v - 1: n for v, n in c.counts.items()}
        c.read = lambda size, read=c.read: shifted(*read(size))
    return names[1:]


def shifted(values, kind, palette):
    return np.where(values == custom.IGNORE, values, values - 1).astype(np.uint8), kind, palette


def decide_classes(classes_path, table, checked):
    """(class names, binary) of masks: the classes file's, else what the masks' values say."""
    index = [c for c in checked if c.kind != "colour"]
    values = {v for c in index for v in c.counts}
    binary = values == {0, 255} and len(index) == len(checked) and (not table or len(table) == 2)
    if table and not binary:
        n = len(table)
        for c in index:
            bad = sorted(v for v in c.counts if v >= n and v != custom.IGNORE)
            if bad:
                raise UserError(f"mask {c.source} has the values {bad[:5]} beyond the {n} classes of {classes_path} "
                                f"(0..{n - 1}) and the ignore label {custom.IGNORE}; add those classes to the "
                                f"classes file or fix the mask.")
    names = [name for name, _ in table] if table else None
    if binary:
        notice("the masks hold only the values 0 and 255: read as binary masks, 0 = background and 255 = the "
               "foreground (class 1), not 255 = ignore.")
        return names or ["background", "foreground"], True
    if names:
        return names, False
    used = sorted(v for v in values if v != custom.IGNORE)
    if used and used[-1] > 254:
        bad = next(c for c in index if max(c.counts) > 255)
        raise UserError(f"mask {bad.source} has the value {max(bad.counts)}; class values must be 0..254 (255 = "
                        f"ignore): renumber its classes.")
    if used == [0, 1]:
        notice("the masks hold only the values 0 and 1: two classes, 0 = background and 1 = foreground.")
        return ["background", "foreground"], False
    n = used[-1] + 1 if used else 1
    if len(used) < n:  # values that skip numbers: said, not renumbered behind the user's back
        total = {}
        for c in index:
            for v, count in c.counts.items():
                total[v] = total.get(v, 0) + count
        present = ", ".join(f"{v} ({plural(total[v], 'pixel')})" for v in used)
        notice(f"the masks use the class values {present}: that makes {n} classes 0..{n - 1}, "
               f"{n - len(used)} of which never occur; they are not renumbered. A classes file (--classes) names "
               f"the {n} classes in index order (its line {used[-1] + 1} names value {used[-1]}); to train only "
               f"{len(used)} classes, renumber the masks 0..{len(used) - 1}.")
    return [f"class_{i}" for i in range(n)], False


def choose_palette(table, checked, n):
    """(palette, where it came from): the classes file's colours; a two-class dataset's visible foreground; a
    palettized mask's colours (VOC's stay VOC's); else a fixed default."""
    if table and table[0][1]:
        return [list(c) for _, c in table], "classes file"
    if n == 2:
        return BINARY_PALETTE, "binary default"
    palette = next((c.palette[:n] for c in checked if c.palette and len(c.palette) >= n), None)
    return (palette, "the masks' palette") if palette else (default_palette(n), "default")


def converted(sample):
    """Where a mask the loader cannot read as it is goes, relative to DATA_DIR."""
    return Path(custom.LABELS, sample.key).with_suffix(".png").as_posix()


def write_converted(data_dir, jobs, embedded, colours, binary):
    """Grey class-index PNGs under DATA_DIR/.cgnet/labels/ (and LabelMe's embedded images under .cgnet/images/),
    appearing all together or not at all."""
    if not jobs and not embedded:
        return
    with staged_folder(str(data_dir / ".cgnet"), log) as stage:
        for c in iterate(jobs, "writing class-index masks", "masks"):
            values, kind, _ = c.read(c.size)
            if kind == "colour":
                values = custom.colour_to_index(values, colours)
            elif binary:
                values = np.where(values == 255, 1, values)
            out = Path(stage, os.path.relpath(converted(c), ".cgnet"))
            out.parent.mkdir(parents=True, exist_ok=True)
            save_png(str(out), values.astype(np.uint8))
        for c in embedded:
            out = Path(stage, os.path.relpath(c.image, data_dir / ".cgnet"))
            out.parent.mkdir(parents=True, exist_ok=True)
            save_png(str(out), np.ascontiguousarray(c.embedded()[:, :, ::-1]))


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
    save_text(path, text)


def prepare(data_dir, classes=None, val_fraction=0.2, name=None, fmt="auto", coco_file=None, mask_suffix=None,
            images=(), masks=(), pairs=None):
    """Check data_dir and write what custom_train.py needs into it; returns the description written. images and
    masks (folders, in pairs) or pairs (a CSV of image,mask[,split]) say where the masks are, for any layout."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"DATA_DIR {data_dir} is not a folder; give your dataset's folder ({layouts.LAYOUTS}).")
    for flag, path in (("--classes", classes), ("--coco", coco_file), ("--pairs", pairs)):
        if path and not os.path.isfile(path):
            raise UserError(f"{flag} {path} does not exist; give the path of a file.")
    classes_path = find_classes_file(data_dir, classes)
    table = read_classes(classes_path) if classes_path else None
    colours = [c for _, c in table] if table and table[0][1] else None
    given = layouts.given_folders(images or [], masks or []) if images or masks else None
    fmt_name, words, samples, unpaired, names, added = find_format(data_dir, fmt, coco_file, mask_suffix, table,
                                                                   given, pairs)
    log(f"found {fmt_name}: {words}" + (f"; classes from {classes_path}" if classes_path else ""))
    splits = layouts.assign([(s.split, s.key, s) for s in samples], val_fraction)
    splits = {k: [s[2] for s in v] for k, v in splits.items()}
    if not splits["train"]:
        raise UserError(f"{data_dir} holds no training image with a mask or annotation ({words}); images/a/x.jpg "
                        f"pairs with masks/a/x.png.")
    check_writable_dir(str(data_dir), "DATA_DIR")
    if unpaired:
        notice(f"{plural(len(unpaired), 'file')} left out: {', '.join(unpaired[:SHOW])}"
               + (f" and {len(unpaired) - SHOW} more" if len(unpaired) > SHOW else "") + ".")

    # Every image and mask once, before anything is written.
    checked = splits["train"] + splits["val"]
    seen = {}
    for sample in checked:
        if converted(sample) in seen:
            raise UserError(f"image {sample.image} is annotated twice ({seen[converted(sample)].source} and "
                            f"{sample.source}); keep one.")
        seen[converted(sample)] = sample
    for sample in iterate(checked, "checking images and masks", "pairs"):
        check(sample, colours)
    for sample in splits["test"]:
        sample.decode()
    if added and not any(c.counts.get(0) for c in checked):
        names = drop_background(names, checked)
    binary = False
    if names is None:
        names, binary = decide_classes(classes_path, table, checked)
    n = len(names)
    palette, source = choose_palette(table if table and len(table) == n else None, checked, n)
    pixels = [0] * n
    for c in splits["train"]:
        for v, count in c.counts.items():
            v = 1 if binary and v == 255 else v
            if v < n:
                pixels[v] += count
    if not sum(pixels):
        raise UserError(f"the training masks hold no pixel of any class (all {custom.IGNORE} = ignore); check the "
                        f"masks.")
    # The loader reads grey class-index PNGs (one cv2.imread, checked from the header) for every dataset; masks
    # in any other form are converted once here rather than decoded by a rule in every training step.
    jobs = [c for c in checked if c.kind != "grey" or binary]
    label_of = {c: converted(c) if c in jobs else rel(c.source, data_dir) for c in checked}
    write_converted(data_dir, jobs, [c for c in checked + splits["test"] if c.embedded], colours, binary)
    lists = {}
    for split in layouts.SPLITS:
        rows = [(rel(s.image, data_dir),) + ((label_of[s],) if s in label_of else ()) for s in splits[split]]
        if rows:
            lists[split] = custom.list_name(split)
            write_list(data_dir / lists[split], rows)
    name = name or layouts.safe_name(data_dir.resolve().name)
    mask_format = (fmt_name if fmt_name != "masks" else "binary 0/255" if binary else
                   "colour" if any(c.kind == "colour" for c in checked) else
                   "palette index" if any(c.kind == "palette" for c in checked) else "index")
    description = {
        "name": name, "class_names": names, "palette": [list(map(int, c)) for c in palette],
        "ignore_label": custom.IGNORE, "masks": mask_format, "palette_from": source,
        "background": background_class(names), "classes_file": classes_path, "lists": lists,
        "converted_masks": custom.LABELS if jobs else None, "samples": {s: len(splits[s]) for s in layouts.SPLITS},
        "training": {"input_size": crop_size([c.size for c in splits["train"]]),
                     "batch_size": min(8, len(splits["train"])), "max_epochs": 300},
        "train_pixels": dict(zip(names, pixels)),
    }
    inform = data_dir / custom.INFORM
    if inform.exists():
        inform.unlink()  # the masks may have changed under the same list text: always recomputed here
    get_inform(str(inform), str(data_dir), lists["train"], n, custom.IGNORE, log)
    save_json(str(data_dir / custom.DESCRIPTION), description)

    bg = description["background"]
    log(f"{name}: {n} classes ({mask_format}, colours: {source}"
        + (f", background: {names[bg]}, left unblended in overlays" if bg is not None else "") + "); "
        + ", ".join(f"{len(splits[s])} {s}" for s in layouts.SPLITS if splits[s]))
    log("training pixels per class:\n" + pixel_table(names, pixels))
    written = list(lists.values()) + [custom.DESCRIPTION, custom.INFORM] + ([custom.LABELS + "/"] if jobs else [])
    log(f"wrote {', '.join(written)} into {data_dir}; train with:\n  python custom_train.py --data_dir "
        f"{shlex.quote(str(data_dir))}")
    return description
