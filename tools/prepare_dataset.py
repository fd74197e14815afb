"""Prepare your own segmentation data for custom_train.py / custom_test.py: check every image and mask once, write
the lists, a description of the classes and the statistics into DATA_DIR, and print the training command.

    python tools/prepare_dataset.py ./data/mine                    # classes.txt, labelmap.txt, ... found there
    python tools/prepare_dataset.py ./data/mine --classes classes.csv --val_fraction 0.1
    python tools/prepare_dataset.py ./data/carvana --mask_suffix _mask
    python tools/prepare_dataset.py ./data/cvat_export --coco ./data/cvat_export/annotations/instances_default.json

Formats: masks (images/ + masks/, VOC, Kaggle's X/ + X_masks/, side by side with a suffix), LabelMe JSON and COCO
JSON; classes files in .txt, .csv, .json and CVAT's labelmap.txt. The rules live in dataset/ (dataset.prepare
and the modules it names); docs/own-data.md gives every format and the overlap rules.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

from dataset.layouts import LAYOUTS  # noqa: E402
from dataset.prepare import FORMATS, prepare  # noqa: E402
from utils.errors import run_cli  # noqa: E402


def fraction(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1)")
    return value


def get_args_parser():
    p = argparse.ArgumentParser(description="Check your own segmentation dataset and write what custom_train.py "
                                            "needs into it.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("data_dir", help=f"the dataset folder: {LAYOUTS}")
    p.add_argument("--classes", default=None, metavar="FILE",
                   help="the classes in index order: .txt ('name', 'name R G B', CVAT's labelmap.txt), .csv (with or "
                        "without a header) or .json; default: classes.txt, labelmap.txt, labels.txt, classes.csv, "
                        "class_dict.csv, classes.json or Roboflow's _classes.csv in DATA_DIR, else the masks' "
                        "values or the annotations' labels")
    p.add_argument("--val_fraction", type=fraction, default=0.2,
                   help="share of the pairs held out for validation when the data gives no split (the nearest count)")
    p.add_argument("--name", default=None,
                   help="dataset name: the checkpoint/ and result/ sub-folder (default: DATA_DIR's folder name)")
    p.add_argument("--format", choices=FORMATS, default="auto",
                   help="what to read; auto: COCO JSON, else masks, else LabelMe JSON")
    p.add_argument("--coco", default=None, metavar="FILE",
                   help="the COCO JSON file to read (default: those found in DATA_DIR)")
    p.add_argument("--mask_suffix", default=None,
                   help="what a mask's name adds to its image's (x.jpg -> x_mask.png: _mask); default: found from "
                        "the names when one suffix pairs them")
    return p


def main(args):
    return prepare(args.data_dir, args.classes, args.val_fraction, args.name, args.format, args.coco, args.mask_suffix)


if __name__ == "__main__":
    run_cli(main, get_args_parser())
