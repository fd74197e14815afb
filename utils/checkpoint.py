"""Checkpoint files: read safely, write atomically.

Loading always uses weights_only=True, so a file that would need arbitrary unpickling (and could run
code) is refused instead of executed.
"""
import hashlib
import io
import os
import pickle
import re

import numpy as np
import torch

from utils.errors import UserError
from utils.files import atomic_write


def save_checkpoint(obj, path):
    """Written atomically, with the checksum of its tensors (verified by read_checkpoint). Serialized in memory
    first: torch.save into a file reports a full disk as a bare RuntimeError, and this way the bytes it needs are
    known for the sentence that says so."""
    buffer = io.BytesIO()
    torch.save(with_checksum(obj), buffer)
    data = buffer.getbuffer()

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
    atomic_write(path, write, size=len(data))


CHECKSUM = "tensor_sha256"  # the key under which our checkpoints keep the sha256 of their tensors


def tensors(obj, name=""):
    """(name, tensor) of every tensor inside `obj` (nested dicts, lists and tuples), in their stored order; a
    name is its keys joined by '/', e.g. model/level1_0.conv.weight."""
    if torch.is_tensor(obj):
        yield name, obj
    elif isinstance(obj, (dict, list, tuple)):
        for key, value in (obj.items() if isinstance(obj, dict) else enumerate(obj)):
            if key != CHECKSUM:
                yield from tensors(value, f"{name}/{key}" if name else str(key))


def tensor_checksum(obj):
    """sha256 over every tensor of `obj`: its name, dtype, shape and bytes. Any flipped bit changes it, also one
    that leaves every value finite."""
    digest = hashlib.sha256()
    for name, t in tensors(obj):
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def with_checksum(obj):
    """A dict checkpoint ({"model": ..., ...}) with the checksum of its tensors added. A bare state_dict stays
    bare: every loader (the original's, load_state_dict) takes each of its keys for a parameter."""
    if not isinstance(obj, dict) or all(torch.is_tensor(v) for v in obj.values()):
        return obj
    return {**obj, CHECKSUM: tensor_checksum(obj)}


def check_tensors(ckpt, path, flag="--resume"):
    """Refuse, in one sentence, a checkpoint with a NaN or infinite value in any floating tensor (naming the first
    such tensor), or one whose tensors no longer match the checksum it was saved with (a bit flipped on disk or in
    a copy). Files without a checksum (the original's, mmsegmentation's, older ones of ours) are checked for
    finite values only."""
    for name, t in tensors(ckpt):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
            found = " and ".join(f"{n} {what}" for n, what in ((nan, "NaN"), (inf, "infinite")) if n)
            raise UserError(f"{flag} {path} is damaged: its tensor {name} holds {found} value(s) of {t.numel()}; "
                            f"download or save it again (a corrupt file would predict garbage).")
    recorded = ckpt.get(CHECKSUM) if isinstance(ckpt, dict) else None
    if recorded is not None and recorded != tensor_checksum(ckpt):
        raise UserError(f"{flag} {path} is damaged: its tensors no longer match the checksum recorded when it was "
                        f"saved (a bit changed on disk or in a copy); use another copy, or save it again.")


def convert_state_dict(state_dict):
    """Strip the `module.` prefix that nn.DataParallel / DDP add, only from keys that have it."""
    prefix = "module."
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def _numpy_globals():
    """numpy's reconstructors of scalars, arrays and dtypes, nothing else: release files of mmsegmentation's era
    carry numpy values in `meta`. Files pickled by numpy 1.x name the module numpy.core, numpy 2 numpy._core."""
    multiarray = np._core.multiarray
    # Not the object, void (structured) and variable-width string dtypes: the values of those are Python objects.
    plain = [name for name in np.dtypes.__all__ if name not in ("ObjectDType", "VoidDType", "StringDType")]
    allowed = [np.dtype, np.ndarray] + [getattr(np.dtypes, name) for name in plain]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed += [(multiarray.scalar, f"{module}.scalar"), (multiarray._reconstruct, f"{module}._reconstruct")]
    return allowed


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
    allowed = _numpy_globals()  # outside the try: a change in numpy is a bug to see, not a damaged file
    try:
        with torch.serialization.safe_globals(allowed):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)|but got <class '([^']+)'>",
                          str(e))
        if found:
            raise UserError(
                f"{flag} {path} was refused: it contains a Python object ({found[1] or found[2]}) other than "
                f"tensors and plain containers, and unpickling them could run arbitrary code; use a checkpoint saved as "
                f"a plain dict of tensors (state_dict).") from None
        raise UserError(f"{flag} {path} is not a PyTorch checkpoint (corrupt, truncated or another kind "
                        f"of file); download or save it again.") from None
    except Exception:  # only torch.load is inside: whatever it raises on a damaged file (zip, EOF, decode errors)
        raise UserError(f"{flag} {path} is not a PyTorch checkpoint (corrupt, truncated or another kind "
                        f"of file); download or save it again.") from None
    check_tensors(ckpt, path, flag)
    return ckpt
