"""Export a checkpoint to an OpenVINO IR (.xml + .bin), in fp32 or int8, with the preprocessing inside.

    python tools/export_openvino.py --resume model_350.pth --out deploy/cgnet.xml
    python tools/export_openvino.py --resume model_350.pth --out deploy/cgnet_int8.xml --int8 --calibration photos/

The graph is the ONNX export's (tools/export_onnx.py): `image` uint8 (N, H, W, 3) BGR in, `labels` (N, H, W)
int64 and `logits` (N, C, H, W) float32 out, N, H and W dynamic; weights kept in fp32. --int8 quantizes it
with NNCF's post-training quantization, calibrated on your images (files, folders read recursively, list
files of paths relative to --data_dir); use a few hundred images like those it will see. The file records
the network, classes, class names, palette, dataset and input mean (rt_info 'cgnet'): every script takes
it as --resume. After writing, the IR is checked against the PyTorch model, on an image (argmax agreement)
or on --val_data_list (the mIoU of both); below the threshold nothing is written and the exit status is 2.
Running the file needs only `openvino`; exporting needs `onnx` and `nncf` too (requirements-dev.txt).
"""
import argparse
import glob
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from dataset.datasets import image_header, load_image, load_label, normalize, read_list, to_tensor  # noqa: E402
from dataset.specs import spec_for  # noqa: E402
from engine.exported import METADATA_KEY, load_exported  # noqa: E402
from tools.export_onnx import MIN_AGREEMENT, check_image, compare, export, load_checkpoint  # noqa: E402
from utils.args import positive_int  # noqa: E402
from utils.log import log  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.files import check_writable_file  # noqa: E402
from utils.metric import ConfusionMatrix  # noqa: E402

MIN_AGREEMENT_INT8 = 0.98  # the target on the demo: int8 within 1 mIoU point and 98 % of pixels equal
MAX_MIOU_DROP = 1.0        # points, with --val_data_list
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
        elif text.lower().endswith(LIST_EXTENSIONS) and os.path.isfile(text):
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


def subset(paths, n):
    """At most n of the paths, evenly spread over the list (a list is often sorted by place or time)."""
    if len(paths) <= n:
        return paths
    return [paths[i] for i in np.linspace(0, len(paths) - 1, n).round().astype(int)]


