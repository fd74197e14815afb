"""Exporting a checkpoint for deployment: one table of formats, each written and checked here.

    source = engine.backend.load("model_350.pth")
    result = export("openvino_int8", source, "deploy/cgnet_int8.xml", calibration=CalibrationImages(paths),
                    check=Check(image=image_bgr))

Every format holds the same graph, model.inference.Deployable with its BatchNorms folded: `image` uint8
(N, H, W, 3) BGR in, `labels` (N, H, W) int64 and `logits` (N, C, H, W) float32 out, N, H and W dynamic and C
declared; and the record 'cgnet' (engine.backend.metadata) of what inference needs. The files are written into
an owned staging folder inside the output folder (utils.files.staged_folder), checked there by running them as
every script does (engine.backend.load) against the PyTorch model, and moved into place only when the check
passes. A refused export leaves nothing; a killed one's staging folder is removed by the next export there.

A new format is a row of FORMATS and, if it is written differently, a writer function in WRITERS.

int8 is checked on the user's own data, never on a synthetic image (int8_check), against the fp32 graph it was
quantized from: on a labelled list (given, or the val list the checkpoint records when it is readable here) the
mIoU drop decides; without one, the argmax agreement on images held out from the calibration images. The
thresholds and RECIPES are measured on the real CamVid test split with the authors' weights (docs/deploy.md, 'int8 on
real data').
"""
import contextlib
import os
import tempfile
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from tqdm import tqdm

from dataset.datasets import find_list, load_image, load_label, normalize, read_list, to_tensor
from dataset.specs import spec_for
from engine.backend import METADATA_KEY, load, metadata
from model.inference import Deployable, fold_bn
from utils.log import log
from utils.errors import UserError
from utils.files import check_writable_file, staged_folder
from utils.metric import ConfusionMatrix
from utils.progress import plural

MAX_MIOU_DROP = 1.0  # points: the most an export may lose against PyTorch on a labelled list
CHECK_IMAGES = 20    # int8 without a labelled list: images held out from the calibration images to check on
INT8_ADVICE = ("calibrate on more images like those it will segment, check it on a labelled list with "
               "--val_data_list (the mIoU drop decides then), or lower --min_agreement to accept it.")


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str            # of the file written (an .xml has its .bin beside it)
    precision: str         # recorded in the file's metadata
    min_agreement: float   # least argmax agreement with PyTorch that the check accepts
    packages: tuple        # what writing and checking it needs
    label: str             # the runtime and precision, as the check's line names them
    noun: str              # what a refusal calls the file
    advice: str            # what a refusal tells the user to do
    files: str = ""        # how --out names the files, when more than one is written


FORMATS = {f.name: f for f in (
    Format("onnx", ".onnx", "fp32", 0.999, ("onnx", "onnxruntime"), "ONNX Runtime", "the exported graph",
           "report this with your torch and onnxruntime versions."),
    Format("onnx_int8", ".onnx", "int8", 0.98, ("onnx", "onnxruntime"), "ONNX Runtime int8", "the int8 graph",
           "calibrate on more images like those it will segment."),
    Format("openvino", ".xml", "fp32", 0.999, ("onnx", "openvino"), "OpenVINO fp32", "the fp32 IR",
           "report this with your torch and openvino versions.", " (the IR is an .xml and a .bin of the same name)"),
    # On real images a good int8 IR agrees with PyTorch on about 98 % of the pixels
    # (docs/deploy.md, 'int8 on real data').
    Format("openvino_int8", ".xml", "int8", 0.95, ("onnx", "openvino", "nncf"), "OpenVINO int8", "the int8 IR",
           INT8_ADVICE, " (the IR is an .xml and a .bin of the same name)"),
)}


def available(name):
    """Whether the packages that format `name` needs import on this machine."""
    for package in FORMATS[name].packages:
        try:
            __import__(package)
        except ImportError:
            return False
    return True


@dataclass
class Check:
    """What an export is checked on: a BGR image (argmax agreement, largest logit difference), image files
    (argmax agreement), or labelled samples (dataset.datasets.read_list; the mIoU of both, and their agreement:
    for int8 the mIoU drop decides)."""
    image: np.ndarray = None
    samples: list = None
    list_name: str = "--val_data_list"  # how the log line and a refusal name the samples
    images: list = None                 # image files
    images_name: str = "images"         # how the log line and a refusal name them
    ignore_label: int = 255
    min_agreement: float = None         # None: the format's
    max_miou_drop: float = MAX_MIOU_DROP


