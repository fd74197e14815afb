"""int8 for the OpenVINO export: the calibration images, NNCF's post-training quantization, and the check that
decides whether the int8 IR is kept.

The check runs on the user's own data, never on a synthetic image: on a labelled list (--val_data_list, or the
val list the checkpoint records when it is readable here) the mIoU drop against PyTorch decides; without one,
the argmax agreement with PyTorch on images held out from --calibration decides. The defaults and the options
are measured on the real CamVid test split with the authors' weights (README, 'int8 on real data').
"""
import glob
import os
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from tqdm import tqdm

from dataset.datasets import find_list, image_header, load_image, load_label, normalize, read_list, to_tensor
from dataset.specs import spec_for
from engine.exported import load_exported
from utils.errors import UserError
from utils.metric import ConfusionMatrix
from utils.progress import plural

LIST_EXTENSIONS = (".txt", ".lst")
MIN_AGREEMENT = 0.95   # on held-out images; good real-data int8 agrees on about 98 % (README table)
MAX_MIOU_DROP = 1.0    # points, on a labelled list
CHECK_IMAGES = 20      # held out from --calibration when there is no labelled list


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


def subset(paths, n):
    """At most n of the paths, evenly spread over the list (a list is often sorted by place or time)."""
    if len(paths) <= n:
        return list(paths)
    return [paths[i] for i in np.linspace(0, len(paths) - 1, n).round().astype(int)] if n > 0 else []


@dataclass
class HeldOut:
    paths: list
    held: bool         # False: too few images to hold any out, so the check runs on calibration images