class CalibrationImages:
    """The images as the graph takes them, decoded when NNCF iterates (it may iterate more than once)."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __iter__(self):
        for path in tqdm(self.paths, desc="calibration images", unit="image", leave=False):
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                raise UserError(f"--calibration image {path} cannot be decoded (damaged or not an image); remove "
                                f"it from the calibration images.")
            yield image[None]  # (1, H, W, 3) uint8 BGR


def quantize(model, paths):
    """NNCF's post-training quantization (its default: int8 weights and activations, min-max ranges over the
    images, fast bias correction) of an openvino.Model."""
    import nncf
    return nncf.quantize(model, nncf.Dataset(CalibrationImages(paths)), subset_size=len(paths))


def check_on_list(path, model, mean, args, classes, dataset):
    """mIoU of the IR and of the PyTorch model over --val_data_list, and their pixel agreement."""
    spec = spec_for(dataset, classes)
    ignore = spec.ignore_label if spec is not None and spec.classes == classes else 255
    samples = read_list(args.val_data_list, args.data_dir, True, "--val_data_list")
    predict, _ = load_exported(path)
    confs = {k: ConfusionMatrix(classes, ignore, "cpu") for k in ("exported", "pytorch")}
    same = total = 0
    with torch.inference_mode():
        for s in tqdm(samples, desc="checking", unit="image", leave=False):
            image, label = load_image(s.image), torch.from_numpy(load_label(s.label, classes, ignore))
            ours = predict(torch.from_numpy(image)[None]).argmax(1)[0]
            ref = model(to_tensor(normalize(image, mean))[None]).argmax(1)[0]
            confs["exported"].update(ours, label)
            confs["pytorch"].update(ref, label)
            same, total = same + int((ours == ref).sum()), total + ref.numel()
    return {k: c.compute()["mIoU"] for k, c in confs.items()} | {"agreement": same / total, "images": len(samples)}


def check(path, model, mean, args, classes, dataset, image):
    """Compare the written IR with PyTorch; a result below the threshold is a UserError (nothing is kept)."""
    kind = "int8" if args.int8 else "fp32"
    min_agreement = args.min_agreement if args.min_agreement is not None else (
        MIN_AGREEMENT_INT8 if args.int8 else MIN_AGREEMENT)
    if args.val_data_list:
        r = check_on_list(path, model, mean, args, classes, dataset)
        log(f"OpenVINO {kind} vs PyTorch on {r['images']} images of {args.val_data_list}: mIoU "
            f"{r['exported'] * 100:.2f} % vs {r['pytorch'] * 100:.2f} %, argmax agreement {r['agreement'] * 100:.3f} %")
        drop = (r["pytorch"] - r["exported"]) * 100
        if drop > args.max_miou_drop:
            raise UserError(f"the {kind} IR's mIoU on --val_data_list is {drop:.2f} points below PyTorch's (more than "
                            f"--max_miou_drop {args.max_miou_drop}), so {args.out} was not written; calibrate on "
                            f"more images like those of the list.")
        result = {"miou": r["exported"], "miou_pytorch": r["pytorch"], "agreement": r["agreement"]}
    else:
        diff, agreement = compare(path, model, mean, image)
        log(f"OpenVINO {kind} vs PyTorch on a {image.shape[1]}x{image.shape[0]} image: largest logit difference "
            f"{diff:.2e}, argmax agreement {agreement * 100:.3f} %")
        result = {"max_logit_diff": diff, "agreement": agreement}
    if result["agreement"] < min_agreement:
        raise UserError(f"the {kind} IR agrees with PyTorch on only {result['agreement'] * 100:.3f} % of the pixels "
                        f"(< {min_agreement * 100:.1f} %), so {args.out} was not written; "
                        + ("calibrate on more images like those it will segment." if args.int8 else
                           "report this with your torch and openvino versions."))
    return result


def main(args):
    if not args.out.lower().endswith(".xml"):
        raise UserError(f"--out {args.out} must end in .xml (the IR is an .xml and a .bin of the same name).")
    check_writable_file(args.out, "--out")
    if args.int8 and not args.calibration:
        raise UserError("--int8 needs --calibration images (files, folders or a list file) to set the int8 ranges "
                        "from; give a few hundred images like those the model will segment.")
    if args.calibration and not args.int8:
        raise UserError("--calibration is for --int8; add --int8, or leave --calibration out for an fp32 IR.")
    paths = subset(calibration_images(args.calibration, args.data_dir), args.subset_size) if args.int8 else []
    image = None if args.val_data_list else check_image(args)
    model, weights, mean, record = load_checkpoint(args)
    classes = weights.network["classes"]
    try:
        import openvino as ov
    except ImportError:
        raise UserError("openvino is not installed; pip install -r requirements-dev.txt (it pins openvino and "
                        "nncf).") from None

    folder = os.path.dirname(os.path.abspath(args.out))
    created = not os.path.isdir(folder)
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(args.out)
    stage = tempfile.mkdtemp(prefix=".tmp-", dir=folder)  # the pair is written and checked here, then moved
    try:
        onnx_path = os.path.join(stage, "graph.onnx")
        export(model, mean, onnx_path, record("fp32"))
        ir = ov.convert_model(onnx_path)
        if args.int8:
            log(f"quantizing to int8 on {len(paths)} calibration images")
            ir = quantize(ir, paths)
        ir.set_rt_info(record("int8" if args.int8 else "fp32"), METADATA_KEY)
        staged_xml = os.path.join(stage, name)
        ov.save_model(ir, staged_xml, compress_to_fp16=False)  # weights stay fp32 (int8 where quantized)
        result = check(staged_xml, model, mean, args, classes, weights.dataset, image)
        # The .bin first: an .xml never appears without its weights, and both are in place once it does.
        bin_name = os.path.splitext(name)[0] + ".bin"
        os.replace(os.path.join(stage, bin_name), os.path.join(folder, bin_name))
        os.replace(staged_xml, args.out)
    except BaseException:
        if created:  # a refused export leaves no trace, not even the folder it made
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    log(f"wrote {args.out} and {os.path.splitext(args.out)[0]}.bin ({'int8' if args.int8 else 'fp32'}): input "
        f"'image' uint8 (N, H, W, 3) BGR; outputs 'labels' (N, H, W) int64, 'logits' (N, {classes}, H, W) float32")
    return result


def get_args_parser():
    p = argparse.ArgumentParser(description="Export a CGNet checkpoint to OpenVINO IR, fp32 or int8 (preprocessing "
                                            "inside the graph).", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--resume", required=True, help="checkpoint: ours (self-contained) or the original release's")
    p.add_argument("--out", default="cgnet.xml", help="IR to write: NAME.xml (and NAME.bin beside it)")
    p.add_argument("--int8", action="store_true", help="quantize to int8 with NNCF (needs --calibration)")
    p.add_argument("--calibration", nargs="+", default=[], metavar="INPUT",
                   help="images, folders (recursively) or list files (.txt, paths relative to --data_dir) to "
                        "calibrate the int8 ranges on")
    p.add_argument("--subset_size", type=positive_int, default=300,
                   help="calibrate on at most this many of the images, spread evenly (NNCF's default count)")
    p.add_argument("--data_dir", default=".", help="folder the paths of list files are relative to")
    p.add_argument("--image", default=None, help="image to check the IR on (default: a synthetic street scene)")
    p.add_argument("--val_data_list", default=None,
                   help="check on this labelled list ('image label' per line, relative to --data_dir) instead: "
                        "the mIoU of the IR and of PyTorch")
    p.add_argument("--min_agreement", type=float, default=None,
                   help=f"least argmax agreement with PyTorch (default {MIN_AGREEMENT} fp32, {MIN_AGREEMENT_INT8} int8)")
    p.add_argument("--max_miou_drop", type=float, default=MAX_MIOU_DROP,
                   help="with --val_data_list: most mIoU points the IR may lose against PyTorch")
    p.add_argument("--inform_data_file", default=None,
                   help="statistics file whose mean to use for a checkpoint that records none (the original "
                        "release's); 19-class checkpoints default to the release's Cityscapes mean")
    return p


if __name__ == "__main__":
    run_cli(main, get_args_parser())
