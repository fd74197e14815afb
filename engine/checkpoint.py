"""Checkpoints into networks: the original release's files, ours, mmsegmentation's and bare state_dicts."""
import os
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from dataset.inform import get_inform, read_inform
from dataset.palettes import default_palette
from dataset.specs import CITYSCAPES, spec_for
from engine.published import recognise
from model import build_model, mmseg
from utils.checkpoint import convert_state_dict, read_checkpoint
from utils.device import flush_subnormals
from utils.log import log
from utils.errors import UserError


@dataclass
class Weights:
    """A checkpoint file, whatever its layout, as this project uses it."""
    state_dict: dict          # the original release's parameter names, no `module.` prefix
    layout: str               # "ours", "original" ({"epoch", "model"}), "mmseg" (mmsegmentation's CGNet release),
                              # "state_dict" (bare or {"state_dict": sd})
    ckpt: dict = field(default_factory=dict)  # the whole file: epoch, optimizer, ... for resuming
    network: dict = None      # build_model's keyword arguments: recorded, or inferred from a CGNet state_dict
    mean: np.ndarray = None   # what preprocessing subtracts from the RGB image, in that order; None: unknown
    dataset: str = None       # the dataset it was trained for, when recorded
    class_names: list = None  # recorded class names, index order; None: not recorded
    palette: list = None      # recorded colours [[r, g, b], ...], index order; None: not recorded


def self_contained(state_dict, network, dataset, mean, epoch=0, class_names=None, palette=None):
    """Our file layout: the original's {"epoch", "model"} (so its loader reads our files) plus what
    inference needs. network: build_model's keyword arguments ({"name", "classes", "M", "N"});
    mean: what preprocessing subtracts from the RGB image, in that order; class_names and palette
    (one per class) let a checkpoint alone name and colour its classes."""
    ckpt = {"epoch": epoch, "model": state_dict, "network": dict(network), "dataset": dataset,
            "preprocess": {"mean": [float(m) for m in mean]}}
    if class_names is not None and len(class_names) == network["classes"]:
        ckpt["class_names"] = [str(n) for n in class_names]
    if palette is not None and len(palette) == network["classes"]:
        ckpt["palette"] = [[int(c) for c in colour] for colour in palette]
    return ckpt


def infer_network(sd):
    """CGNet's build_model arguments read off its state_dict (the original release records none):
    classes from the classifier, M and N from the numbered CG blocks of stages 2 and 3."""
    head = sd.get("classifier.0.conv.weight")
    if head is None or "level1_0.conv.weight" not in sd:
        return None  # not CGNet: the caller's --model flags decide
    blocks = {stage: {m.group(1) for k in sd for m in [re.match(rf"{stage}\.(\d+)\.", k)] if m}
              for stage in ("level2", "level3")}
    return {"name": "CGNet", "classes": head.shape[0], "M": len(blocks["level2"]) + 1,
            "N": len(blocks["level3"]) + 1}


def _recorded(ckpt, path, flag):
    """network, dataset and mean of our layout; a damaged record is refused rather than guessed."""
    try:
        network = dict(ckpt["network"])
        mean = np.asarray(ckpt["preprocess"]["mean"], np.float32)
        if not isinstance(network.get("name"), str) or not isinstance(network.get("classes"), int) \
                or mean.shape != (3,) or not np.isfinite(mean).all():
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{flag} {path} has a damaged 'network'/'preprocess' record (expected the network's "
                        f"name and classes and a 3-value mean); save the checkpoint again.") from None
    return network, ckpt.get("dataset"), mean