def hold_out(paths, subset_size, check_images):
    """(calibration images, HeldOut): `check_images` spread over the images are kept out of the calibration,
    but never more than a fifth of them; with fewer than 5 images the check runs on calibration images."""
    held = subset(paths, min(check_images, len(paths) // 5))
    kept = set(held)
    calibration = subset([p for p in paths if p not in kept], subset_size)
    return calibration, HeldOut(held, True) if held else HeldOut(subset(calibration, check_images), False)


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


# NNCF's post-training quantization (int8 weights per channel and activations, min-max ranges over the images,
# fast bias correction) with these options; each is a row of the README's table, measured on the real CamVid
# test split. The mixed preset's asymmetric activations suit PReLU's outputs of both signs; keeping the first
# convolution (on the image) and the last (the classifier) in fp32 removes part of the remaining loss, and makes
# NNCF's 7-bit first-layer weights (its overflow fix for CPUs without VNNI) moot.
RECIPES = {
    "mixed_fp32_ends": {"preset": "mixed", "fp32_ends": True},
    "mixed": {"preset": "mixed", "fp32_ends": False},
    "nncf_default": {"preset": "performance", "fp32_ends": False},
}


def end_convolutions(model):
    """The names of the first and the last convolution of an openvino.Model, in graph order."""
    convs = [op.get_friendly_name() for op in model.get_ordered_ops()
             if op.get_type_name() in ("Convolution", "GroupConvolution")]
    return sorted({convs[0], convs[-1]}) if convs else []


def quantize(model, paths, recipe="mixed_fp32_ends"):
    """The int8 openvino.Model of `model` (fp32), calibrated on the image files `paths` with RECIPES[recipe]."""
    import nncf
    options = RECIPES[recipe]
    ignored = nncf.IgnoredScope(names=end_convolutions(model)) if options["fp32_ends"] else None
    return nncf.quantize(model, nncf.Dataset(CalibrationImages(paths)), subset_size=len(paths),
                         preset=nncf.QuantizationPreset(options["preset"]), ignored_scope=ignored)


@dataclass
class LabelledList:
    path: str
    data_dir: str
    flag: str          # how the user names it: "--val_data_list" or "the checkpoint's val list"
    samples: list


def labelled_list(args, weights):
    """The list the int8 check runs on: --val_data_list (relative to --data_dir), else the val list the
    checkpoint records (our training scripts record their arguments) when it is readable here, else None.
    Read now, before any slow work, so a wrong path fails in seconds."""
    if args.val_data_list:
        return LabelledList(args.val_data_list, args.data_dir, "--val_data_list",
                            read_list(args.val_data_list, args.data_dir, True, "--val_data_list"))
    recorded = weights.ckpt.get("args") if isinstance(weights.ckpt, dict) else None
    if not isinstance(recorded, dict):
        return None
    path, data_dir = recorded.get("val_data_list"), recorded.get("data_dir")
    if not (isinstance(path, str) and isinstance(data_dir, str) and os.path.isdir(data_dir)
            and os.path.isfile(find_list(path, data_dir))):
        return None
    try:
        samples = read_list(path, data_dir, True, "the checkpoint's --val_data_list")
    except UserError:  # moved or changed since training: the held-out images check instead
        return None
    return LabelledList(path, data_dir, "the checkpoint's --val_data_list", samples)


def compare(path, model, mean, images, labels=None, classes=None, ignore=255):
    """Run the IR at `path` (as every script runs it) and the PyTorch model on the images: their argmax agreement
    and, with labels, both mIoUs."""
    predict, _ = load_exported(path)
    confs = {k: ConfusionMatrix(classes, ignore, "cpu") for k in ("exported", "pytorch")} if labels else {}
    same = total = 0
    with torch.inference_mode():
        for i, image_path in enumerate(tqdm(images, desc="checking", unit="image", leave=False)):
            image = load_image(image_path)
            ours = predict(torch.from_numpy(image)[None]).argmax(1)[0]
            ref = model(to_tensor(normalize(image, mean))[None]).argmax(1)[0]
            if labels:
                label = torch.from_numpy(load_label(labels[i], classes, ignore))
                confs["exported"].update(ours, label)
                confs["pytorch"].update(ref, label)
            same, total = same + int((ours == ref).sum()), total + ref.numel()
    return {"agreement": same / total, "images": len(images)} | {k: c.compute()["mIoU"] for k, c in confs.items()}


def check(path, model, mean, classes, dataset, checked_on, args):
    """Decide whether the int8 IR is kept: on a LabelledList the mIoU drop, on HeldOut images the agreement.
    A refusal is a UserError naming the figures and the flag that changes it."""
    if isinstance(checked_on, LabelledList):
        spec = spec_for(dataset, classes)
        ignore = spec.ignore_label if spec is not None and spec.classes == classes else 255
        r = compare(path, model, mean, [s.image for s in checked_on.samples], [s.label for s in checked_on.samples],
                    classes, ignore)
        drop = (r["pytorch"] - r["exported"]) * 100
        where = f"{plural(r['images'], 'image')} of {checked_on.flag} {checked_on.path}"
        figures = (f"mIoU {r['exported'] * 100:.2f} % against PyTorch's {r['pytorch'] * 100:.2f} % on {where} "
                   f"({drop:.2f} points lower; {r['agreement'] * 100:.2f} % of the pixels agree)")
        if drop > args.max_miou_drop:
            raise UserError(f"the int8 IR's {figures}: more than --max_miou_drop {args.max_miou_drop:g}, so "
                            f"{args.out} was not written; calibrate on more images like those of the list, or "
                            f"raise --max_miou_drop to accept it.")
        return {"miou": r["exported"], "miou_pytorch": r["pytorch"], "miou_drop": drop,
                "agreement": r["agreement"], "checked_on": checked_on.path, "figures": figures}
    r = compare(path, model, mean, checked_on.paths)
    where = (f"{plural(r['images'], 'image')} held out from --calibration" if checked_on.held else
             f"{plural(r['images'], 'calibration image')} (too few images to hold any out)")
    figures = f"{r['agreement'] * 100:.2f} % of the pixels agree with PyTorch on {where}"
    least = MIN_AGREEMENT if args.min_agreement is None else args.min_agreement
    if r["agreement"] < least:
        raise UserError(f"the int8 IR: {figures}, below --min_agreement {least:g}, so {args.out} was "
                        f"not written; calibrate on more images like those it will segment, check it on a labelled "
                        f"list with --val_data_list (the mIoU drop decides then), or lower --min_agreement to "
                        f"accept it.")
    return {"agreement": r["agreement"], "checked_on": "held-out images" if checked_on.held else "calibration images",
            "figures": figures}
