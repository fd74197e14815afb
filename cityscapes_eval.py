"""Evaluate a checkpoint on the Cityscapes val set: per-class IoU, mean IoU, prediction PNGs.

    python cityscapes_eval.py --gpus 0 --val_data_list ./dataset/list/Cityscapes/cityscapes_val_list.txt \
        --resume ./checkpoint/cityscapes/CGNet_M3N21bs16gpu2_ontrain/model_cityscapes_train_on_trainset.pth
"""
from dataset.specs import CITYSCAPES
from engine.cli import eval_parser
from engine.evaluate import evaluate
from utils.errors import run_cli


def get_args_parser():
    return eval_parser(CITYSCAPES, "--val_data_list", CITYSCAPES.val_list, "./result/cityscapes/val/",
                       "Evaluate CGNet on labelled Cityscapes images (batch 1, full resolution).")


def main(args):
    return evaluate(args, CITYSCAPES, "--val_data_list")


if __name__ == "__main__":
    run_cli(main, get_args_parser())