def check_image(path, scene):
    """The BGR image an export is checked on: --image, or a synthetic street scene from scene(rng, h, w) (RGB)."""
    if not path:
        return np.ascontiguousarray(scene(np.random.default_rng(0), 512, 1024)[0][:, :, ::-1])
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"--image {path} is not a readable image; give a png/jpg file or leave it out.")
    return image


class CalibrationImages:
    """Image files as the graph takes them ((1, H, W, 3) uint8 BGR), decoded when the quantizer iterates (it may
    iterate more than once)."""

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
            yield image[None]


def check_out(name, out):
    """Before any work: `out` can be written as format `name`, whose packages import."""
    fmt = FORMATS[name]
    if not out.lower().endswith(fmt.suffix):
        raise UserError(f"--out {out} must end in {fmt.suffix}{fmt.files}.")
    check_writable_file(out, "--out")
    if not available(name):
        raise UserError(f"the {fmt.label} export needs {', '.join(fmt.packages)}; pip install -r "
                        f"requirements-dev.txt (it pins them).")


def export(name, source, out, calibration=None, check=None, opset=17, recipe=None):
    """Write `source` (an engine.backend.TorchBackend: the network and what it says about itself) as format
    `name` to `out`, checked with `check` (None: not checked) before it appears; int8 formats are calibrated on
    `calibration` (sized, iterable (1, H, W, 3) uint8 BGR images), OpenVINO's with RECIPES[recipe] (None: the
    default). Returns the check's figures."""
    fmt = FORMATS[name]
    check_out(name, out)
    net = Deployable(fold_bn(source.model).cpu(), source.mean).eval()
    result = {}
    with staged_folder(os.path.dirname(os.path.abspath(out)), log) as stage, \
            tempfile.TemporaryDirectory(prefix="cgnet-fp32-") as fp32_dir:
        path = os.path.join(stage, os.path.basename(out))
        WRITERS[fmt.suffix](net, path, fmt, source, calibration, opset, recipe)
        ref = None
        if check is not None and fmt.precision == "int8":
            # int8 is held to the fp32 graph it was quantized from, whose predictions are PyTorch's (the fp32
            # formats' check): the figures then measure what quantizing changed and nothing else, as the
            # thresholds were measured (docs/deploy.md, 'int8 on real data').
            fp32 = next(f for f in FORMATS.values() if f.suffix == fmt.suffix and f.precision == "fp32")
            ref_path = os.path.join(fp32_dir, "fp32" + fmt.suffix)
            WRITERS[fmt.suffix](net, ref_path, fp32, source, None, opset)
            ref = load(ref_path)
        if check is not None:
            result = verify(fmt, path, source, check, out, ref)
        # staged_folder moves the files in name order: an IR's .bin before its .xml, so that an .xml never
        # appears without its weights.
    return result


def record(source, fmt):
    """The metadata text a file of format `fmt` embeds."""
    return metadata(source.network, source.dataset, source.mean, source.class_names, source.palette, fmt.precision)


