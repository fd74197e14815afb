"""Train CGNet on CamVid (SegNet version, 360x480) with the original recipe: train+val, 800 epochs.

    python camvid_train.py                       # the original command: defaults = train+val, batch 8
    python camvid_train.py --train_data_list ./dataset/list/CamVid/camvid_train_list.txt --train_type ontrain
"""
from dataset.specs import CAMVID
from engine.cli import train_parser
from engine.train import train
from utils.errors import run_cli


def get_args_parser():
    return train_parser(CAMVID)


def main(args):
    return train(args, CAMVID)


if __name__ == "__main__":
    run_cli(main, get_args_parser())
