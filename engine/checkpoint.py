"""Checkpoints into networks: the original release's files, ours and bare state_dicts."""
from dataclasses import dataclass, field

import numpy as np
import torch

from model import build_model, mmseg
from utils.checkpoint import convert_state_dict, read_checkpoint
from utils.errors import UserError


@dataclass
class Weights:
    """A checkpoint file, whatever its layout, as this project uses it."""
    state_dict: dict          # the original release's parameter names, no `module.` prefix
    layout: str               # "ours", "original" ({"epoch", "model"}), "mmseg" (mmsegmentation's CGNet release),
                              # "state_dict" (bare or {"state_dict": sd})
    ckpt: dict = field(default_factory=dict)  # the whole file: epoch, optimizer, ... for resuming
    network: dict = None      # build_model's keyword arguments when the file determines them
    mean: np.ndarray = None   # what preprocessing subtracts from the RGB image, in that order; None: unknown
    dataset: str = None       # the dataset it was trained for, when recorded


def self_contained(state_dict, network, dataset, mean, epoch=0):
    """Our file layout: the original's {"epoch", "model"} (so its loader reads our files) plus what
    inference needs. network: build_model's keyword arguments ({"name", "classes", "M", "N"});
    mean: what preprocessing subtracts from the RGB image, in that order."""
    return {"epoch": epoch, "model": state_dict, "network": dict(network), "dataset": dataset,
            "preprocess": {"mean": [float(m) for m in mean]}}


def read_weights(path, flag="--resume", ckpt=None):
    """Recognise a checkpoint's layout and return its Weights; anything else is a UserError naming the file."""
    if ckpt is None:
        ckpt = read_checkpoint(path, flag)
    if mmseg.is_mmseg(ckpt):
        try:
            sd = mmseg.to_original(ckpt)
        except ValueError as e:
            raise UserError(f"{flag} {path} {e}; of mmsegmentation's models only its CGNet M3N21 Cityscapes "
                            f"checkpoints can be used (README, 'Pretrained weights').") from None
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
    if isinstance(ckpt.get("network"), dict):
        weights.network = ckpt["network"]
        weights.dataset = ckpt.get("dataset")
        weights.mean = np.asarray(ckpt["preprocess"]["mean"], np.float32)
    return weights


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


def load_weights(model, path, flag="--resume", ckpt=None, model_name=None, weights=None):
    """Load a checkpoint's weights (read from `path` unless given, as `ckpt` or already as `weights`) into
    `model` strictly; return its Weights.

    Our checkpoints record the --model they were trained with; a different one is refused by name."""
    weights = weights or read_weights(path, flag, ckpt)
    ckpt = weights.ckpt
    trained = ckpt.get("args", {}).get("model") if isinstance(ckpt, dict) and isinstance(ckpt.get("args"), dict) else None
    if model_name and trained and trained != model_name:
        raise UserError(f"{flag} {path} was trained with --model {trained}, not {model_name}; "
                        f"pass --model {trained} or give a checkpoint trained with --model {model_name}.")
    sd = weights.state_dict
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
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
    model.load_state_dict(sd)
    return weights


def build_and_load(args, device, path=None, ckpt=None):
    """With a checkpoint (`path`, or the already read `ckpt`): the network it determines (mmsegmentation's,
    or ours written by self_contained) or else the --model network, with its weights. Without: --model."""
    weights = read_weights(path, "--resume", ckpt) if path else None
    network = dict(name=args.model, classes=args.classes, M=args.M, N=args.N)
    if weights is not None and weights.network:
        if weights.network["classes"] != args.classes:
            raise UserError(f"--resume {path} holds a {weights.network['classes']}-class network but --classes is "
                            f"{args.classes}; give a checkpoint of this dataset or the matching --classes.")
        network = weights.network
    try:
        model = build_model(**network)
    except ValueError as e:
        raise UserError(f"--model/--M/--N: {e}.") from None
    if weights is not None:
        load_weights(model, path, "--resume", model_name=network["name"], weights=weights)
    return model.to(device), weights