def _recorded_classes(ckpt, classes, path, flag):
    """class_names and palette of our layout, when recorded (older files have neither)."""
    names, palette = ckpt.get("class_names"), ckpt.get("palette")
    try:
        if names is not None:
            names = [str(n) for n in names]
        if palette is not None:
            palette = [[int(c) for c in colour] for colour in palette]
            if any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in palette):
                raise ValueError
        if any(x is not None and len(x) != classes for x in (names, palette)):
            raise ValueError
    except (TypeError, ValueError):
        raise UserError(f"{flag} {path} has a damaged 'class_names'/'palette' record (expected one name and one "
                        f"R,G,B colour per class, {classes} classes); save the checkpoint again.") from None
    return names, palette


def class_table(weights):
    """(class names, palette) of a checkpoint: recorded; else its dataset's (told by name or class count);
    else class_0, class_1, ... and a fixed default palette."""
    classes = weights.network["classes"]
    spec = spec_for(weights.dataset, classes)
    spec = spec if spec is not None and spec.classes == classes else None
    names = weights.class_names or (list(spec.class_names) if spec else [f"class_{i}" for i in range(classes)])
    palette = weights.palette or ([list(c) for c in spec.palette] if spec else default_palette(classes))
    return names, palette


def read_weights(path, flag="--resume", ckpt=None):
    """Recognise a checkpoint's layout and return its Weights; anything else is a UserError naming the file."""
    if ckpt is None:
        ckpt = read_checkpoint(path, flag)
    if mmseg.is_mmseg(ckpt):
        try:
            sd = mmseg.to_original(ckpt)
        except ValueError as e:
            raise UserError(f"{flag} {path} {e}; of mmsegmentation's models only its CGNet M3N21 Cityscapes "
                            f"checkpoints can be used (docs/training.md, 'Pretrained weights').") from None
        return Weights(sd, "mmseg", ckpt, dict(mmseg.NETWORK), np.asarray(mmseg.MEAN_RGB, np.float32), "cityscapes")
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict):
        layout, sd = ("ours" if "args" in ckpt or "network" in ckpt else "original"), ckpt["model"]
    elif isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):  # {"state_dict": sd, ...}
        layout, sd = "state_dict", ckpt["state_dict"]
    else:
        layout, sd, ckpt = "state_dict", ckpt, {}
    if not isinstance(sd, dict) or not sd or not all(torch.is_tensor(v) for v in sd.values()):
        raise UserError(f"{flag} {path} holds no model weights (expected a state_dict or a dict with "
                        f"a 'model' state_dict); check that it is a CGNet checkpoint.")
    weights = Weights(convert_state_dict(sd), layout, ckpt)
    if "network" in ckpt or "preprocess" in ckpt:
        weights.network, weights.dataset, weights.mean = _recorded(ckpt, path, flag)
        weights.class_names, weights.palette = _recorded_classes(ckpt, weights.network["classes"], path, flag)
    else:
        weights.network = infer_network(weights.state_dict)
        a = ckpt.get("args")
        if isinstance(a, dict) and a.get("model") not in (None, "CGNet"):  # ours, before networks were recorded
            weights.network = ({"name": a["model"], "classes": a["classes"]} if isinstance(a.get("classes"), int)
                               else None)
        weights.dataset = a.get("dataset") if isinstance(a, dict) else None
        known = recognise(path)  # a published file that records nothing (the authors' CamVid model): its facts
        if known is not None:
            weights.dataset, weights.mean = known.dataset, np.asarray(known.mean, np.float32)
            weights.class_names, weights.palette = list(known.class_names), [list(c) for c in known.palette]
    return weights


