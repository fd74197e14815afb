"""Learning check of the own-data path: a 5-class synthetic dataset in the Pascal VOC layout (palettized masks,
255 outlines) goes through tools/prepare_dataset.py and custom_train.py, CGNet M3N21 from scratch on the CPU,
and must reach a validation mIoU of at least 0.5 after 15 epochs of 64x64 crops.

    python tools/learning_check.py                   # writes into demo/learning_check/, prints the result
"""
import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

import custom_train  # noqa: E402
from dataset.prepare import prepare  # noqa: E402
from dataset.synthetic import make_custom  # noqa: E402
from utils.args import positive_int  # noqa: E402
from utils.errors import run_cli  # noqa: E402

THRESHOLD = 0.5


def get_args_parser():
    p = argparse.ArgumentParser(description="Train CGNet on a 5-class synthetic VOC-layout dataset and check that "
                                            f"it reaches val mIoU >= {THRESHOLD}.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="demo/learning_check", help="folder for the dataset and the run")
    p.add_argument("--epochs", type=positive_int, default=15, help="training epochs (the check asks for 15)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the data and the training run")
    return p


def main(args):
    data = make_custom(os.path.join(args.out, "shapes_voc"), "voc", n_train=40, n_val=10, n_test=0, size=(96, 128))
    prepare(data)
    argv = ["--data_dir", data, "--max_epochs", str(args.epochs), "--input_size", "64,64", "--seed", str(args.seed),
            "--val_interval", str(args.epochs), "--savedir", os.path.join(args.out, "checkpoint") + "/",
            "--cuda", "false"]
    start = time.perf_counter()
    summary = custom_train.main(custom_train.get_args_parser(argv).parse_args(argv))
    minutes = (time.perf_counter() - start) / 60
    ok = summary["val_mIoU"] >= THRESHOLD
    print(f"learning check: val mIoU {summary['val_mIoU']:.3f} after {summary['epochs']} epochs of 64x64 crops "
          f"({minutes:.1f} min on the CPU): {'passed' if ok else 'FAILED'} (threshold {THRESHOLD})")
    if not ok:
        sys.exit(1)
    return summary


if __name__ == "__main__":
    run_cli(main, get_args_parser())
