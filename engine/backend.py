"""One place where a model file becomes predictions: load() reads a checkpoint (.pth: ours, the original
release's, mmsegmentation's), an ONNX graph (.onnx, run by ONNX Runtime) or an OpenVINO IR (.xml), for the
eval/test scripts (engine.evaluate), tools/segment.py and tools/webui.py (engine.segmenter), the exporter's
checks (engine.export) and benchmark.py.

    backend = load("cgnet_int8.xml")            # load(args.resume, args): the device, --amp, --compile, --plain
    batch = backend.prepare(image_bgr)          # one BGR uint8 image as a batch of 1, in the file's input kind
    labels = backend.labels(batch)              # (1, H, W) int64 class ids
    logits = backend.logits(batch)              # (1, C, H, W) float32
    backend.mean, backend.network, backend.dataset, backend.class_names, backend.palette

The input kind differs and callers do not see it: a checkpoint takes the evaluation's float tensor (RGB minus
the mean, (B, 3, H, W)); an exported graph takes the uint8 BGR image (B, H, W, 3) and preprocesses it itself.
prepare() makes either from a BGR image, and every backend also takes the eval loader's float batches (a graph
gets its uint8 image back from them exactly: the mean added back and rounded).

An export records what inference needs as JSON under 'cgnet' (ONNX: metadata_props; OpenVINO: the model's
rt_info; written by engine.export with metadata()), so that the file alone is enough, as our .pth files are.
"""
import json
import os

import numpy as np
import torch

from dataset.datasets import normalize, to_tensor
from engine.checkpoint import Weights, build_for_inference, class_table, input_mean
from engine.runtime import ShapedModel, native_bf16, openvino_core
from model.inference import Predictor
from utils.device import amp_notice, keep_cpu_memory, select_device, use_device
from utils.log import log
from utils.errors import UserError

METADATA_KEY = "cgnet"
RECORDED = ("network", "dataset", "mean", "class_names", "palette")


def file_kind(path):
    """'checkpoint', 'onnx' or 'openvino': the one place where a file's suffix is read."""
    return {".onnx": "onnx", ".xml": "openvino"}.get(os.path.splitext(str(path))[1].lower(), "checkpoint")


class Backend:
    """A loaded model file: logits() and labels() of a batch, prepare() of a BGR image, and what the file says
    about itself. Subclasses differ in their input kind ('float' or 'uint8') and how they compute."""
    input_kind = None
    amps = ()       # the --amp choices this backend can run besides 'none'
    model = None    # the torch network (eval mode, before any inference mode), for a checkpoint

    def __init__(self, path, weights, device):
        self.path, self.weights, self.device = path, weights, torch.device(device)
        self.mean = None if weights.mean is None else np.asarray(weights.mean, np.float32)  # load() resolves it
        self.class_names, self.palette = class_table(weights)

    @property
    def network(self):
        return self.weights.network

    @property
    def dataset(self):
        return self.weights.dataset

    @property
    def classes(self):
        return self.network["classes"]

    def prepare(self, image_bgr):
        """A batch of one BGR uint8 (H, W, 3) image, in this backend's input kind."""
        raise NotImplementedError

    def input(self, batch):
        """`batch` (this backend's input kind, or the eval loader's float batch) as the network takes it."""
        raise NotImplementedError

    def size(self, batch):
        """(H, W) of the images in a batch of this backend's input kind."""
        raise NotImplementedError

    def logits(self, batch):
        """(B, C, H, W) float32 logits."""
        raise NotImplementedError

    def labels(self, batch):
        """(B, H, W) int64 class ids."""
        return self.logits(batch).argmax(1)


class TorchBackend(Backend):
    """A checkpoint's network in an inference mode (model.inference.Predictor) on a device."""
    input_kind = "float"
    amps = ("bf16", "fp16")

    def __init__(self, path, weights, model, mode="eager", device="cpu"):
        super().__init__(path, weights, device)
        self.model = model
        self.predictor = Predictor(model, mode, self.device)

    def prepare(self, image_bgr):
        return to_tensor(normalize(image_bgr, self.mean))[None]

    def input(self, batch):
        return batch.to(self.device, non_blocking=True)

    def size(self, batch):
        return tuple(batch.shape[2:])

    def logits(self, batch):
        return self.predictor(batch)


