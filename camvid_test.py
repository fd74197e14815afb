"""Evaluate a checkpoint on the CamVid test set: per-class IoU and mean IoU.

    python camvid_test.py --gpus 0 --test_data_list ./dataset/list/CamVid/camvid_test_list.txt \
        --resume ./checkpoint/camvid/CGNet_M3N21bs8gpu1_ontrainval/model_camvid_train_on_trainvalset.pth
    # add --save_seg_dir ./result/camvid/test/ to write CamVid-coloured predictions and metrics.json,
    # or --metrics ./result/camvid_test.json for the metrics alone
"""
from dataset.specs import CAMVID
from engine.cli import eval_parser
from engine.evaluate import evaluate
from utils.log import log, notice
from utils.errors import run_cli


def get_args_parser():
    p = eval_parser(CAMVID, "--test_data_list", CAMVID.test_list, None,
                    "Evaluate CGNet on the labelled CamVid test images (batch 1, full resolution).")
    p.add_argument("--gpu_nums", type=int, default=None,
                   help="accepted so the original's command line runs; the GPU count comes from --gpus")
    return p


def main(args):
    if args.gpu_nums is not None:
        notice(f"--gpu_nums {args.gpu_nums} is not used; the GPUs come from --gpus ({args.gpus!r}), "
               f"and evaluation runs on the first of them.")
    return evaluate(args, CAMVID, "--test_data_list")


if __name__ == "__main__":
    run_cli(main, get_args_parser())
