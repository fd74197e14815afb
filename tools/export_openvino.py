"""Export a checkpoint to an OpenVINO IR (.xml + .bin), in fp32 or int8, with the preprocessing inside.

    python tools/export_openvino.py --resume model_350.pth --out deploy/cgnet.xml
    python tools/export_openvino.py --resume model_350.pth --out deploy/cgnet_int8.xml --int8 --calibration photos/

The graph is the ONNX export's (tools/export_onnx.py): `image` uint8 (N, H, W, 3) BGR in, `labels` (N, H, W)
int64 and `logits` (N, C, H, W) float32 out, N, H and W dynamic; weights kept in fp32. --int8 quantizes it
with NNCF's post-training quantization, calibrated on your images (files, folders read recursively, list
files of paths relative to --data_dir); use a few hundred images like those it will see. The file records
the network, classes, class names, palette, dataset and input mean (rt_info 'cgnet'): every script takes
it as --resume. After writing, the IR is checked against the PyTorch model on your data (engine/int8.py): int8
on --val_data_list (or the val list the checkpoint records) by the mIoU drop, else by the argmax agreement on
images held out from --calibration; fp32 by the argmax agreement on an image or the list. Below the threshold
nothing is written and the exit status is 2; the message gives the figures and the flag that changes it.
Running the file needs only `openvino`; exporting needs `onnx` and `nncf` too (requirements-dev.txt).
"""
import argparse
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dataset.datasets import read_list  # noqa: E402
from engine import int8  # noqa: E402
from engine.exported import METADATA_KEY  # noqa: E402
from tools.export_onnx import MIN_AGREEMENT, check_image, compare, export, load_checkpoint  # noqa: E402
from utils.args import positive_int  # noqa: E402
from utils.dist import log  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.files import check_writable_file  # noqa: E402

def check_fp32(path, model, mean, args, image, samples):
    """The fp32 IR against PyTorch, on an image or the images of --val_data_list: it must agree (< MIN_AGREEMENT
    is a UserError; nothing is kept)."""
    if samples is not None:
        r = int8.compare(path, model, mean, [s.image for s in samples])
        log(f"OpenVINO fp32 vs PyTorch on {r['images']} images of --val_data_list: argmax agreement "
            f"{r['agreement'] * 100:.3f} %")
        result = {"agreement": r["agreement"]}
    else:
        diff, agreement = compare(path, model, mean, image)
        log(f"OpenVINO fp32 vs PyTorch on a {image.shape[1]}x{image.shape[0]} image: largest logit difference "
            f"{diff:.2e}, argmax agreement {agreement * 100:.3f} %")
        result = {"max_logit_diff": diff, "agreement": agreement}
    least = MIN_AGREEMENT if args.min_agreement is None else args.min_agreement
    if result["agreement"] < least:
        raise UserError(f"the fp32 IR agrees with PyTorch on only {result['agreement'] * 100:.3f} % of the pixels "
                        f"(< {least * 100:.1f} %), so {args.out} was not written; report this with your torch and "
                        f"openvino versions.")
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
    if args.int8 and args.image:
        raise UserError("--image is for the fp32 check; int8 is checked on images held out from --calibration, or "
                        "on --val_data_list: leave --image out.")
    model, weights, mean, record = load_checkpoint(args)
    classes = weights.network["classes"]
    # Everything the user named is read before the slow work (quantizing, checking): a wrong path fails now.
    if args.int8:
        paths = int8.calibration_images(args.calibration, args.data_dir)
        checked_on = int8.labelled_list(args, weights)
        if checked_on is None:
            paths, checked_on = int8.hold_out(paths, args.subset_size, args.check_images)
        else:
            paths = int8.subset(paths, args.subset_size)
    else:
        samples = read_list(args.val_data_list, args.data_dir, True, "--val_data_list") if args.val_data_list else None
        image = None if samples else check_image(args)
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
            log(f"quantizing to int8 on {len(paths)} calibration images (NNCF, --recipe {args.recipe})")
            ir = int8.quantize(ir, paths, args.recipe)
        ir.set_rt_info(record("int8" if args.int8 else "fp32"), METADATA_KEY)
        staged_xml = os.path.join(stage, name)
        ov.save_model(ir, staged_xml, compress_to_fp16=False)  # weights stay fp32 (int8 where quantized)
        if args.int8:
            result = int8.check(staged_xml, model, mean, classes, weights.dataset, checked_on, args)
            log(f"OpenVINO int8 vs PyTorch: {result['figures']}")
        else:
            result = check_fp32(staged_xml, model, mean, args, image, samples)
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
    p.add_argument("--recipe", choices=list(int8.RECIPES), default="mixed_fp32_ends",
                   help="NNCF's options: mixed preset (asymmetric activations) with the first and last convolutions "
                        "kept in fp32, mixed preset alone, or NNCF's defaults (README, 'int8 on real data')")
    p.add_argument("--data_dir", default=".", help="folder the list files and the paths in them are relative to")
    p.add_argument("--image", default=None, help="fp32: image to check the IR on (default: a synthetic street scene)")
    p.add_argument("--val_data_list", default=None,
                   help="labelled list ('image label' per line, relative to --data_dir) to check the IR on: for "
                        "int8 the mIoU drop against PyTorch decides (default: the val list the checkpoint records, "
                        "if it is here, else images held out from --calibration)")
    p.add_argument("--check_images", type=positive_int, default=int8.CHECK_IMAGES,
                   help="int8 without a labelled list: images held out from --calibration (at most a fifth of "
                        "them) to check the argmax agreement on")
    p.add_argument("--min_agreement", type=float, default=None,
                   help=f"least argmax agreement with PyTorch (default {MIN_AGREEMENT} fp32; int8 on held-out images "
                        f"{int8.MIN_AGREEMENT})")
    p.add_argument("--max_miou_drop", type=float, default=int8.MAX_MIOU_DROP,
                   help="int8 on a labelled list: most mIoU points the IR may lose against PyTorch")
    p.add_argument("--inform_data_file", default=None,
                   help="statistics file whose mean to use for a checkpoint that records none (the original "
                        "release's); 19-class checkpoints default to the release's Cityscapes mean")
    return p


if __name__ == "__main__":
    run_cli(main, get_args_parser())
