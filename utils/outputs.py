"""Writing prediction PNGs and JSON atomically, and off the critical path."""
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from utils.checkpoint import atomic_write
from utils.colors import palette_array


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
