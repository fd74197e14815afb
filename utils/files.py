"""Writing files: atomically (a crash never leaves half a file), off the critical path, and checked
for writability before any long work starts."""
import contextlib
import glob
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from utils.errors import UserError
from utils.vis import palette_array

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




@contextlib.contextmanager
def staged_folder(folder, log=print):
    """Yield a hidden temporary folder inside `folder` to write a set of outputs into; when the block ends
    normally its files are moved into `folder`, and when it raises (a bad file found late, Ctrl-C) they are
    deleted, with any folder this call created: a run either delivers all its outputs or none.

    A move is a rename within one file system: for 1000 PNGs it costs milliseconds (README, 'No partial
    outputs'), against decoding every label once more to check it before writing anything."""
    created = []  # the folders makedirs creates, deepest first
    probe = os.path.abspath(folder)
    while not os.path.exists(probe):
        created.append(probe)
        probe = os.path.dirname(probe)
    os.makedirs(folder, exist_ok=True)
    for stale in glob.glob(os.path.join(glob.escape(folder), ".tmp-*" + os.sep)):
        shutil.rmtree(stale, ignore_errors=True)  # a run killed with SIGKILL could not clean up after itself
        log(f"notice: removed {stale.rstrip(os.sep)}, left by a run that was killed.")
    stage = tempfile.mkdtemp(prefix=".tmp-", dir=folder)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for path in created:
            with contextlib.suppress(OSError):  # not empty: something else wrote there meanwhile
                os.rmdir(path)
        raise
    # File by file, so that staged subfolders merge into ones that already exist in `folder`.
    for root, _, names in os.walk(stage):
        target = os.path.join(folder, os.path.relpath(root, stage))
        os.makedirs(target, exist_ok=True)
        for name in sorted(names):
            os.replace(os.path.join(root, name), os.path.join(target, name))
    shutil.rmtree(stage)


def save_png(path, array, palette=None):
    """uint8 (H, W) as a grey or palette PNG, or (H, W, 3) RGB; written atomically."""
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    if palette is not None:  # putpalette turns the L image into a P image with the same indices
        image.putpalette(palette_array(palette).tolist())
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def save_json(path, obj):
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
    atomic_write(path, write)


class BackgroundWriter:
    """PNG encoding in threads while the next image is computed (PIL's encoder releases the GIL)."""

    def __init__(self, workers=2):
        self.pool = ThreadPoolExecutor(workers) if workers else None  # 0: write synchronously
        self.pending = []

    def submit(self, fn, *args):
        if self.pool is None:
            return fn(*args)
        self.pending.append(self.pool.submit(fn, *args))
        if len(self.pending) > 64:  # bound memory; also surfaces write errors early
            self.pending.pop(0).result()

    def close(self):
        try:
            for f in self.pending:
                f.result()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True)


def _existing_ancestor(path):
    """`path` itself if it exists, else its nearest existing parent: what creating it would write into."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    return probe


def check_writable_dir(path, flag):
    """Fail before any work starts if `path` cannot become a writable folder (nothing is created here)."""
    probe = _existing_ancestor(path)
    if not os.path.isdir(probe):
        where = "is a file" if probe == os.path.abspath(path) else f"lies inside the file {probe}"
        raise UserError(f"{flag} {path} {where}, not a folder; give a folder path.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path} is not writable (no write permission on {probe}); choose another folder.")


def check_writable_file(path, flag):
    """Fail before any work starts if a file cannot be written at `path` (nothing is created here)."""
    if os.path.isdir(path):
        raise UserError(f"{flag} {path} is a folder; give the path of a file to write.")
    probe = _existing_ancestor(os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(probe):
        raise UserError(f"{flag} {path} cannot be written: it lies inside the file {probe}, not a folder; "
                        f"give a path in a folder.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path} cannot be written (no write permission on {probe}); give another path.")
