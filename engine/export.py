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
"""
import contextlib
import os
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from tqdm import tqdm

from dataset.datasets import load_image, load_label, normalize, to_tensor
from engine.backend import METADATA_KEY, load, metadata
from model.inference import Deployable, fold_bn
from utils.log import log
from utils.errors import UserError
from utils.files import check_writable_file, staged_folder
from utils.metric import ConfusionMatrix

MAX_MIOU_DROP = 1.0  # points: the most an export may lose against PyTorch on a labelled list


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
    Format("openvino_int8", ".xml", "int8", 0.98, ("onnx", "openvino", "nncf"), "OpenVINO int8", "the int8 IR",
           "calibrate on more images like those it will segment.", " (the IR is an .xml and a .bin of the same name)"),
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
    """What an export is checked on: a BGR image (argmax agreement, largest logit difference), or labelled
    samples (dataset.datasets.read_list; the mIoU of both, and their agreement)."""
    image: np.ndarray = None
    samples: list = None
    list_name: str = "--val_data_list"  # how the log line and a refusal name the samples
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


def export(name, source, out, calibration=None, check=None, opset=17):
    """Write `source` (an engine.backend.TorchBackend: the network and what it says about itself) as format
    `name` to `out`, checked with `check` (None: not checked) before it appears; int8 formats are calibrated on
    `calibration` (sized, iterable (1, H, W, 3) uint8 BGR images). Returns the check's figures."""
    fmt = FORMATS[name]
    check_out(name, out)
    net = Deployable(fold_bn(source.model).cpu(), source.mean).eval()
    result = {}
    with staged_folder(os.path.dirname(os.path.abspath(out)), log) as stage:
        path = os.path.join(stage, os.path.basename(out))
        WRITERS[fmt.suffix](net, path, fmt, source, calibration, opset)
        if check is not None:
            result = verify(fmt, path, source, check, out)
        # staged_folder moves the files in name order: an IR's .bin before its .xml, so that an .xml never
        # appears without its weights.
    return result


def record(source, fmt):
    """The metadata text a file of format `fmt` embeds."""
    return metadata(source.network, source.dataset, source.mean, source.class_names, source.palette, fmt.precision)


def write_onnx(net, path, fmt, source, calibration=None, opset=17):
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


def write_openvino(net, path, fmt, source, calibration=None, opset=17):
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
        ir = quantize(ir, calibration)
    ir.set_rt_info(record(source, fmt), METADATA_KEY)
    ov.save_model(ir, path, compress_to_fp16=False)


WRITERS = {".onnx": write_onnx, ".xml": write_openvino}


def quantize(graph, images, out=None):
    """int8 post-training quantization calibrated on `images` ((1, H, W, 3) uint8 BGR, sized, iterable more than
    once). An openvino.Model: NNCF's defaults (int8 weights and activations, min-max ranges over the images, fast
    bias correction); an .onnx path: ONNX Runtime's quantize_static (QDQ) into `out`."""
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
    log(f"quantizing to int8 on {len(images)} calibration images")
    return nncf.quantize(graph, nncf.Dataset(images), subset_size=len(images))


def verify(fmt, path, source, check, out):
    """Run the written file as the scripts run it and compare it with the PyTorch model; a result below the
    thresholds is a UserError (the staged file is then never moved into place)."""
    least = fmt.min_agreement if check.min_agreement is None else check.min_agreement
    if check.samples is not None:
        r = compare_on_list(path, source, check)
        log(f"{fmt.label} vs PyTorch on {r['images']} images of {check.list_name}: mIoU {r['miou'] * 100:.2f} % vs "
            f"{r['miou_pytorch'] * 100:.2f} %, argmax agreement {r['agreement'] * 100:.3f} %")
        drop = (r["miou_pytorch"] - r["miou"]) * 100
        if drop > check.max_miou_drop:
            raise UserError(f"{fmt.noun}'s mIoU on --val_data_list is {drop:.2f} points below PyTorch's (more than "
                            f"--max_miou_drop {check.max_miou_drop}), so {out} was not written; calibrate on "
                            f"more images like those of the list.")
    else:
        r = compare(path, source, check.image)
        log(f"{fmt.label} vs PyTorch on a {check.image.shape[1]}x{check.image.shape[0]} image: largest logit "
            f"difference {r['max_logit_diff']:.2e}, argmax agreement {r['agreement'] * 100:.3f} %")
    if r["agreement"] < least:
        raise UserError(f"{fmt.noun} agrees with PyTorch on only {r['agreement'] * 100:.3f} % of the pixels "
                        f"(< {least * 100:.1f} %), so {out} was not written; {fmt.advice}")
    return {k: v for k, v in r.items() if k != "images"}


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


def compare_on_list(path, source, check):
    """{miou, miou_pytorch, agreement, images} of the exported file and of PyTorch over labelled samples."""
    exported, classes = load(path), source.classes
    confs = {k: ConfusionMatrix(classes, check.ignore_label, "cpu") for k in ("exported", "pytorch")}
    same = total = 0
    for s in tqdm(check.samples, desc="checking", unit="image", leave=False):
        image, label = load_image(s.image), torch.from_numpy(load_label(s.label, classes, check.ignore_label))
        ours = exported.labels(exported.prepare(image))[0]
        ref = reference(source, image).argmax(1)[0]
        confs["exported"].update(ours, label)
        confs["pytorch"].update(ref, label)
        same, total = same + int((ours == ref).sum()), total + ref.numel()
    miou = {k: c.compute()["mIoU"] for k, c in confs.items()}
    return {"miou": miou["exported"], "miou_pytorch": miou["pytorch"], "agreement": same / total,
            "images": len(check.samples)}
