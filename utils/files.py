"""Writing files: atomically (a crash never leaves half a file), off the critical path, and checked
for writability before any long work starts."""
import collections
import contextlib
import errno
import fcntl
import glob
import json
import os
import re
import shutil
import socket
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
MODEL_KINDS = {".onnx": "onnx", ".xml": "openvino"}  # an exported model by its suffix; anything else: a checkpoint


def model_file_kind(path):
    """'checkpoint', 'onnx' or 'openvino': the one place where a model file's suffix is read (engine.backend opens
    the file by it; engine.cli picks a GPU only for a checkpoint)."""
    return MODEL_KINDS.get(os.path.splitext(str(path))[1].lower(), "checkpoint")


# OSErrors that say the disk cannot take what is written: each becomes one sentence naming the folder.
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
NEARLY_FULL = 64 * 1024  # bytes free below which a writer that does not say why it failed (OpenCV) met a full disk


class NoRoom(UserError):
    """A UserError saying that a disk cannot take what was written (a web page words it for its visitors)."""


def free_bytes(folder):
    """Bytes a user may still write on the file system of `folder` (or of its nearest existing parent)."""
    return shutil.disk_usage(_existing_ancestor(folder)).free


def no_room(error, folder, needed=None, written=None):
    """The UserError of `error` when it means that the disk of `folder` cannot take what was being written (full,
    over its quota, read-only; or any write error of a library while under NEARLY_FULL bytes are free), else None.
    `needed`: the bytes the write needed, when known; `written`: else what it had written when it failed."""
    code = getattr(error, "errno", None)
    while STAGE_PREFIX in folder:  # a staging folder is ours: the user knows the folder it is delivered into
        folder = os.path.dirname(folder)
    if code == errno.EROFS:
        return NoRoom(f"cannot write into {folder}: its file system is read-only; choose another folder.")
    try:
        free = free_bytes(folder)
    except OSError:
        return None
    if code not in NO_ROOM and not (isinstance(error, (OSError, RuntimeError)) and free < NEARLY_FULL):
        return None
    problem = "disk quota is used up" if code == errno.EDQUOT else "disk is full"
    need = (f"it needed {needed:,} bytes" if needed else
            f"it needed more than the {written:,} bytes written when it filled" if written else "it needed more")
    return NoRoom(f"cannot write into {folder}: its {problem} ({need}, {free:,} are free); free some space "
                     f"or choose another folder, and run it again.")


def check_room(folder):
    """After a writer that does not report a failed write (OpenCV's VideoWriter): a disk left with under
    NEARLY_FULL bytes free most likely cut its file short, which is said as a full disk is."""
    if free_bytes(folder) < NEARLY_FULL:
        raise no_room(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), folder)


def _size(path):
    """Bytes under `path` (a file or a folder), 0 when it is gone."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, n)) for root, _, names in os.walk(path) for n in names)


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


def atomic_write(path, write, size=None):
    """Call write(tmp_path), then move tmp_path onto path: a crash never leaves a half-written file, and a disk
    that cannot take it is one sentence (no_room). `size`: the bytes it will take, when the caller knows."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=os.path.basename(path), dir=folder)
    except OSError as e:
        raise no_room(e, folder, size) or e from None
    fcntl.flock(fd, fcntl.LOCK_EX)  # held until the file is in place: remove_stale leaves it alone
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        written = _size(tmp)
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        problem = no_room(e, folder, size, written)
        if problem is None:
            raise
        raise problem from None
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
    created = _missing_folders(folder)  # the folders makedirs creates, deepest first
    try:
        os.makedirs(folder, exist_ok=True)
        remove_stale(folder, log)
        # Made under another name and renamed once locked: a cleanup never sees a staging folder without its lock.
        new = tempfile.mkdtemp(prefix=".cgnet-new-", dir=folder)
        lock = _lock(os.path.join(new, OWNER))
        os.write(lock, f"{socket.gethostname()} {os.getpid()}\n".encode())
    except OSError as e:
        raise no_room(e, folder) or e from None
    stage = os.path.join(folder, STAGE_PREFIX + os.path.basename(new)[len(".cgnet-new-"):])
    os.rename(new, stage)
    try:
        try:
            yield stage
        except BaseException as e:
            # A writer inside (ONNX, OpenVINO, a PNG) that met a full disk: one sentence, with what it had written.
            problem = no_room(e, folder, written=_size(stage)) if isinstance(e, (OSError, RuntimeError)) else None
            shutil.rmtree(stage, ignore_errors=True)
            for path in created:
                with contextlib.suppress(OSError):  # not empty: something else wrote there meanwhile
                    os.rmdir(path)
            if problem is not None:
                raise problem from None
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


def save_text(path, text):
    """A text file, written atomically (utf-8)."""
    atomic_write(str(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def save_json(path, obj, indent=2):
    """indent=None: compact, for files of many numbers (a COCO file's polygons)."""
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=indent, separators=None if indent else (",", ":"))
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


def _missing_folders(path):
    """`path` (absolute) and those of its parents that do not exist, deepest first: what creating it creates."""
    missing, probe = [], os.path.abspath(path)
    while not os.path.exists(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    return missing


def _existing_ancestor(path):
    """`path` itself if it exists, else its nearest existing parent: what creating it would write into."""
    missing = _missing_folders(path)
    return os.path.dirname(missing[-1]) if missing else os.path.abspath(path)


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


TOKENS = re.compile(r'\\.|["{}\[\]]', re.S)  # an escape, a quote, a bracket: all a look at the structure needs


def top_level_keys(path, wanted, block=1 << 20):
    """The keys of the JSON object in path, read as a stream until all of `wanted` are seen: a file of any size is
    recognised by its keys whatever their order, after a few bytes when they come first (CVAT's COCO files). A string
    at the top level counts as a key (a value such as "info": "images" too: harmless here). A file that does not open
    as UTF-8 has none."""
    keys, depth, in_string, start, carry = set(), 0, False, None, ""
    try:
        with open(path, encoding="utf-8-sig") as f:
            while True:
                chunk = f.read(block)
                if not chunk:
                    return keys
                while chunk.endswith("\\"):  # never end a block on a backslash: an escape cut in two ends a string
                    more = f.read(1)
                    if not more:
                        break
                    chunk += more
                text, carry = carry + chunk, ""
                for m in TOKENS.finditer(text):
                    t = m.group()
                    if in_string:
                        if t == '"':
                            in_string = False
                            if depth == 1 and start is not None:
                                keys.add(text[start:m.start()])
                                if keys >= set(wanted):
                                    return keys
                    elif t == '"':
                        in_string, start = True, m.end()
                    elif t in "{[":
                        depth += 1
                    elif t in "}]":
                        depth -= 1
                if in_string and depth == 1 and start is not None:  # a key cut by the block: its start comes along
                    carry, start = (text[start:], 0) if len(text) - start < 256 else ("", None)
    except (OSError, UnicodeDecodeError):
        return keys
