"""Train CGNet on Cityscapes with the original recipe.

    # the original commands: on train (for val evaluation), on train+val (for the test server)
    python cityscapes_train.py --gpus 0,1 --dataset cityscapes --train_type ontrain \
        --train_data_list ./dataset/list/Cityscapes/cityscapes_train_list.txt --max_epochs 300
    python cityscapes_train.py --gpus 0,1 --dataset cityscapes --train_type ontrainval \
        --train_data_list ./dataset/list/Cityscapes/cityscapes_trainval_list.txt --max_epochs 350
    # the same on 2 GPUs with torchrun (batch 16 in total, 8 per GPU)
    torchrun --nproc_per_node 2 cityscapes_train.py --dataset cityscapes --train_type ontrain ...
"""
from dataset.specs import CITYSCAPES
from engine.cli import train_parser
from engine.train import train
from utils.errors import run_cli


def get_args_parser():
    return train_parser(CITYSCAPES)


def main(args):
    return train(args, CITYSCAPES)


if __name__ == "__main__":
    run_cli(main, get_args_parser())
