"""A Cityscapes download on disk: its layout checked, each missing *_gtFine_labelTrainIds.png made, and the rows of
the frames found (tools/prepare_cityscapes.py is the command line).

Each missing label image is made with the official cityscapesScripts conversion (the one csCreateTrainIdLabelImgs
applies to every file), or, where a frame has only its *_gtFine_labelIds.png, by mapping those ids through
cityscapesScripts' label table (the same id -> trainId pairs).
"""
import contextlib
import io

import numpy as np
from PIL import Image

from utils.errors import UserError
from utils.files import atomic_write
from utils.log import notice
from utils.progress import iterate

ZIPS = {"leftImg8bit": "leftImg8bit_trainvaltest.zip", "gtFine": "gtFine_trainvaltest.zip"}
IMAGE, POLYGONS, LABEL = "_leftImg8bit.png", "_gtFine_polygons.json", "_gtFine_labelTrainIds.png"
LABEL_IDS = "_gtFine_labelIds.png"


def check_layout(data_dir):
    if not data_dir.is_dir():
        raise UserError(f"{data_dir} is not a folder: create it and unzip {ZIPS['leftImg8bit']} and "
                        f"{ZIPS['gtFine']} into it.")
    for top, zip_name in ZIPS.items():
        for folder in (data_dir / top, data_dir / top / "train", data_dir / top / "val"):
            if not folder.is_dir():
                raise UserError(f"{folder} not found: unzip {zip_name} into {data_dir} "
                                f"(DATA_DIR is the folder that holds leftImg8bit/ and gtFine/).")
    if not (data_dir / "leftImg8bit" / "test").is_dir():
        notice(f"{data_dir / 'leftImg8bit' / 'test'} not found, so the test list will be empty.")


def make_train_ids(data_dir):
    """Make each missing train/val *_labelTrainIds.png from its *_polygons.json, or from its *_labelIds.png where
    the frame has no polygons; returns how many were made."""
    todo = {}
    for split in ("train", "val"):
        for suffix in (LABEL_IDS, POLYGONS):  # polygons second: the official conversion wins where both exist
            for source in sorted((data_dir / "gtFine" / split).glob(f"*/*{suffix}")):
                label = source.with_name(source.name[:-len(suffix)] + LABEL)
                if not label.is_file():
                    todo[label] = source
    if not todo:
        return 0
    try:
        from cityscapesscripts.helpers.annotation import Annotation
        from cityscapesscripts.helpers.labels import labels
        from cityscapesscripts.preparation.json2labelImg import createLabelImage
    except ImportError:
        raise UserError("the labelTrainIds images are made with cityscapesScripts, which is not installed: "
                        "pip install cityscapesScripts==2.3.0 and run this again.") from None
    # labelId -> trainId as cityscapesScripts' table has it; ids without a trainId (and unknown ids) -> 255.
    to_train_id = np.full(256, 255, np.uint8)
    for entry in labels:
        if 0 <= entry.id < 256 and 0 <= entry.trainId < 255:
            to_train_id[entry.id] = entry.trainId
    for label, source in iterate(todo.items(), "making *_gtFine_labelTrainIds.png"):
        if source.name.endswith(POLYGONS):
            image = polygons_to_train_ids(source, data_dir, Annotation, createLabelImage)
        else:
            image = Image.fromarray(to_train_id[label_ids(source, data_dir)])
        atomic_write(label, lambda tmp: image.save(tmp, format="PNG"))
    return len(todo)


def polygons_to_train_ids(polygons, data_dir, Annotation, createLabelImage):
    said = io.StringIO()
    try:
        # cityscapesScripts reports a bad file by printing and calling sys.exit: catch both.
        with contextlib.redirect_stdout(said):
            annotation = Annotation()
            annotation.fromJsonFile(str(polygons))
            return createLabelImage(annotation, "trainIds")
    except (Exception, SystemExit) as e:
        reason = (said.getvalue().strip().splitlines() or [repr(e)])[0].removeprefix("ERROR: ")
        raise UserError(f"{polygons} could not be converted ({reason}): unzip {ZIPS['gtFine']} into "
                        f"{data_dir} again.") from e


def label_ids(path, data_dir):
    """The (H, W) uint8 labelIds of a *_gtFine_labelIds.png."""
    try:
        with Image.open(path) as image:
            mode, ids = image.mode, np.asarray(image)
    except Exception:  # PIL raises several types for a file that is not an image
        mode = None
    if mode != "L":
        raise UserError(f"{path} is not a single-channel labelIds image: unzip {ZIPS['gtFine']} into "
                        f"{data_dir} again.")
    return ids


def samples_on_disk(data_dir):
    """Rows for every frame that has an image or an annotation: a frame lacking one side stays in, so that
    verify() names what is missing rather than the frame silently dropping out."""
    rows = {}
    for split in ("train", "val", "test"):
        frames = {(p.parent.name, p.name[:-len(IMAGE)])
                  for p in (data_dir / "leftImg8bit" / split).glob(f"*/*{IMAGE}")}
        if split != "test":
            for suffix in (POLYGONS, LABEL):
                frames |= {(p.parent.name, p.name[:-len(suffix)])
                           for p in (data_dir / "gtFine" / split).glob(f"*/*{suffix}")}
        rows[split] = [(f"leftImg8bit/{split}/{city}/{stem}{IMAGE}",) +
                       ((f"gtFine/{split}/{city}/{stem}{LABEL}",) if split != "test" else ())
                       for city, stem in sorted(frames)]
    rows["trainval"] = rows["train"] + rows["val"]
    return rows


def how_to_get(data_dir, relative_path):
    return f"unzip {ZIPS[relative_path.split('/')[0]]} into {data_dir} again and rerun this script"
