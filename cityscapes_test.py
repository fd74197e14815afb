"""Predict the Cityscapes test set: colour PNGs, and labelId PNGs ready for the evaluation server.

    python cityscapes_test.py --gpus 0 --test_data_list ./dataset/list/Cityscapes/cityscapes_test_list.txt \
        --resume ./checkpoint/cityscapes/CGNet_M3N21bs16gpu2_ontrainval/model_cityscapes_train_on_trainvalset.pth \
        --zip ./result/cityscapes_submit.zip
"""
from dataset.specs import CITYSCAPES
from engine.cli import eval_parser
from engine.evaluate import test
from utils.errors import run_cli


def get_args_parser():
    p = eval_parser(CITYSCAPES, "--test_data_list", CITYSCAPES.test_list, "./result/cityscapes/test/",
                    "Predict unlabelled Cityscapes images and write a submission for the server.", labelled=False)
    p.add_argument("--submit_dir", default="./result/cityscapes_submit/",
                   help="folder of {name}.png labelId predictions, one per image, as the server expects")
    p.add_argument("--zip", default=None, help="also pack the submission PNGs into this .zip file")
    return p


def main(args):
    return test(args, CITYSCAPES, "--test_data_list")


if __name__ == "__main__":
    run_cli(main, get_args_parser())