def input_mean(weights, path, inform_path=None, flag="--resume", data=None, default=None):
    """The mean preprocessing subtracts: the checkpoint's (a notice if the statistics file disagrees); for a
    checkpoint without one the statistics file's; else, for 19 classes, the original release's published
    Cityscapes mean (ORIGINAL.md section 3).

    `inform_path` (--inform_data_file): for the tools (segment, export, convert) it is optional and must exist
    when given. `data`: (data_dir, dataset_list, classes, ignore_label) of an eval script, whose
    --inform_data_file has a default: it is read only to compare when the checkpoint has a mean, and computed
    from the list when absent and needed, as the original did. `default`: the mean for a checkpoint that
    records none when no statistics are given (benchmark.py, where it only sets the range of the input)."""
    inform_mean = None
    if data is None and inform_path:
        if not os.path.isfile(inform_path):
            raise UserError(f"--inform_data_file {inform_path} does not exist; give the statistics file the "
                            f"network was trained with, or leave it out.")
        inform_mean = read_inform(inform_path)["mean"]  # computed on BGR images, subtracted as it is
    elif data is not None and weights.mean is not None and os.path.isfile(inform_path):
        try:
            inform_mean = read_inform(inform_path)["mean"]
        except UserError:
            pass  # not needed: the checkpoint carries its mean
    elif data is not None and weights.mean is None:
        data_dir, dataset_list, classes, ignore_label = data
        if os.path.exists(inform_path) or os.path.isfile(os.path.join(data_dir, dataset_list)):
            inform_mean = get_inform(inform_path, data_dir, dataset_list, classes, ignore_label, log)["mean"]
    if weights.mean is not None:
        if inform_mean is not None and not np.allclose(inform_mean, weights.mean, atol=1e-3):
            log(f"notice: --inform_data_file {inform_path} has the mean {np.round(inform_mean, 2).tolist()}, "
                f"the checkpoint {np.round(weights.mean, 2).tolist()}; using the checkpoint's, as it was trained.")
        return np.asarray(weights.mean, np.float32)
    if inform_mean is not None:
        return np.asarray(inform_mean, np.float32)
    if default is not None:
        return np.asarray(default, np.float32)
    if weights.network and weights.network.get("classes") == CITYSCAPES.classes:
        log(f"notice: {path} records no input mean; using the original release's Cityscapes mean "
            f"{list(CITYSCAPES.release_mean)} (pass --inform_data_file to use other statistics).")
        return np.asarray(CITYSCAPES.release_mean, np.float32)
    raise UserError(f"{flag} {path} records no input mean (an original-release or bare checkpoint); pass "
                    f"--inform_data_file with the statistics file of the data it was trained on.")


def _mismatch_cause(model, sd, missing, unexpected, shapes):
    own = model.state_dict()
    cls_key = next((k for k in own if k.startswith("classifier") and k.endswith("weight")), None)
    if cls_key in sd and cls_key in own and sd[cls_key].shape[0] != own[cls_key].shape[0]:
        return (f"the checkpoint has {sd[cls_key].shape[0]} classes but the model {own[cls_key].shape[0]} "
                f"(a checkpoint of the other dataset, or a wrong --classes?)")
    if not (set(sd) & set(own)):
        return "no parameter name matches: it is a checkpoint of another network, or not of CGNet"
    if any(k.startswith(("level2.", "level3.")) for k in missing + unexpected):
        return "the number of CG blocks differs (a checkpoint trained with other --M/--N?)"
    return "the checkpoint was made by a different architecture or --model"


def _check_name(weights, path, flag, model_name):
    trained = (weights.network or {}).get("name")
    if model_name and trained and trained != model_name:
        raise UserError(f"{flag} {path} was trained with --model {trained}, not {model_name}; "
                        f"pass --model {trained} or give a checkpoint trained with --model {model_name}.")


