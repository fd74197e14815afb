"""Your own dataset: how its masks are read, and the description dataset.prepare writes (classes files:
dataset.classes_file; formats: dataset.prepare).

The description (DATA_DIR/cgnet_dataset.json) is what custom_train.py and custom_test.py read their defaults
from; dataset.specs.spec_from_description turns it into a DatasetSpec.
"""
import json
import os

import numpy as np
from PIL import Image

from utils.errors import UserError

DESCRIPTION = "cgnet_dataset.json"
PREFIX = "cgnet"                        # cgnet_train_list.txt, cgnet_inform.pkl: names a user's files rarely have
INFORM = f"{PREFIX}_inform.pkl"         # the statistics (mean, class weights) of the train list
LABELS = os.path.join(".cgnet", "labels")  # converted masks, when the loader cannot read the user's as they are
IGNORE = 255
INDEX_MODES = ("L", "P", "I;16", "I;16B", "I", "1", "LA", "PA")  # one value per pixel: a class index
COLOUR_MODES = ("RGB", "RGBA")
JPEG_COLOURS = 16  # more unknown colours than this in one mask: the anti-aliasing or JPEG noise of a lossy save


def list_name(split):
    return f"{PREFIX}_{split}_list.txt"


def read_mask(path):
    """(values, kind, palette): an (H, W) index array and "grey" (8-bit, what the loader reads as it is),
    "index" (other single-channel modes) or "palette" (a palettized PNG, read by its index as VOC's are,
    palette = its colours), or an (H, W, 3) uint8 RGB array and "colour"."""
    try:
        with Image.open(path) as im:
            im.load()
            mode, palette = im.mode, im.getpalette()
            if mode in COLOUR_MODES:
                return np.asarray(im.convert("RGB")), "colour", None
            if mode not in INDEX_MODES:
                raise UserError(f"mask {path} has the image mode {mode}; masks must be single-channel class-index "
                                f"PNGs, palettized PNGs or RGB colour PNGs.")
            if mode in ("LA", "PA"):  # a transparency channel means nothing here
                im = im.getchannel(0)
            values = np.asarray(im)
    except UserError:
        raise
    except Exception:  # PIL raises several types for broken files, all alike here
        raise UserError(f"mask {path} cannot be decoded (damaged, or not an image); re-export it as PNG or remove "
                        f"it.") from None
    if mode == "1":
        values = values.astype(np.uint8)  # bilevel PNGs: 0 and 1
    if mode in ("P", "PA") and palette:
        colours = np.asarray(palette, np.uint8)[:768].reshape(-1, 3)
        return values, "palette", [[int(v) for v in c] for c in colours]
    return values, "grey" if mode == "L" else "index", None


def colour_to_index(rgb, colours):
    """(H, W, 3) RGB -> (H, W) int64 class index; -1 where a colour is not one of `colours`."""
    code = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in colours], np.int64)
    order = np.argsort(keys)
    pos = np.clip(np.searchsorted(keys[order], code), 0, len(keys) - 1)
    found = keys[order][pos] == code
    return np.where(found, order[pos], -1)


def read_description(data_dir):
    """The description prepare_dataset.py wrote into data_dir, checked enough to build a spec from."""
    path = os.path.join(data_dir, DESCRIPTION)
    if not os.path.isdir(data_dir):
        raise UserError(f"--data_dir {data_dir} is not a folder; give your dataset's folder, prepared with "
                        f"python tools/prepare_dataset.py {data_dir}.")
    if not os.path.isfile(path):
        raise UserError(f"--data_dir {data_dir} holds no {DESCRIPTION}; run python tools/prepare_dataset.py "
                        f"{data_dir} first (it checks the masks and writes the lists and that description).")
    try:
        with open(path, encoding="utf-8") as f:
            desc = json.load(f)
        names, palette = desc["class_names"], desc["palette"]
        ok = (isinstance(desc["name"], str) and isinstance(desc["ignore_label"], int) and len(names) >= 1
              and len(palette) == len(names) and all(len(c) == 3 for c in palette))
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise UserError(f"{path} is damaged (expected name, class_names, palette and ignore_label); run python "
                        f"tools/prepare_dataset.py {data_dir} again to rewrite it.")
    return desc
