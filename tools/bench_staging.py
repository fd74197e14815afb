"""What leaving no partial evaluation outputs costs, on 500 labels of 1024x2048 (the Cityscapes val set's size).

    python tools/bench_staging.py [--images 500]

Two ways to make sure a bad label found late leaves nothing half-written:
(a) check every label's values before writing anything: each label is decoded once more (load_label);
(b) write the PNGs into a hidden folder and move them into place at the end (utils.files.staged_folder),
    which the eval and test scripts do.
The labels are synthetic (flat 32x32-pixel regions of random classes); nothing is kept.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

from dataset.datasets import load_label  # noqa: E402
from dataset.palettes import CITYSCAPES_PALETTE  # noqa: E402
from utils.args import positive_int  # noqa: E402
from utils.files import save_png, staged_folder  # noqa: E402

H, W = 1024, 2048


def main(args):
    rng = np.random.default_rng(0)
    bases = [cv2.resize(rng.choice(np.r_[np.arange(19), 255], size=(H // 32, W // 32)).astype(np.uint8), (W, H),
                        interpolation=cv2.INTER_NEAREST) for _ in range(10)]
    with tempfile.TemporaryDirectory() as root:
        labels = [os.path.join(root, f"label{i:04d}.png") for i in range(args.images)]
        for i, path in enumerate(labels):
            cv2.imwrite(path, bases[i % len(bases)])
        kb = sum(os.path.getsize(p) for p in labels) / len(labels) / 1024
        start = time.perf_counter()
        for path in labels:
            load_label(path, 19, 255)
        check = time.perf_counter() - start
        print(f"(a) decoding and checking {args.images} labels of {H}x{W} ({kb:.0f} KB each): {check:.2f} s "
              f"({check / args.images * 1000:.1f} ms per label)")

        start = time.perf_counter()
        with staged_folder(os.path.join(root, "seg")) as stage:
            for i in range(args.images):
                save_png(os.path.join(stage, f"pred{i:04d}.png"), bases[i % len(bases)])
                save_png(os.path.join(stage, f"pred{i:04d}_color.png"), bases[i % len(bases)], CITYSCAPES_PALETTE)
            write = time.perf_counter() - start
            start = time.perf_counter()
        move = time.perf_counter() - start
        print(f"    writing the {2 * args.images} prediction PNGs (the same either way): {write:.1f} s")
        print(f"(b) moving the {2 * args.images} staged PNGs into place: {move * 1000:.0f} ms")


def get_args_parser():
    parser = argparse.ArgumentParser(description="Cost of checking labels first against staging the outputs.")
    parser.add_argument("--images", type=positive_int, default=500, help="labels and predictions to measure on")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