class GraphBackend(Backend):
    """An exported graph (preprocessing and argmax inside) run on the CPU by its runtime. `compile()` returns
    run(image uint8 (B, H, W, 3) numpy, output name) -> that output of the graph as numpy: the one place the file
    is compiled (OpenVINO: per input shape, engine.runtime)."""
    input_kind = "uint8"

    def __init__(self, path, weights, compile, amps=()):
        super().__init__(path, weights, "cpu")
        self.amps = amps
        self.compile = compile
        self.run = compile()

    def prepare(self, image_bgr):
        return torch.from_numpy(np.ascontiguousarray(image_bgr))[None]

    @torch.inference_mode()
    def input(self, batch):
        """An image resized in float (multi-scale testing) is rounded to whole grey levels, as mmsegmentation's
        8-bit resize does; v - m + m is within 1e-5 of the whole number v, so rounding rebuilds it exactly."""
        if batch.dtype != torch.uint8:
            mean = torch.as_tensor(self.mean).view(1, 3, 1, 1)
            batch = (batch.cpu().float() + mean).round_().clamp_(0, 255).to(torch.uint8)
            batch = batch.flip(1).permute(0, 2, 3, 1)  # RGB (B, 3, H, W) -> BGR (B, H, W, 3)
        return batch.cpu()

    def size(self, batch):
        return tuple(batch.shape[1:3])

    def _output(self, batch, name):
        return torch.from_numpy(self.run(np.ascontiguousarray(self.input(batch).numpy()), name))

    def logits(self, batch):
        return self._output(batch, "logits")

    def labels(self, batch):
        """The graph's own argmax, which saves reading the logits and an argmax over them in torch (at 360x640
        that argmax measured about half of the int8 network's time)."""
        return self._output(batch, "labels")


def inference_mode(args, device):
    """The model.inference mode the flags ask for. The fast path by default: BN folded into the convs (exact
    in fp32, see benchmark.py), channels-last on the CPU; --compile and --amp on top. --plain is the
    original's eager fp32 forward (in full fp32 on GPUs too)."""
    if getattr(args, "plain", False):
        return "eager"
    features = ["fold_bn"]
    if device.type == "cpu":
        # Reuse freed blocks instead of faulting in fresh pages per 1024x2048 activation. Not done in
        # training: its loader workers are forked every epoch, and copy-on-write of a kept heap costs more.
        keep_cpu_memory()
        # Measured faster on a CPU only; on GPUs cuDNN's depthwise convolutions in fp32 may be faster in
        # NCHW, so GPUs keep NCHW until a measurement there says otherwise (benchmark.py --device cuda).
        features.append("channels_last")
    amp = getattr(args, "amp", "none")
    features += ["compile"] if getattr(args, "compile", False) else []
    features += [amp] if amp != "none" else []
    if amp_notice(device, amp):
        log(amp_notice(device, amp))
    return "+".join(features)


def load(path, args=None, flag="--resume", network=None, data=None, fits=True, mean=None):
    """The Backend of a model file. `args` (None: the CPU, the default mode): cuda/gpus, amp, compile, plain,
    inform_data_file; `network`: the script's build_model arguments (--model, --classes, ...), which a checkpoint
    that records no network is built with and which the file must fit (unless fits=False); `data`: (data_dir,
    dataset_list, classes, ignore_label) of an eval script, whose statistics a checkpoint without a mean needs;
    `mean`: the mean to take when nothing else tells it (engine.checkpoint.input_mean)."""
    opener = {"checkpoint": load_checkpoint, "onnx": load_onnx, "openvino": load_openvino}[file_kind(path)]
    backend = opener(path, args, flag, network, fits)
    backend.mean = input_mean(backend.weights, path, getattr(args, "inform_data_file", None), flag, data, mean)
    return backend


