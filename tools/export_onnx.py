"""Export a checkpoint to ONNX with the preprocessing inside the graph, checked with ONNX Runtime.

    python tools/export_onnx.py --resume model_350.pth --out cgnet.onnx [--image street.png]

The graph takes `image`: uint8 (N, H, W, 3), BGR as cv2.imread returns it, N, H and W dynamic; it
returns `labels` (N, H, W) int64 class ids and `logits` (N, C, H, W) float32, C (the class count) declared.
The file records what inference needs (network, classes, class names, palette, dataset, input mean) in its
metadata_props under 'cgnet', so every script takes it as --resume. After writing, the graph is run with ONNX
Runtime on an image (--image, or a synthetic street scene) and compared with the PyTorch model; below 99.9 %
argmax agreement the file is not kept and the exit status is 2. engine/export.py does the work.
Needs `onnx` and `onnxruntime` (requirements-dev.txt); inference with the file needs only onnxruntime.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

from engine.backend import load  # noqa: E402
from engine.export import FORMATS, Check, check_image, check_out, export  # noqa: E402
from dataset.synthetic import street_scene  # noqa: E402
from utils.log import log  # noqa: E402
from utils.errors import run_cli  # noqa: E402

MIN_AGREEMENT = FORMATS["onnx"].min_agreement


def main(args):
    check_out("onnx", args.out)
    image = check_image(args.image, street_scene)
    source = load(args.resume, inform=args.inform_data_file, flag="--resume")
    least = MIN_AGREEMENT if args.min_agreement is None else args.min_agreement
    result = export("onnx", source, args.out, check=Check(image=image, min_agreement=least), opset=args.opset)
    log(f"wrote {args.out}: input 'image' uint8 (N, H, W, 3) BGR; outputs 'labels' (N, H, W) int64, "
        f"'logits' (N, {source.classes}, H, W) float32")
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
