"""Export a checkpoint to an OpenVINO IR (.xml + .bin), in fp32 or int8, with the preprocessing inside.

    python tools/export_openvino.py --resume model_350.pth --out deploy/cgnet.xml
    python tools/export_openvino.py --resume model_350.pth --out deploy/cgnet_int8.xml --int8 --calibration photos/

The graph is the ONNX export's (tools/export_onnx.py): `image` uint8 (N, H, W, 3) BGR in, `labels` (N, H, W)
int64 and `logits` (N, C, H, W) float32 out, N, H and W dynamic, C declared; weights kept in fp32. --int8 quantizes it
with NNCF's post-training quantization, calibrated on your images (files, folders read recursively, list
files of paths relative to --data_dir); use a few hundred images like those it will see. The file records
the network, classes, class names, palette, dataset and input mean (rt_info 'cgnet'): every script takes
it as --resume. After writing, the IR is checked against the PyTorch model on your data (engine/export.py): int8
on --val_data_list (or the val list the checkpoint records) by the mIoU drop, else by the argmax agreement on
images held out from --calibration; fp32 by the argmax agreement on an image or the list. Below the threshold
nothing is written, the exit status is 2 and the message gives the figures and the flag that changes it.
Running the file needs only `openvino`; exporting needs `onnx` and `nncf` too (requirements-dev.txt).
"""
import argparse
import glob
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

from dataset.datasets import find_list, image_header, read_list  # noqa: E402
from engine.backend import load  # noqa: E402
from engine.export import (CHECK_IMAGES, FORMATS, MAX_MIOU_DROP, RECIPES, CalibrationImages, Check,  # noqa: E402
                           check_image, check_out, export, int8_check, on_list)
from dataset.synthetic import street_scene  # noqa: E402
from utils.args import positive_int  # noqa: E402
from utils.log import log  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402

MIN_AGREEMENT, MIN_AGREEMENT_INT8 = FORMATS["openvino"].min_agreement, FORMATS["openvino_int8"].min_agreement
LIST_EXTENSIONS = (".txt", ".lst")


def calibration_images(inputs, data_dir):
    """The image paths of --calibration: files, folders (recursively, sorted; files in them that are not
    images are skipped) and list files (.txt: one image per line, relative to --data_dir)."""
    paths = []
    for text in inputs:
        if os.path.isdir(text):
            files = sorted(p for p in glob.glob(os.path.join(glob.escape(text), "**", "*"), recursive=True)
                           if os.path.isfile(p))
            paths += [p for p in files if not isinstance(image_header(p), str)]
        elif text.lower().endswith(LIST_EXTENSIONS) and os.path.isfile(find_list(text, data_dir)):
            paths += [s.image for s in read_list(text, data_dir, False, "--calibration")]
        elif os.path.isfile(text):
            if isinstance(image_header(text), str):
                raise UserError(f"--calibration {text} is not a readable image; give images, folders of images or "
                                f"a list file (.txt).")
            paths.append(text)
        else:
            raise UserError(f"--calibration {text} does not exist; give images, folders of images or a list file.")
    if not paths:
        raise UserError(f"--calibration {' '.join(inputs)} holds no images; give images like those the model will "
                        f"segment (a few hundred).")
    return paths


def main(args):
    fmt = "openvino_int8" if args.int8 else "openvino"
    check_out(fmt, args.out)
    if args.int8 and not args.calibration:
        raise UserError("--int8 needs --calibration images (files, folders or a list file) to set the int8 ranges "
                        "from; give a few hundred images like those the model will segment.")
    if args.calibration and not args.int8:
        raise UserError("--calibration is for --int8; add --int8, or leave --calibration out for an fp32 IR.")
    if args.int8 and args.image:
        raise UserError("--image is for the fp32 check; int8 is checked on images held out from --calibration, or on "
                        "--val_data_list: leave --image out.")
    source = load(args.resume, argparse.Namespace(inform_data_file=args.inform_data_file))
    # What the check runs on is read now, before the slow work (quantizing, checking): a wrong path fails at once.
    if args.int8:
        paths, check = int8_check(source, calibration_images(args.calibration, args.data_dir), args)
    else:
        paths, check = [], Check(min_agreement=args.min_agreement, max_miou_drop=args.max_miou_drop)
        if args.val_data_list:
            on_list(check, source, read_list(args.val_data_list, args.data_dir, True, "--val_data_list"),
                    f"--val_data_list {args.val_data_list}")
        else:
            check.image = check_image(args.image, street_scene)
    result = export(fmt, source, args.out, calibration=CalibrationImages(paths), check=check, recipe=args.recipe)
    log(f"wrote {args.out} and {os.path.splitext(args.out)[0]}.bin ({FORMATS[fmt].precision}): input "
        f"'image' uint8 (N, H, W, 3) BGR; outputs 'labels' (N, H, W) int64, 'logits' (N, {source.classes}, H, W) "
        f"float32")
    return result


def get_args_parser():
    p = argparse.ArgumentParser(description="Export a CGNet checkpoint to OpenVINO IR, fp32 or int8 (preprocessing "
                                            "inside the graph).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--resume", required=True, help="checkpoint: ours (self-contained) or the original release's")
    p.add_argument("--out", default="cgnet.xml", help="IR to write: NAME.xml (and NAME.bin beside it)")
    p.add_argument("--int8", action="store_true", help="quantize to int8 with NNCF (needs --calibration)")
    p.add_argument("--calibration", nargs="+", default=[], metavar="INPUT",
                   help="images, folders (recursively) or list files (.txt, paths relative to --data_dir) to "
                        "calibrate the int8 ranges on")
    p.add_argument("--subset_size", type=positive_int, default=300,
                   help="calibrate on at most this many of the images, spread evenly (NNCF's default count)")
    p.add_argument("--recipe", choices=list(RECIPES), default=next(iter(RECIPES)),
                   help="NNCF's options: the mixed preset (asymmetric activations) with the first and last "
                        "convolutions kept in fp32, the mixed preset alone, or NNCF's defaults "
                        "(docs/deploy.md, 'int8 on real data')")
    p.add_argument("--data_dir", default=".", help="folder the list files and the paths in them are relative to")
    p.add_argument("--image", default=None, help="fp32: image to check the IR on (default: a synthetic street scene)")
    p.add_argument("--val_data_list", default=None,
                   help="labelled list ('image label' per line, relative to --data_dir) to check the IR on; for "
                        "int8 the mIoU drop against PyTorch decides (default: the val list the checkpoint records, "
                        "if it is here, else images held out from --calibration)")
    p.add_argument("--check_images", type=positive_int, default=CHECK_IMAGES,
                   help="int8 without a labelled list: how many of the --calibration images (at most a fifth) to "
                        "hold out and check the argmax agreement on")
    p.add_argument("--min_agreement", type=float, default=None,
                   help=f"least argmax agreement with PyTorch (default {MIN_AGREEMENT} fp32; int8 on held-out "
                        f"images {MIN_AGREEMENT_INT8})")
    p.add_argument("--max_miou_drop", type=float, default=MAX_MIOU_DROP,
                   help="on a labelled list: most mIoU points the IR may lose against PyTorch")
    p.add_argument("--inform_data_file", default=None,
                   help="statistics file whose mean to use for a checkpoint that records none (the original "
                        "release's); 19-class checkpoints default to the release's Cityscapes mean")
    return p


if __name__ == "__main__":
    run_cli(main, get_args_parser())
