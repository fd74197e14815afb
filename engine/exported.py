"""Exported files as predictors: `.onnx` through ONNX Runtime, `.xml` (OpenVINO IR) through OpenVINO. The one
place where such a file becomes predictions, for the eval/test scripts (engine.evaluate), tools/segment.py
(engine.segmenter) and benchmark.py; `.pth` checkpoints go through engine.checkpoint instead.

    predict, weights = load_exported("cgnet_int8.xml")   # weights: network, dataset, mean, classes' names/colours
    logits = predict(images)                             # (B, C, H, W) float32 on the CPU

The exports (tools/export_onnx.py, tools/export_openvino.py) write what inference needs into the file, as
JSON under the key 'cgnet' (ONNX: metadata_props; OpenVINO: the model's rt_info), so that the file alone is
enough, as our .pth checkpoints are.
"""
import json
import os

import numpy as np
import torch

from engine.checkpoint import Weights
from utils.log import log
from utils.errors import UserError

EXTENSIONS = (".onnx", ".xml")
METADATA_KEY = "cgnet"
RECORDED = ("network", "dataset", "mean", "class_names", "palette")


def is_exported(path):
    return str(path).lower().endswith(EXTENSIONS)


def metadata(network, dataset, mean, class_names, palette, precision):
    """The JSON text an export embeds: what Weights and class_table give for a .pth, and how it computes."""
    return json.dumps({"network": dict(network), "dataset": dataset, "mean": [float(m) for m in mean],
                       "class_names": list(class_names), "palette": [[int(c) for c in rgb] for rgb in palette],
                       "precision": precision, "input": "image: uint8 (N, H, W, 3) BGR",
                       "outputs": ["labels (N, H, W) int64", "logits (N, C, H, W) float32"]})


def parse_metadata(text, path, flag="--resume"):
    """Weights (no state_dict) from an export's embedded record; None or a damaged record is a UserError."""
    if text is None:
        raise UserError(f"{flag} {path} has no '{METADATA_KEY}' metadata (the network, classes, class names, palette, "
                        f"dataset and input mean), so it was not written by tools/export_onnx.py or "
                        f"tools/export_openvino.py; export the checkpoint with one of them.")
    try:
        record = json.loads(text)
        missing = [k for k in RECORDED if k not in record]
    except (TypeError, ValueError):
        record, missing = None, list(RECORDED)
    if missing:
        raise UserError(f"{flag} {path} has '{METADATA_KEY}' metadata without {', '.join(missing)}; export the "
                        f"checkpoint again with tools/export_onnx.py or tools/export_openvino.py.")
    try:
        network, mean = dict(record["network"]), np.asarray(record["mean"], np.float32)
        names, palette = [str(n) for n in record["class_names"]], [[int(c) for c in rgb] for rgb in record["palette"]]
        classes = network["classes"]
        if not isinstance(network.get("name"), str) or mean.shape != (3,) or len(names) != classes \
                or len(palette) != classes or any(len(rgb) != 3 for rgb in palette):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{flag} {path} has a damaged '{METADATA_KEY}' record (expected the network's name and "
                        f"classes, a 3-value mean and one name and colour per class); export it again.") from None
    return Weights({}, os.path.splitext(path)[1].lower().lstrip("."), record, network, mean, record["dataset"],
                   names, palette)


