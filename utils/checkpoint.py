"""Checkpoints: load the original release's files, ours and bare state_dicts safely; write atomically.

Loading always uses weights_only=True, so a file that would need arbitrary unpickling (and could run
code) is refused instead of executed.
"""
import os
import pickle
import re
import tempfile

import torch

from utils.errors import UserError


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path, write):
    """Call write(tmp_path), then move tmp_path onto path: a crash never leaves a half-written file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_checkpoint(obj, path):
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def convert_state_dict(state_dict):
    """Strip the `module.` prefix that nn.DataParallel / DDP add, only from keys that have it."""
    prefix = "module."
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def read_checkpoint(path, flag="--resume"):
    """Load a checkpoint file onto the CPU; every failure is a UserError naming the file."""
    if not os.path.exists(path):
        raise UserError(f"{flag} {path} does not exist; give the path of a .pth checkpoint file.")
    if os.path.isdir(path):
        raise UserError(f"{flag} {path} is a directory; give the path of a .pth checkpoint file inside it.")
    if os.path.getsize(path) == 0:
        raise UserError(f"{flag} {path} is empty (0 bytes); the download or save did not complete, fetch it again.")
    if not os.access(path, os.R_OK):
        raise UserError(f"{flag} {path} cannot be read (no read permission); check its permissions.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", str(e))
        if found:
            raise UserError(
                f"{flag} {path} was refused: it contains a Python object ({found.group(1)}) other than "
                f"tensors and plain containers, and unpickling them could run arbitrary code; use a checkpoint saved as "
                f"a plain dict of tensors (state_dict).") from None
        raise UserError(f"{flag} {path} is not a PyTorch checkpoint (corrupt, truncated or another kind "
                        f"of file); download or save it again.") from None
    except Exception:
        raise UserError(f"{flag} {path} is not a PyTorch checkpoint (corrupt, truncated or another kind "
                        f"of file); download or save it again.") from None


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
