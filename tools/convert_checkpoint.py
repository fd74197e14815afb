"""Write a CGNet checkpoint in this project's self-contained format: weights, network and preprocessing.

    python tools/convert_checkpoint.py checkpoint/mmseg/cgnet_512x1024_60k_cityscapes_20201101_110254-124ea03b.pth \
        checkpoint/mmseg/cgnet_512x1024_ours.pth
    python tools/convert_checkpoint.py model_cityscapes_train_on_trainset.pth cgnet_cityscapes.pth \
        --inform_data_file ./dataset/wtfile/cityscapes_inform.pkl

IN may be one of mmsegmentation's CGNet release files, an original-release file ({"epoch", "model"}, with or
without the `module.` prefix), a training checkpoint of this project or a bare CGNet state_dict. OUT is
{"epoch", "model", "network", "dataset", "preprocess"}: every script builds the right network from it and
subtracts its mean, and the original's loader still reads its "model". Only mmsegmentation's files say
their preprocessing; for the others the mean comes from --inform_data_file, or, for 19 classes, is the
Cityscapes mean the original release computed (a notice says so).
"""
import argparse
import os
import sys

import numpy as np

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dataset.inform import CITYSCAPES_MEAN_BGR, read_inform  # noqa: E402
from engine.checkpoint import load_weights, read_weights, self_contained  # noqa: E402
from model import build_model  # noqa: E402
from utils.checkpoint import save_checkpoint  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.files import check_writable_file  # noqa: E402

DATASETS = {19: "cityscapes", 11: "camvid"}


def get_args_parser():
    p = argparse.ArgumentParser(description="Write a CGNet checkpoint (mmsegmentation's, the original release's "
                                "or this project's) as one self-contained file: weights, network, preprocessing.")
    p.add_argument("input", metavar="IN", help="checkpoint to convert")
    p.add_argument("output", metavar="OUT", help="file to write")
    p.add_argument("--inform_data_file", default=None,
                   help="statistics file whose mean the network was trained with (files that do not record it)")
    return p


def cgnet_network(state_dict, path):
    """build_model's arguments for a CGNet state_dict with the original's names: M-1 blocks in level2, N-1 in level3."""
    head = state_dict.get("classifier.0.conv.weight")
    if head is None:
        raise UserError(f"IN {path} holds no CGNet classifier (classifier.0.conv.weight); give a CGNet checkpoint.")
    def blocks(stage):
        return len({k.split(".")[1] for k in state_dict if k.startswith(f"{stage}.")})
    return {"name": "CGNet", "classes": head.shape[0], "M": blocks("level2") + 1, "N": blocks("level3") + 1}


def file_mean(weights, network, args):
    """What preprocessing subtracts from the RGB image for these weights (see dataset.datasets.normalize)."""
    if weights.mean is not None:
        return weights.mean
    if args.inform_data_file:
        if not os.path.isfile(args.inform_data_file):
            raise UserError(f"--inform_data_file {args.inform_data_file} does not exist; give the statistics file "
                            f"the network was trained with.")
        return read_inform(args.inform_data_file)["mean"]  # computed on BGR images, subtracted as it is (ORIGINAL §3)
    if network["classes"] == 19:
        print(f"notice: {args.input} does not record its preprocessing; using the Cityscapes mean the original "
              f"release computed, {list(CITYSCAPES_MEAN_BGR)} (give --inform_data_file for another).")
        return np.asarray(CITYSCAPES_MEAN_BGR, np.float32)
    raise UserError(f"IN {args.input} does not record its preprocessing and has {network['classes']} classes; give "
                    f"--inform_data_file, the statistics file it was trained with.")


def main(args):
    check_writable_file(args.output, "OUT")
    weights = read_weights(args.input, "IN")
    trained = weights.ckpt.get("args") if isinstance(weights.ckpt.get("args"), dict) else {}
    if weights.network:
        network = dict(weights.network)
    elif trained.get("model", "CGNet") != "CGNet":
        raise UserError(f"IN {args.input} is a {trained['model']} checkpoint; only CGNet checkpoints are converted.")
    else:
        network = cgnet_network(weights.state_dict, args.input)
    try:
        model = build_model(**network)
    except ValueError as e:  # e.g. a state_dict with no level2/level3 blocks
        raise UserError(f"IN {args.input} is not a CGNet checkpoint that can be built: {e}.") from None
    load_weights(model, args.input, "IN", weights=weights)  # strict: every parameter fits, or a UserError says why
    mean = file_mean(weights, network, args)
    dataset = weights.dataset or trained.get("dataset") or DATASETS.get(network["classes"])
    epoch = weights.ckpt.get("epoch", 0) if isinstance(weights.ckpt.get("epoch"), int) else 0
    save_checkpoint(self_contained(weights.state_dict, network, dataset, mean, epoch), args.output)
    print(f"wrote {args.output}: {network['name']} M{network.get('M')}N{network.get('N')}, {network['classes']} "
          f"classes ({dataset}), from a file of layout '{weights.layout}'; preprocessing subtracts "
          f"{[round(float(m), 2) for m in mean]} from the RGB image.")
    return {"output": args.output, "network": network, "dataset": dataset, "mean": [float(m) for m in mean]}


if __name__ == "__main__":
    run_cli(main, get_args_parser())
