"""Bounded by bytes and by age: what a long-running server keeps (tools/webui.py) in memory and on disk."""
import collections
import ctypes
import os
import shutil
import tempfile
import threading
import time


class BytesLRU:
    """Pairs of arrays (a decoded image and its prediction, for tools/webui.py's re-blending) kept by key, bounded
    in bytes: the least recently used go first."""

    def __init__(self, max_bytes):
        self.max_bytes, self.bytes = max_bytes, 0
        self.items = collections.OrderedDict()  # key -> (image, pred)
        self.lock = threading.Lock()

    def put(self, key, image, pred):
        with self.lock:
            self.items[key] = (image, pred)
            self.bytes += image.nbytes + pred.nbytes
            while self.bytes > self.max_bytes and self.items:
                self._pop(next(iter(self.items)))

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def drop(self, key):
        with self.lock:
            if key in self.items:
                self._pop(key)

    def _pop(self, key):
        image, pred = self.items.pop(key)
        self.bytes -= image.nbytes + pred.nbytes


class BoundedFolder:
    """A server's temporary folder (tools/webui.py: Gradio's uploads and cache, and results/, one folder per
    upload), bounded: entries older than `max_age` seconds go, and past `max_bytes` the oldest go first."""

    def __init__(self, root, max_bytes, max_age):
        self.root, self.max_bytes, self.max_age = root, max_bytes, max_age
        self.results = os.path.join(root, "results")
        os.makedirs(self.results, exist_ok=True)
        self.lock = threading.Lock()

    def folder(self):
        """A new folder in results/ (one per upload: names never collide between visitors), after bound()."""
        self.bound()
        return tempfile.mkdtemp(dir=self.results)

    def entries(self):
        """(modified time, bytes, path) of each folder of results/ and each other entry, the oldest first."""
        found = []
        for top in os.scandir(self.root):
            for entry in (os.scandir(top.path) if top.path == self.results else [top]):
                try:
                    found.append((entry.stat().st_mtime, tree_bytes(entry.path), entry.path))
                except FileNotFoundError:
                    continue  # removed meanwhile (a session ended)
        return sorted(found)

    def bound(self, limit=None):
        """Remove the entries older than max_age (Gradio keeps a raw copy of each upload that its delete_cache
        does not track), then the oldest while the folder holds over `limit` bytes (default max_bytes)."""
        limit = self.max_bytes if limit is None else limit
        with self.lock:
            entries = self.entries()
            total = sum(size for _, size, _ in entries)
            oldest = time.time() - self.max_age
            for modified, size, path in entries:
                if total <= limit and modified >= oldest:
                    break
                remove(path)
                total -= size


    def make_room(self, needed, keep=None):
        """After a full disk: remove the oldest entries (not the one holding the path `keep`) until `needed` bytes
        are free. Whether they are."""
        with self.lock:
            for _, _, path in self.entries():
                if shutil.disk_usage(self.root).free >= needed:
                    break
                if keep is None or not (keep == path or keep.startswith(path + os.sep)):
                    remove(path)
            return shutil.disk_usage(self.root).free >= needed


def release_memory():
    """Give the memory freed so far back to the system. A web server answers each request in one of many worker
    threads, and glibc keeps what a thread's arena freed (a 12 MP photo's arrays of 12 MB and less) for reuse by
    that arena: without this the resident memory of a page left running grows with every new visitor's photo
    (measured with tools/soak_webui.py: docs/soak/soak_webui.md)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except AttributeError:  # not glibc: nothing to do
        pass


def tree_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(r, n)) for r, _, names in os.walk(path) for n in names)


def remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)
