"""Checkpoints into networks: the original release's files, ours and bare state_dicts."""
import torch

from model import build_model
from utils.checkpoint import convert_state_dict, read_checkpoint
from utils.errors import UserError


def model_state_dict(ckpt, path, flag="--resume"):
    """The model's state_dict from a checkpoint: {'model': sd, ...} (original and ours) or a bare sd."""
    sd = ckpt.get("model", ckpt.get("state_dict", ckpt)) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict) or not sd or not all(torch.is_tensor(v) for v in sd.values()):
        raise UserError(f"{flag} {path} holds no model weights (expected a state_dict or a dict with "
                        f"a 'model' state_dict); check that it is a CGNet checkpoint.")
    return convert_state_dict(sd)


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


def load_weights(model, path, flag="--resume", ckpt=None, model_name=None):
    """Load a checkpoint's weights (read from `path` unless given) into `model` strictly; return the checkpoint.

    Our checkpoints record the --model they were trained with; a different one is refused by name."""
    if ckpt is None:
        ckpt = read_checkpoint(path, flag)
    trained = ckpt.get("args", {}).get("model") if isinstance(ckpt, dict) and isinstance(ckpt.get("args"), dict) else None
    if model_name and trained and trained != model_name:
        raise UserError(f"{flag} {path} was trained with --model {trained}, not {model_name}; "
                        f"pass --model {trained} or give a {model_name} checkpoint.")
    sd = model_state_dict(ckpt, path, flag)
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
    return ckpt if isinstance(ckpt, dict) else {}


def build_and_load(args, device, path=None, ckpt=None):
    try:
        model = build_model(args.model, args.classes, M=args.M, N=args.N)
    except ValueError as e:
        raise UserError(f"--model/--M/--N: {e}.") from None
    ckpt = load_weights(model, path, "--resume", ckpt, args.model) if path else {}
    return model.to(device), ckpt