def load_checkpoint(path, args, flag, network, fits):
    device = select_device(args)[0] if getattr(args, "cuda", False) else torch.device("cpu")
    use_device(device)
    expected = network if fits else None
    model, weights = build_for_inference(path, flag, fallback=network, model_name=expected and expected["name"],
                                         classes=expected and expected["classes"])
    weights.network = weights.network or dict(network)
    return TorchBackend(path, weights, model.to(device), inference_mode(args, device), device)


def check_graph_flags(path, args, flag, amps):
    """The exported file exists; --compile and an --amp its runtime cannot do are refused."""
    if not os.path.isfile(path):
        raise UserError(f"{flag} {path} does not exist; give a checkpoint (.pth) or an exported file (.onnx, .xml).")
    if getattr(args, "compile", False):
        raise UserError(f"--compile applies to .pth checkpoints; {flag} {path} is compiled by its own runtime: "
                        f"leave --compile out.")
    amp = getattr(args, "amp", "none")
    if amp != "none" and amp not in amps:
        if not amps:
            raise UserError(f"--amp {amp} with {flag} {path}: ONNX Runtime runs the graph as exported; give the "
                            f"OpenVINO export (.xml) for bf16, or leave --amp out.")
        raise UserError(f"--amp {amp} with {flag} {path}: OpenVINO runs an .xml in f32 (default) or bf16; "
                        f"use --amp bf16 or leave --amp out.")
    return amp


def check_network(weights, network, path, flag):
    """An exported file's recorded network against the script's --model and class count."""
    if network is None:
        return
    recorded = weights.network
    if recorded["name"] != network["name"]:
        raise UserError(f"{flag} {path} was exported from --model {recorded['name']}, not {network['name']}; "
                        f"pass --model {recorded['name']}.")
    if recorded["classes"] != network["classes"]:
        raise UserError(f"{flag} {path} does not fit: it has {recorded['classes']} classes but the model "
                        f"{network['classes']} (an export of the other dataset, or a wrong --classes?).")


def load_onnx(path, args, flag, network, fits):
    check_graph_flags(path, args, flag, ())
    session = onnxruntime_session(path, flag)
    weights = parse_metadata(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), path, flag)
    check_network(weights, network if fits else None, path, flag)
    return GraphBackend(path, weights, lambda: lambda image, out: session.run([out], {"image": image})[0])


def load_openvino(path, args, flag, network, fits):
    amp = check_graph_flags(path, args, flag, ("bf16",))
    model = read_openvino(path, flag)
    text = model.get_rt_info([METADATA_KEY]).astype(str) if model.has_rt_info([METADATA_KEY]) else None
    weights = parse_metadata(text, path, flag)
    check_network(weights, network if fits else None, path, flag)
    return GraphBackend(path, weights, lambda: compile_openvino(model, amp, path), ("bf16",))


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


def compile_openvino(model, amp, path):
    """run(image, output name) of the model on the CPU, with torch's thread count (as ONNX Runtime's sessions),
    compiled for each input shape it meets again (engine.runtime.ShapedModel)."""
    run = ShapedModel(model, amp, torch.get_num_threads())
    got = run.precision
    if amp == "bf16" and got != type(got).bf16:  # an openvino.Type
        log(f"notice: this CPU has no native bf16, so OpenVINO runs {path} in {got} (--amp bf16 has no effect here).")
        return run
    # The choice, in one line: bf16 changes some labels, so it is never taken silently, only pointed to.
    hint = "; this CPU computes bf16 natively: --amp bf16 is faster (docs/deploy.md, 'Real time on two CPU cores')" \
        if amp == "none" and native_bf16() else ""
    log(f"OpenVINO runs {os.path.basename(path)} in {got.get_type_name()} on {run.threads} threads, compiled for "
        f"each input size it meets again{hint}.")
    return run


def metadata(network, dataset, mean, class_names, palette, precision):
    """The JSON text an export embeds: what a Backend says about itself, and how the file computes."""
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
    return Weights({}, file_kind(path), record, network, mean, record["dataset"], names, palette)