def write_onnx(net, path, fmt, source, calibration=None, opset=17, recipe=None):
    """The graph as ONNX (the TorchScript exporter: the torch.export-based one would add onnxscript as a
    dependency and gives the same graph for this network, which has no data-dependent control flow)."""
    import onnx
    example = torch.zeros(1, 64, 128, 3, dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(net, (example,), path, input_names=["image"], output_names=["labels", "logits"],
                          dynamic_axes={"image": {0: "N", 1: "H", 2: "W"}, "labels": {0: "N", 1: "H", 2: "W"},
                                        "logits": {0: "N", 2: "H", 3: "W"}},
                          opset_version=opset, dynamo=False)
    if fmt.precision == "int8":
        quantized = path + ".int8"
        quantize(path, calibration, quantized)
        os.replace(quantized, path)
    graph = onnx.load(path)
    # The exporter leaves the class count a symbol after the final resize; tools that build engines from the
    # graph need it declared.
    for output in graph.graph.output:
        if output.name == "logits":
            dim = output.type.tensor_type.shape.dim[1]
            dim.Clear()
            dim.dim_value = source.network["classes"]
    onnx.helper.set_model_props(graph, {METADATA_KEY: record(source, fmt)})
    onnx.save(graph, path)


def write_openvino(net, path, fmt, source, calibration=None, opset=17, recipe=None):
    """The ONNX graph converted to an OpenVINO IR (weights kept in fp32; int8 where quantized)."""
    import openvino as ov
    graph = os.path.splitext(path)[0] + ".graph.onnx"
    try:
        write_onnx(net, graph, FORMATS["onnx"], source, None, opset)
        ir = ov.convert_model(graph)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(graph)
    if fmt.precision == "int8":
        ir = quantize(ir, calibration, recipe=recipe)
    ir.set_rt_info(record(source, fmt), METADATA_KEY)
    ov.save_model(ir, path, compress_to_fp16=False)


WRITERS = {".onnx": write_onnx, ".xml": write_openvino}


# NNCF's post-training quantization (int8 weights per channel and activations, min-max ranges over the images,
# fast bias correction) with these options; each is a row of docs/deploy.md's table, measured on the real CamVid
# test split. The mixed preset's asymmetric activations suit PReLU's outputs of both signs; keeping the first
# convolution (on the image) and the last (the classifier) in fp32 removes part of the remaining loss, and makes
# NNCF's 7-bit first-layer weights (its overflow fix for CPUs without VNNI) moot. The first is the default.
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


def quantize(graph, images, out=None, recipe=None):
    """int8 post-training quantization calibrated on `images` ((1, H, W, 3) uint8 BGR, sized, iterable more than
    once). An openvino.Model: NNCF with RECIPES[recipe] (None: the first); an .onnx path: ONNX Runtime's
    quantize_static (QDQ) into `out`."""
    if isinstance(graph, str):
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.items = iter(images)

            def get_next(self):
                image = next(self.items, None)
                return None if image is None else {"image": image}
        quantize_static(graph, out, Reader(), quant_format=QuantFormat.QDQ)
        return out
    import nncf
    recipe = recipe or next(iter(RECIPES))
    options = RECIPES[recipe]
    log(f"quantizing to int8 on {len(images)} calibration images (NNCF, recipe {recipe})")
    ignored = nncf.IgnoredScope(names=end_convolutions(graph)) if options["fp32_ends"] else None
    return nncf.quantize(graph, nncf.Dataset(images), subset_size=len(images),
                         preset=nncf.QuantizationPreset(options["preset"]), ignored_scope=ignored)


def verify(fmt, path, source, check, out, ref=None):
    """Run the written file as the scripts run it and compare it with the PyTorch model (or `ref`, the Backend of
    the fp32 graph an int8 file was quantized from); a result below the thresholds is a UserError naming the
    figures and the flag that changes the decision (the staged file is then never moved into place). On a
    labelled list the mIoU drop decides for int8 (its pixels agree less, by design), the drop and the agreement
    for fp32; elsewhere the agreement."""
    least = fmt.min_agreement if check.min_agreement is None else check.min_agreement
    against = "PyTorch" if ref is None else "the fp32 IR" if fmt.suffix == ".xml" else "the fp32 graph"
    if check.samples is not None or check.images is not None:
        r = compare_on_list(path, source, check, ref)
        where = (f"{plural(r['images'], 'image')} of {check.list_name}" if check.samples is not None else
                 f"{plural(r['images'], 'image')} {check.images_name}")
    else:
        r = compare(path, source, check.image)
        where = f"a {check.image.shape[1]}x{check.image.shape[0]} image"
    if "miou" in r:
        drop = (r["miou_pytorch"] - r["miou"]) * 100
        log(f"{fmt.label} vs {against} on {where}: mIoU {r['miou'] * 100:.2f} % vs {r['miou_pytorch'] * 100:.2f} % "
            f"({drop:.2f} points lower), argmax agreement {r['agreement'] * 100:.3f} %")
        if drop > check.max_miou_drop:
            raise UserError(f"{fmt.noun}'s mIoU on {where} is {r['miou'] * 100:.2f} % against {against}'s "
                            f"{r['miou_pytorch'] * 100:.2f} %, {drop:.2f} points lower: more than --max_miou_drop "
                            f"{check.max_miou_drop:g}, so {out} was not written; calibrate on more images like those "
                            f"of the list, or raise --max_miou_drop to accept it.")
        if fmt.precision == "int8":
            least = 0.0
    else:
        detail = f"largest logit difference {r['max_logit_diff']:.2e}, " if "max_logit_diff" in r else ""
        log(f"{fmt.label} vs {against} on {where}: {detail}argmax agreement {r['agreement'] * 100:.3f} %")
    if r["agreement"] < least:
        raise UserError(f"{fmt.noun} agrees with {against} on only {r['agreement'] * 100:.2f} % of the pixels of "
                        f"{where} (less than --min_agreement {least:g}), so {out} was not written; {fmt.advice}")
    return {k: v for k, v in r.items() if k != "images"} | {"checked_on": where}


@torch.inference_mode()
def reference(source, image_bgr):
    """The PyTorch model's logits of one BGR image: the eager network, the reference every export is held to."""
    return source.model.cpu().eval()(to_tensor(normalize(image_bgr, source.mean))[None])


def compare(path, source, image_bgr):
    """{max_logit_diff, agreement} of the exported file against PyTorch on one BGR image."""
    exported = load(path)
    logits = exported.logits(exported.prepare(image_bgr)).numpy()
    ref = reference(source, image_bgr).numpy()
    return {"max_logit_diff": float(np.abs(logits - ref).max()),
            "agreement": float((logits.argmax(1) == ref.argmax(1)).mean())}


def compare_on_list(path, source, check, ref=None):
    """{agreement, images} of the exported file against PyTorch (or the Backend `ref`) over the labelled samples
    of `check` (and then {miou, miou_pytorch} too, miou_pytorch being ref's) or over its image files."""
    exported, classes = load(path), source.classes
    labelled = check.samples is not None
    confs = {k: ConfusionMatrix(classes, check.ignore_label, "cpu") for k in ("exported", "pytorch")}
    same = total = 0
    for item in tqdm(check.samples if labelled else check.images, desc="checking", unit="image", leave=False):
        image = load_image(item.image if labelled else item)
        ours = exported.labels(exported.prepare(image))[0]
        theirs = reference(source, image).argmax(1)[0] if ref is None else ref.labels(ref.prepare(image))[0]
        if labelled:
            label = torch.from_numpy(load_label(item.label, classes, check.ignore_label))
            confs["exported"].update(ours, label)
            confs["pytorch"].update(theirs, label)
        same, total = same + int((ours == theirs).sum()), total + theirs.numel()
    result = {"agreement": same / total, "images": len(check.samples if labelled else check.images)}
    if labelled:
        miou = {k: c.compute()["mIoU"] for k, c in confs.items()}
        result |= {"miou": miou["exported"], "miou_pytorch": miou["pytorch"]}
    return result


def subset(paths, n):
    """At most n of the paths, evenly spread over the list (a list is often sorted by place or time)."""
    if len(paths) <= n:
        return list(paths)
    return [paths[i] for i in np.linspace(0, len(paths) - 1, n).round().astype(int)] if n > 0 else []


def recorded_list(source):
    """(list, data_dir) of the val list the checkpoint's training recorded (our scripts record their arguments),
    when both are here; else None."""
    recorded = source.weights.ckpt.get("args") if isinstance(source.weights.ckpt, dict) else None
    if not isinstance(recorded, dict):
        return None
    path, data_dir = recorded.get("val_data_list"), recorded.get("data_dir")
    if not (path and isinstance(path, str) and isinstance(data_dir, str) and os.path.isdir(data_dir)
            and os.path.isfile(find_list(path, data_dir))):
        return None
    return path, data_dir


def on_list(check, source, samples, name):
    """`check` set to run on labelled samples, with the ignore label of the source's dataset."""
    spec = spec_for(source.dataset, source.classes)
    check.ignore_label = spec.ignore_label if spec is not None and spec.classes == source.classes else 255
    check.samples, check.list_name = samples, name
    return check


def int8_check(source, paths, args):
    """(calibration images, Check) of an int8 export from the image files `paths`: on --val_data_list (relative to
    --data_dir), else the recorded val list, the mIoU drop; else the agreement on --check_images of the images
    (at most a fifth) held out from the calibration; with fewer than 5 images, on calibration images. The lists
    are read here, before any slow work, so a wrong path fails in seconds."""
    check = Check(min_agreement=args.min_agreement, max_miou_drop=args.max_miou_drop)
    listed = (args.val_data_list, args.data_dir, "--val_data_list") if args.val_data_list else None
    if listed is None and recorded_list(source):
        listed = (*recorded_list(source), "the checkpoint's --val_data_list")
    if listed is not None:
        try:
            check.samples = read_list(listed[0], listed[1], True, listed[2])
        except UserError:
            if listed[2] == "--val_data_list":
                raise
            listed = None  # the recorded list changed since training: the held-out images check instead
    if listed is not None:
        return subset(paths, args.subset_size), on_list(check, source, check.samples, f"{listed[2]} {listed[0]}")
    held = subset(paths, min(args.check_images, len(paths) // 5))
    kept = set(held)
    calibration = subset([p for p in paths if p not in kept], args.subset_size)
    check.images = held or subset(calibration, args.check_images)
    check.images_name = "held out from --calibration" if held else "of --calibration (too few to hold any out)"
    return calibration, check
