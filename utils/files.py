"""Writing files: atomically (a crash never leaves half a file), off the critical path, and checked
for writability before any long work starts."""
import collections
import contextlib
import fcntl
import glob
import json
import os
import shutil
import socket
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from utils.errors import UserError
from utils.vis import palette_array

_UMASK = os.umask(0)
os.umask(_UMASK)

# What this project writes and moves into place later carries these prefixes, and is locked (flock) by the
# process writing it for as long as it works on it: a cleanup then removes only what a dead process left
# (a run killed with SIGKILL), never another live run's work nor a user's own `.tmp-*` files.
TEMP_PREFIX = ".cgnet-tmp-"
STAGE_PREFIX = ".cgnet-stage-"
OWNER = ".cgnet-owner"  # inside a staging folder: its lock file, naming the owner's host and pid

# The one list of each, for every tool that finds images or videos by name (datasets, segment, the web page).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")


def _lock(path):
    """An open file descriptor holding an exclusive flock on `path` (created if missing)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _owner_is_gone(lock_path):
    """True when no live process holds the lock on `lock_path` (its owner exited or was killed)."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)  # flock needs no write access
    except OSError:
        return False  # nothing to judge by (no lock file, not ours to read): leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing also drops a lock we took


def remove_stale(folder, log=print):
    """Delete what a killed run of this project left in `folder` (its temporary files and staging folders),
    and nothing that a live process still holds."""
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), TEMP_PREFIX + "*"))):
        if os.path.isfile(path) and _owner_is_gone(path):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            log(f"notice: removed {path}, left by a run that was killed while writing it.")
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), STAGE_PREFIX + "*" + os.sep))):
        path = path.rstrip(os.sep)
        if _owner_is_gone(os.path.join(path, OWNER)):
            shutil.rmtree(path, ignore_errors=True)
            log(f"notice: removed {path}, left by a run that was killed.")


def atomic_write(path, write):
    """Call write(tmp_path), then move tmp_path onto path: a crash never leaves a half-written file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=os.path.basename(path), dir=folder)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held until the file is in place: remove_stale leaves it alone
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
    finally:
        os.close(fd)


@contextlib.contextmanager
def staged_folder(folder, log=print):
    """Yield a hidden temporary folder inside `folder` to write a set of outputs into; when the block ends
    normally its files are moved into `folder`, and when it raises (a bad file found late, Ctrl-C) they are
    deleted, with any folder this call created: a run either delivers all its outputs or none.

    The staging folder (.cgnet-stage-*) is locked by this process while it lives, so that several runs can
    write into one folder at once: each cleans up only the staging folders of runs that were killed.
    A move is a rename within one file system: for 1000 PNGs it costs milliseconds (docs/training.md, 'No partial
    outputs'), against decoding every label once more to check it before writing anything."""
    created = []  # the folders makedirs creates, deepest first
    probe = os.path.abspath(folder)
    while not os.path.exists(probe):
        created.append(probe)
        probe = os.path.dirname(probe)
    os.makedirs(folder, exist_ok=True)
    remove_stale(folder, log)
    # Made under another name and renamed once locked: a cleanup never sees a staging folder without its lock.
    new = tempfile.mkdtemp(prefix=".cgnet-new-", dir=folder)
    lock = _lock(os.path.join(new, OWNER))
    os.write(lock, f"{socket.gethostname()} {os.getpid()}\n".encode())
    stage = os.path.join(folder, STAGE_PREFIX + os.path.basename(new)[len(".cgnet-new-"):])
    os.rename(new, stage)
    try:
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
                if root != stage or name != OWNER:
                    os.replace(os.path.join(root, name), os.path.join(target, name))
        shutil.rmtree(stage)
    finally:
        os.close(lock)


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
    """PNG encoding in threads while the next image is computed (PIL's encoder releases the GIL).

    What waits in the queue is bounded by the bytes of its array arguments (`max_bytes`), not by a count: a
    queue of 64 small frames is cheap, 64 photos of 48 megapixels are not. Waiting also surfaces write
    errors early."""

    def __init__(self, workers=2, max_bytes=512 * 2 ** 20):
        self.pool = ThreadPoolExecutor(workers) if workers else None  # 0: write synchronously
        self.max_bytes = max_bytes
        self.pending = collections.deque()  # (future, bytes)
        self.queued = 0

    def submit(self, fn, *args):
        if self.pool is None:
            return fn(*args)
        size = sum(a.nbytes for a in args if isinstance(a, np.ndarray))
        while self.pending and self.queued + size > self.max_bytes:
            future, done = self.pending.popleft()
            self.queued -= done
            future.result()
        self.pending.append((self.pool.submit(fn, *args), size))
        self.queued += size

    def close(self):
        try:
            for future, _ in self.pending:
                future.result()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)


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
