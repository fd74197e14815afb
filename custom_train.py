"""Train CGNet on a dataset of your own, prepared by tools/prepare_dataset.py: the CamVid recipe, with the
classes, lists, crop size and statistics read from DATA_DIR/cgnet_dataset.json.

    python tools/prepare_dataset.py ./data/mine
    python custom_train.py --data_dir ./data/mine       # into ./checkpoint/mine/CGNet_M3N21bs8..._ontrain/
    python custom_train.py --data_dir ./data/mine --weights model_cityscapes_train_on_trainset.pth   # transfer
"""
import sys

from engine.cli import custom_spec, spec_of_argv, train_parser
from engine.train import train
from utils.errors import run_cli


def get_args_parser(argv=None):
    return train_parser(spec_of_argv(sys.argv[1:] if argv is None else argv))


def main(args):
    return train(args, custom_spec(args.data_dir))


if __name__ == "__main__":
    run_cli(main, get_args_parser())
