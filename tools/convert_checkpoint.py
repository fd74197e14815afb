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
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

from dataset.specs import spec_for  # noqa: E402
from engine.checkpoint import build_for_inference, input_mean, self_contained  # noqa: E402
from utils.checkpoint import save_checkpoint  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.files import check_writable_file  # noqa: E402

def get_args_parser():
    p = argparse.ArgumentParser(description="Write a CGNet checkpoint (mmsegmentation's, the original release's "
                                "or this project's) as one self-contained file: weights, network, preprocessing.")
    p.add_argument("input", metavar="IN", help="checkpoint to convert")
    p.add_argument("output", metavar="OUT", help="file to write")
    p.add_argument("--inform_data_file", default=None,
                   help="statistics file whose mean the network was trained with (files that do not record it)")
    return p


def main(args):
    check_writable_file(args.output, "OUT")
    model, weights = build_for_inference(args.input, "IN")  # strict: every parameter fits, or a UserError says why
    network = weights.network
    if network["name"] != "CGNet":
        raise UserError(f"IN {args.input} is a {network['name']} checkpoint; only CGNet checkpoints are converted.")
    mean = input_mean(weights, args.input, args.inform_data_file, "IN")
    spec = spec_for(weights.dataset, network["classes"])
    dataset = weights.dataset or (spec.name if spec else None)
    epoch = weights.ckpt.get("epoch", 0) if isinstance(weights.ckpt.get("epoch"), int) else 0
    save_checkpoint(self_contained(model.state_dict(), network, dataset, mean, epoch), args.output)
    print(f"wrote {args.output}: {network['name']} M{network.get('M')}N{network.get('N')}, {network['classes']} "
          f"classes ({dataset}), from a file of layout '{weights.layout}'; preprocessing subtracts "
          f"{[round(float(m), 2) for m in mean]} from the RGB image.")
    return {"output": args.output, "network": network, "dataset": dataset, "mean": [float(m) for m in mean]}


if __name__ == "__main__":
    run_cli(main, get_args_parser())
