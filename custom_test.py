"""Evaluate a checkpoint on a dataset of your own (prepared by tools/prepare_dataset.py): per-class IoU with
its class names, mIoU, metrics.json, confusion.png, class-id and colour PNGs in its palette. A list without
masks gets the predictions alone.

    python custom_test.py --data_dir ./data/mine                   # the val list, the newest run's checkpoint
    python custom_test.py --data_dir ./data/mine --test_data_list ./data/mine/cgnet_test_list.txt \\
        --resume ./checkpoint/mine/CGNet_M3N21bs8gpu1_ontrain/checkpoint.pth
"""
import glob
import os
import sys

from dataset.datasets import find_list
from engine.cli import custom_spec, eval_parser, spec_of_argv
from engine.evaluate import evaluate, predict_list
from utils.log import log
from utils.errors import UserError, run_cli


def get_args_parser(argv=None):
    spec = spec_of_argv(sys.argv[1:] if argv is None else argv)
    p = eval_parser(spec, "--test_data_list", spec.test_list, f"./result/{spec.name}/",
                    "Evaluate CGNet on a dataset of your own (batch 1, full resolution), or predict a list "
                    "without masks.")
    p.set_defaults(resume=spec.resume_eval)  # the dataset's checkpoint folder: its newest run is evaluated
    return p


def newest_checkpoint(path):
    """A checkpoint file as it is; for a folder, the newest checkpoint.pth under it (the last run trained)."""
    if not os.path.isdir(path):
        if path.endswith(("/", os.sep)):  # the default: the dataset's checkpoint folder, not made yet
            raise UserError(f"--resume {path} does not exist: no run of this dataset was trained here yet; train "
                            f"first (python custom_train.py --data_dir ...) or give the checkpoint to evaluate.")
        return path
    found = glob.glob(os.path.join(glob.escape(path), "**", "checkpoint.pth"), recursive=True)
    if not found:
        raise UserError(f"--resume {path} holds no checkpoint.pth; train first (python custom_train.py --data_dir "
                        f"...) or give the checkpoint file to evaluate.")
    newest = max(found, key=os.path.getmtime)
    log(f"evaluating {newest}, the newest checkpoint.pth under {path}")
    return newest


def has_masks(path):
    """Whether the list names `image mask` pairs; an unreadable list is left to read_list to report."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return next((len(line.split()) for line in f if line.strip()), 2) != 1
    except (OSError, UnicodeDecodeError):
        return True


def main(args):
    spec = custom_spec(args.data_dir)
    args.resume = newest_checkpoint(args.resume)
    if has_masks(find_list(args.test_data_list, args.data_dir)):
        return evaluate(args, spec, "--test_data_list")
    if args.metrics:
        raise UserError(f"--metrics scores predictions against masks, but --test_data_list {args.test_data_list} "
                        f"names images only; drop --metrics to write the predictions, or give a list with masks.")
    return predict_list(args, spec, "--test_data_list")


if __name__ == "__main__":
    run_cli(main, get_args_parser())