def onnxruntime_session(path, flag="--resume"):
    """An ONNX Runtime session on the CPU with torch's thread count."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError("onnxruntime is not installed; pip install -r requirements-dev.txt (it pins onnx and "
                        "onnxruntime).") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for unreadable files
        raise UserError(f"{flag} {path} is not an ONNX model ONNX Runtime can read (damaged, or not ONNX: "
                        f"{type(e).__name__}); export it again with tools/export_onnx.py.") from None


def openvino_core():
    try:
        import openvino
    except ImportError:
        raise UserError("openvino is not installed; pip install -r requirements-dev.txt (it pins openvino and "
                        "nncf; running an .xml needs openvino only).") from None
    return openvino.Core()


def read_openvino(path, flag="--resume"):
    """The openvino.Model of an IR file pair; a missing .bin or an unreadable .xml is a UserError."""
    weights_file = os.path.splitext(path)[0] + ".bin"
    if not os.path.isfile(weights_file):
        raise UserError(f"{flag} {path} has no {os.path.basename(weights_file)} beside it (an OpenVINO model is an "
                        f".xml and .bin pair); copy the .bin next to the .xml.")
    try:
        return openvino_core().read_model(str(path))
    except RuntimeError:
        raise UserError(f"{flag} {path} is not an OpenVINO IR that OpenVINO can read (damaged, or not an IR .xml); "
                        f"export it again with tools/export_openvino.py.") from None


def compile_openvino(model, amp="none"):
    """The model compiled for the CPU, with torch's thread count (as ONNX Runtime's sessions). The precision is
    pinned: OpenVINO's CPU plugin otherwise computes in bf16 on CPUs that have it, silently; bf16 is asked for
    with --amp bf16, as autocast is for a .pth."""
    hint = {"none": "f32", "bf16": "bf16"}[amp]
    return openvino_core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
                                                        "INFERENCE_NUM_THREADS": torch.get_num_threads()})


class ExportedPredictor:
    """predict(images) -> float32 logits (B, C, H, W) on the CPU, as model.inference.Predictor. `images`: uint8
    (B, H, W, 3) BGR, what the graph takes, or the eval scripts' float (B, 3, H, W) RGB minus the mean, from
    which the uint8 image is rebuilt exactly (the mean added back and rounded: v - m + m is within 1e-5 of the
    whole number v). An image resized in float (multi-scale testing) is rounded to whole grey levels, as
    mmsegmentation's 8-bit resize does."""

    def __init__(self, run, mean):
        self.run = run  # (uint8 (B, H, W, 3) numpy, output name) -> that output of the graph, numpy
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)

    @torch.inference_mode()
    def _image(self, images):
        if images.dtype != torch.uint8:
            images = (images.cpu().float() + self.mean).round_().clamp_(0, 255).to(torch.uint8)
            images = images.flip(1).permute(0, 2, 3, 1)  # RGB (B, 3, H, W) -> BGR (B, H, W, 3)
        return np.ascontiguousarray(images.cpu().numpy())

    def __call__(self, images):
        return torch.from_numpy(self.run(self._image(images), "logits"))

    def labels(self, images):
        """(B, H, W) int64 class ids: the graph's own argmax, which saves reading the logits and an argmax
        over them in torch (at 360x640 that argmax measured about half of the int8 network's time)."""
        return torch.from_numpy(self.run(self._image(images), "labels"))


def load_exported(path, flag="--resume", amp="none", torch_compile=False):
    """(ExportedPredictor, Weights) of an .onnx or .xml file; runs on the CPU."""
    if not os.path.isfile(path):
        raise UserError(f"{flag} {path} does not exist; give a checkpoint (.pth) or an exported file (.onnx, .xml).")
    if torch_compile:
        raise UserError(f"--compile applies to .pth checkpoints; {flag} {path} is compiled by its own runtime: "
                        f"leave --compile out.")
    if path.lower().endswith(".onnx"):
        if amp != "none":
            raise UserError(f"--amp {amp} with {flag} {path}: ONNX Runtime runs the graph as exported; give the "
                            f"OpenVINO export (.xml) for bf16, or leave --amp out.")
        session = onnxruntime_session(path, flag)
        weights = parse_metadata(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), path, flag)
        return ExportedPredictor(lambda a, out: session.run([out], {"image": a})[0], weights.mean), weights
    if amp not in ("none", "bf16"):
        raise UserError(f"--amp {amp} with {flag} {path}: OpenVINO runs an .xml in f32 (default) or bf16; "
                        f"use --amp bf16 or leave --amp out.")
    model = read_openvino(path, flag)
    text = model.get_rt_info([METADATA_KEY]).astype(str) if model.has_rt_info([METADATA_KEY]) else None
    weights = parse_metadata(text, path, flag)
    compiled = compile_openvino(model, amp)
    got = compiled.get_property("INFERENCE_PRECISION_HINT")
    if amp == "bf16" and got != type(got).bf16:  # an openvino.Type
        log(f"notice: this CPU has no native bf16, so OpenVINO runs {path} in {got} (--amp bf16 has no effect here).")
    request = compiled.create_infer_request()
    outputs = {name: compiled.output(name) for name in ("labels", "logits")}
    # The request reuses its output buffers: a copy, since a caller may keep an output past the next call.
    return ExportedPredictor(lambda a, out: request.infer({0: a})[outputs[out]].copy(), weights.mean), weights
