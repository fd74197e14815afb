"""Export a checkpoint to ONNX with the preprocessing inside the graph, checked with ONNX Runtime.

    python tools/export_onnx.py --resume model_350.pth --out cgnet.onnx [--image street.png]

The graph takes `image`: uint8 (N, H, W, 3), BGR as cv2.imread returns it, N, H and W dynamic; it
returns `labels` (N, H, W) int64 class ids and `logits` (N, C, H, W) float32. The file records what
inference needs (network, classes, class names, palette, dataset, input mean) in its metadata_props under
'cgnet', so every script takes it as --resume. After writing, the graph is run with ONNX Runtime on an
image (--image, or a synthetic street scene) and compared with the PyTorch model; below 99.9 % argmax
agreement the file is not kept and the exit status is 2.
Needs `onnx` and `onnxruntime` (requirements-dev.txt); inference with the file needs only onnxruntime.
"""
import argparse
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dataset.datasets import normalize, to_tensor  # noqa: E402
from engine.checkpoint import build_for_inference, checkpoint_mean, class_table  # noqa: E402
from engine.exported import load_exported, metadata  # noqa: E402
from model.inference import Deployable, fold_bn  # noqa: E402
from dataset.synthetic import street_scene  # noqa: E402
from utils.log import log  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.files import atomic_write, check_writable_file  # noqa: E402

MIN_AGREEMENT = 0.999


def export(model, mean, path, record, opset=17):
    """Write the Deployable of `model` (BN folded: a smaller graph, exact in fp32) to `path`, with the
    metadata text `record` (engine.exported.metadata) under 'cgnet'."""
    import onnx
    net = Deployable(fold_bn(model), mean).eval()
    example = torch.zeros(1, 64, 128, 3, dtype=torch.uint8)
    with warnings.catch_warnings():
        # The TorchScript exporter: the torch.export-based one would add onnxscript as a dependency and
        # gives the same graph for this network, which has no data-dependent control flow.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(net, (example,), path, input_names=["image"], output_names=["labels", "logits"],
                          dynamic_axes={"image": {0: "N", 1: "H", 2: "W"}, "labels": {0: "N", 1: "H", 2: "W"},
                                        "logits": {0: "N", 2: "H", 3: "W"}},
                          opset_version=opset, dynamo=False)
    graph = onnx.load(path)
    onnx.helper.set_model_props(graph, {"cgnet": record})
    onnx.save(graph, path)


def load_checkpoint(args):
    """(model, Weights, mean, record) of --resume; record(precision) is the metadata text to embed."""
    model, weights = build_for_inference(args.resume)
    mean = checkpoint_mean(weights, args.resume, args.inform_data_file)
    names, palette = class_table(weights)
    return model, weights, mean, lambda precision: metadata(weights.network, weights.dataset, mean, names, palette, precision)


def check_image(args):
    """The BGR image the export is checked on: --image, or a synthetic street scene."""
    if not args.image:
        return np.ascontiguousarray(street_scene(np.random.default_rng(0), 512, 1024)[0][:, :, ::-1])
    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"--image {args.image} is not a readable image; give a png/jpg file or leave it out.")
    return image


def compare(path, model, mean, image_bgr):
    """(largest logit difference, argmax agreement) of the exported file, run as every script runs it
    (engine.exported), against the PyTorch model on one BGR image."""
    predict, _ = load_exported(path)
    logits = predict(torch.from_numpy(image_bgr)[None]).numpy()
    with torch.inference_mode():
        ref = model(to_tensor(normalize(image_bgr, mean))[None]).numpy()
    return float(np.abs(logits - ref).max()), float((logits.argmax(1) == ref.argmax(1)).mean())


def main(args):
    check_writable_file(args.out, "--out")
    image = check_image(args)
    model, weights, mean, record = load_checkpoint(args)
    result = {}

    def write(tmp):  # exported and checked under a temporary name: a refused graph never appears at --out
        export(model, mean, tmp, record("fp32"), args.opset)
        diff, agreement = compare(tmp, model, mean, image)
        result.update(max_logit_diff=diff, agreement=agreement)
        log(f"ONNX Runtime vs PyTorch on a {image.shape[1]}x{image.shape[0]} image: largest logit difference "
            f"{diff:.2e}, argmax agreement {agreement * 100:.3f} %")
        least = MIN_AGREEMENT if args.min_agreement is None else args.min_agreement
        if agreement < least:
            raise UserError(f"the exported graph agrees with PyTorch on only {agreement * 100:.3f} % of the pixels "
                            f"(< {least * 100:.1f} %), so {args.out} was not written; report this with "
                            f"your torch and onnxruntime versions.")

    atomic_write(args.out, write)
    log(f"wrote {args.out}: input 'image' uint8 (N, H, W, 3) BGR; outputs 'labels' (N, H, W) int64, "
        f"'logits' (N, {weights.network['classes']}, H, W) float32")
    return result


def get_args_parser():
    p = argparse.ArgumentParser(description="Export a CGNet checkpoint to ONNX (preprocessing inside the graph).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--resume", required=True, help="checkpoint: ours (self-contained) or the original release's")
    p.add_argument("--out", default="cgnet.onnx", help="ONNX file to write")
    p.add_argument("--image", default=None, help="image to check the graph on (default: a synthetic street scene)")
    p.add_argument("--inform_data_file", default=None,
                   help="statistics file whose mean to use for a checkpoint that records none (the original "
                        "release's); 19-class checkpoints default to the release's Cityscapes mean")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    p.add_argument("--min_agreement", type=float, default=None,
                   help=f"least argmax agreement with PyTorch (default {MIN_AGREEMENT}); random weights, whose argmax "
                        f"rounding flips, need less")
    return p


if __name__ == "__main__":
    run_cli(main, get_args_parser())
