"""Checkpoint files: read safely, write atomically.

Loading always uses weights_only=True, so a file that would need arbitrary unpickling (and could run
code) is refused instead of executed.
"""
import os
import pickle
import re

import numpy as np
import torch

from utils.errors import UserError
from utils.files import atomic_write


def save_checkpoint(obj, path):
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


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
            return torch.load(path, map_location="cpu", weights_only=True)
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
