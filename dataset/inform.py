"""Dataset statistics of the original (the 'inform' file): per-channel mean/std and class weights.

The original pickled a dict of numpy float32 arrays. We write the same format (so either
implementation reads the other's file) but read it with a restricted unpickler that only builds numpy
arrays, plain dicts and numbers: loading never runs code.

Our files add a "source" entry of plain str/int values: the data they were computed from. A cached file
whose source differs from the current --data_dir/--dataset_list is recomputed (with a notice); a file
without one (the original's) is used as it is.
"""
import hashlib
import os
import pickle

import numpy as np

from dataset.datasets import load_image, load_label, read_list
from utils.files import atomic_write, check_writable_file
from utils.errors import UserError
from utils.log import notice
from utils.progress import iterate, plural

NORM_VAL = 1.10  # class weight = 1 / ln(NORM_VAL + p_c), as the original (ENet's weighting)
KEYS = ("mean", "std", "classWeights")


class _SafeUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
        ("_codecs", "encode"),  # protocol-2 pickles store array bytes through it; it only encodes text
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed")
        return super().find_class(module.replace("numpy.core", "numpy._core"), name)


def compute_inform(data_dir, dataset_list, classes, ignore_label):
    list_path = os.path.join(data_dir, dataset_list)
    samples = read_list(list_path, data_dir, with_label=True, flag="--dataset_list")
    mean, std = np.zeros(3, np.float64), np.zeros(3, np.float64)
    hist = np.zeros(classes, np.int64)
    for s in iterate(samples, "dataset statistics", "images"):
        image = load_image(s.image)
        mean += image.reshape(-1, 3).mean(0)   # per-image channel means (BGR), averaged over images
        std += image.reshape(-1, 3).std(0)
        label = load_label(s.label, classes, ignore_label)
        hist += np.bincount(label[label < classes].ravel(), minlength=classes)[:classes]
    if hist.sum() == 0:
        raise UserError(f"--dataset_list {list_path}: its labels hold no pixel of classes 0..{classes - 1}; "
                        f"check the labels and --classes.")
    share = hist / hist.sum()
    return {"mean": (mean / len(samples)).astype(np.float32),
            "std": (std / len(samples)).astype(np.float32),
            "classWeights": (1 / np.log(NORM_VAL + share)).astype(np.float32)}


def list_source(data_dir, dataset_list):
    """What the statistics are computed from, in plain types, or None when the list cannot be read.

    The fingerprint is the list's text (SHA-256), not its size and mtime: a copied or re-checked-out list
    keeps its text but not its mtime, and recomputing costs a full pass over the images (minutes on
    Cityscapes), while hashing a list costs microseconds. Images changed in place under the same names are
    not seen; the data folder's path and the list's text are what this can check cheaply."""
    list_path = os.path.join(data_dir, dataset_list)
    try:
        with open(list_path, "rb") as f:
            text = f.read()
    except OSError:
        return None
    return {"data_dir": os.path.realpath(data_dir), "dataset_list": os.path.normpath(dataset_list),
            "images": sum(1 for line in text.splitlines() if line.strip()),
            "sha256": hashlib.sha256(text).hexdigest()}


def describe(source):
    return f"{os.path.join(source['data_dir'], source['dataset_list'])} ({plural(source['images'], 'image')})"


def read_inform(path):
    try:
        with open(path, "rb") as f:
            info = _SafeUnpickler(f).load()
    except Exception as e:
        raise UserError(f"--inform_data_file {path} is not a valid statistics file ({e}); delete it and it will be "
                        f"recomputed from --data_dir/--dataset_list.") from None
    ok = isinstance(info, dict) and all(isinstance(info.get(k), np.ndarray) for k in KEYS) \
        and info["mean"].shape == (3,) and info["std"].shape == (3,) and info["classWeights"].ndim == 1 \
        and all(np.isfinite(info[k]).all() for k in KEYS)
    if not ok:
        raise UserError(f"--inform_data_file {path} does not hold the expected mean, std and classWeights arrays; "
                        f"delete it and it will be recomputed from --data_dir/--dataset_list.")
    result = {k: info[k].astype(np.float32) for k in KEYS}
    source = info.get("source")
    if isinstance(source, dict) and {"data_dir", "dataset_list", "images", "sha256"} <= set(source):
        result["source"] = source
    return result


def get_inform(path, data_dir, dataset_list, classes, ignore_label, log=print):
    """Read the cached statistics, or compute them once from data_dir/dataset_list and cache them."""
    if os.path.isdir(path):
        raise UserError(f"--inform_data_file {path} is a directory; give the path of a .pkl file "
                        f"(it is computed there when absent).")
    source = list_source(data_dir, dataset_list)
    if os.path.exists(path):
        info = read_inform(path)
        cached = info.get("source")
        if cached is None or source is None or cached == source:
            # The original's file (no source) is used as it is; so is ours when the list cannot be read now
            # (evaluating where only the val images are), with a word about where it came from.
            if cached is not None and source is None:
                notice(f"{os.path.join(data_dir, dataset_list)} cannot be read, so the statistics of "
                       f"{path} (computed from {describe(cached)}) are used unchecked.")
            if len(info["classWeights"]) != classes:
                raise UserError(f"--inform_data_file {path} has class weights for {len(info['classWeights'])} "
                                f"classes but --classes is {classes}; delete it (it will be recomputed) or give "
                                f"another path.")
            return info
        if cached["data_dir"] != source["data_dir"]:
            change = f"--data_dir is now {source['data_dir']}"
        elif cached["dataset_list"] != source["dataset_list"]:
            change = f"--dataset_list is now {source['dataset_list']}"
        else:
            change = f"that list has changed since ({plural(source['images'], 'image')} now)"
        notice(f"{path} was computed from {describe(cached)}, but {change}; recomputing the statistics.")
    check_writable_file(path, "--inform_data_file")  # before the long pass
    log(f"computing dataset statistics from {os.path.join(data_dir, dataset_list)} (once; cached at {path})")
    info = compute_inform(data_dir, dataset_list, classes, ignore_label)
    if source is not None:
        info["source"] = source
    def write(tmp):
        with open(tmp, "wb") as f:
            pickle.dump(info, f, protocol=3)  # Python 3.6, the original's, reads it
    try:
        atomic_write(path, write)
    except OSError as e:
        raise UserError(f"--inform_data_file {path} cannot be written ({e.strerror}); give a writable path.") from None
    return info
