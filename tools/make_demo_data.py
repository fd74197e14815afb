"""Make small synthetic street scenes in the exact on-disk layouts of Cityscapes and CamVid, and small
datasets of shapes in the layouts of your own data (voc, binary, colour): the command line of
dataset/synthetic.py, which says what each holds.

    python tools/make_demo_data.py --dataset cityscapes --out demo/cityscapes
    python tools/make_demo_data.py --dataset camvid --out demo/camvid --train 8 --size 90,120
    python tools/make_demo_data.py --dataset voc --out demo/shapes_voc

A folder that already holds a complete set made with the same arguments (demo_data.json says
which) is left as it is.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

from dataset.synthetic import CUSTOM_LAYOUTS, make_camvid, make_cityscapes, make_custom  # noqa: E402
from utils.args import non_negative_int, positive_int, size_pair  # noqa: E402
from utils.errors import run_cli  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description="Make a small synthetic street dataset in the Cityscapes or CamVid "
                                            "layout, or a dataset of shapes in a layout of your own data (voc, "
                                            "binary, colour).")
    p.add_argument("--dataset", required=True, choices=("cityscapes", "camvid") + CUSTOM_LAYOUTS)
    p.add_argument("--out", required=True, help="folder to write (created if missing)")
    p.add_argument("--train", type=positive_int, default=24, help="number of train images")
    p.add_argument("--val", type=positive_int, default=6, help="number of val images")
    p.add_argument("--test", type=positive_int, default=6, help="number of test images")
    p.add_argument("--size", type=size_pair, default=None,
                   help="H,W; default 256,512 (cityscapes), 180,240 (camvid), 96,128 (voc, binary, colour)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    return p


def main(args):
    if args.dataset in CUSTOM_LAYOUTS:
        return make_custom(args.out, args.dataset, args.train, args.val, args.test, size=args.size or (96, 128),
                           seed=args.seed, verbose=True)
    make = make_cityscapes if args.dataset == "cityscapes" else make_camvid
    size = args.size or ((256, 512) if args.dataset == "cityscapes" else (180, 240))
    return make(args.out, args.train, args.val, args.test, size=size, seed=args.seed, verbose=True)


if __name__ == "__main__":
    run_cli(main, get_args_parser())