def _load(model, sd, path, flag, skip=()):
    """Load `sd` into `model` strictly but for the keys in `skip`; a misfit is a UserError saying why."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd and k not in skip]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}"
              for k in own if k in sd and k not in skip and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shape mismatch at " + ", ".join(shapes[:3]))
        if missing:
            parts.append("missing " + ", ".join(missing[:3]))
        if unexpected:
            parts.append("unexpected " + ", ".join(unexpected[:3]))
        cause = _mismatch_cause(model, sd, missing, unexpected, shapes)
        raise UserError(f"{flag} {path} does not fit the model ({'; '.join(parts)}): {cause}; give a checkpoint "
                        f"trained with the same --model, --classes, --M and --N.")
    model.load_state_dict({k: v for k, v in sd.items() if k not in skip}, strict=not skip)


def load_weights(model, path, flag="--resume", ckpt=None, model_name=None):
    """Load a checkpoint's weights (read from `path` unless given) into `model` strictly; return its Weights.

    Checkpoints that record their network are refused by a different --model, by name."""
    weights = read_weights(path, flag, ckpt)
    _check_name(weights, path, flag, model_name)
    _load(model, weights.state_dict, path, flag)
    return weights


def _differ_in_classes(theirs, ours, classes):
    """The shapes differ in exactly one dimension, where ours has the class count (a classifier's)."""
    diff = [i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b]
    return len(theirs) == len(ours) and len(diff) == 1 and ours[diff[0]] == classes


def load_pretrained(model, path, classes, ckpt=None, model_name=None, flag="--weights"):
    """Fine-tuning and transfer: all weights of a checkpoint into `model`; when the class counts differ
    the classifier (the tensors whose shape differs only in the class dimension) keeps its fresh
    initialisation, with a notice."""
    weights = read_weights(path, flag, ckpt)
    _check_name(weights, path, flag, model_name)
    sd, own = weights.state_dict, model.state_dict()
    extra_bias = [k for k in sd if k not in own and k.startswith("classifier") and k.endswith(".bias")]
    if extra_bias:  # mmsegmentation's head has a bias the original network has no place for
        sd = {k: v for k, v in sd.items() if k not in extra_bias}
        log(f"notice: {path} has a classifier bias ({', '.join(extra_bias)}) that the original network has no "
            f"place for; it is left out.")
    head = [k for k in own if k in sd and _differ_in_classes(sd[k].shape, own[k].shape, classes)]
    _load(model, sd, path, flag, skip=head)
    if head:
        log(f"notice: {path} was trained for another number of classes than this run's {classes}: every weight "
            f"is loaded except the classifier ({', '.join(head)}), which starts freshly initialised.")
    return weights


def network_of(args):
    """build_model's keyword arguments from the --model/--classes/--M/--N flags."""
    return {"name": args.model, "classes": args.classes, "M": args.M, "N": args.N}


def build_and_load(args, device, path=None, ckpt=None):
    """Training: the --model/--classes/--M/--N network, with the weights of `path` (or of the already
    read `ckpt`) when given; they must fit it exactly."""
    try:
        model = build_model(args.model, args.classes, M=args.M, N=args.N)
    except ValueError as e:
        raise UserError(f"--model/--M/--N: {e}.") from None
    weights = load_weights(model, path, "--resume", ckpt, args.model) if path else None
    return model.to(device), weights


def build_for_inference(path, flag="--resume", fallback=None, model_name=None, classes=None):
    """What eval, test, tools/segment.py and tools/export_onnx.py run: the network the checkpoint
    records (or its CGNet state_dict tells) with its weights, and its Weights. `fallback`: the
    network of the flags, for a checkpoint that tells none; `classes`: the count the caller needs."""
    weights = read_weights(path, flag)
    network = weights.network or fallback
    if network is None:
        raise UserError(f"{flag} {path} is not a checkpoint of CGNet (its parameter names are not CGNet's and "
                        f"it records no network); give a checkpoint written by this project or the original release.")
    _check_name(weights, path, flag, model_name)
    if classes is not None and network["classes"] != classes:
        raise UserError(f"{flag} {path} does not fit: the checkpoint has {network['classes']} classes but the "
                        f"model {classes} (a checkpoint of the other dataset, or a wrong --classes?).")
    try:
        model = build_model(**network)
    except (TypeError, ValueError) as e:
        raise UserError(f"{flag} {path} records a network this code cannot build ({network}: {e}); "
                        f"give a checkpoint written by this project or the original release.") from None
    _load(model, weights.state_dict, path, flag)
    flush_subnormals(model)
    return model.eval(), weights
