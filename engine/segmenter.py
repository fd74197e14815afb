"""A model file as a segmenter of BGR images, with what showing its result needs: its classes' names and
colours. tools/segment.py and tools/webui.py load the --resume file through engine.backend, as the evaluation
scripts do.

    seg = load_segmenter("model.pth")   # or .onnx/.xml; engine.backend.load's keywords: device="cuda", amp="bf16", ...
    pred = seg(image_bgr)               # (H, W) uint8 class ids, as cityscapes_eval.py predicts them
    seg.colours(pred), seg.class_names  # (H, W, 3) uint8 RGB colours of the classes; their names
    seg.save("out/street", image_bgr, pred)   # out/street.png, street_color.png, street_overlay.png

Memory is bounded whatever the photo: by default the network sees the image with its long side capped at
MAX_SIDE (Cityscapes' 2048, so its images are unchanged) and the logits are resized back to the original
size; with tile=True it sees every pixel at full resolution, in overlapping tiles.

probe(path) says what an input is (an image, or a video with its frame count and rate), the one rule both
front ends follow; videos are segmented by engine.video.
"""
import itertools
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image

from dataset.classes_file import background_class
from dataset.datasets import image_header
from engine.backend import load
from engine.cli import MAX_SIDE
from engine.profile import timed
from engine.video import is_url, open_capture, video_metadata
from utils.files import save_png
from utils.vis import colorize, overlay

TILE = (1024, 2048)    # (H, W) of a tile in full-resolution mode (landscape; swapped for portrait images)
TILE_MARGIN = 128      # context each tile sees beyond the pixels it predicts (discarded at its border)
OUTPUTS = (".png", "_color.png", "_overlay.png")  # what save() writes per image: class ids, colours, overlay


@dataclass
class Segmenter:
    backend: object           # engine.backend.Backend: logits/labels of a batch, the file's metadata
    max_side: int = MAX_SIDE  # 0: no cap (memory grows with the image)
    tile: bool = False        # full resolution in overlapping tiles (memory bounded by the tile)
    profile: object = None    # an engine.profile.Profile: where a video frame's time goes (segment.py --profile)

    # What the file says about itself, and where it runs: the backend's.
    path = property(lambda self: self.backend.path)
    device = property(lambda self: self.backend.device)
    mean = property(lambda self: self.backend.mean)
    network = property(lambda self: self.backend.network)
    dataset = property(lambda self: self.backend.dataset)
    classes = property(lambda self: self.backend.classes)
    class_names = property(lambda self: self.backend.class_names)
    palette = property(lambda self: self.backend.palette)

    @property
    def background(self):
        """The class overlays leave unblended (dataset.classes_file.background_class), or None."""
        return background_class(self.class_names)

    def tiled(self, image_bgr):
        """Whether this image goes through tiles (full resolution, larger than one tile)."""
        h, w = image_bgr.shape[:2]
        return self.tile and h * w > TILE[0] * TILE[1]

    def input(self, image_bgr):
        """The network input of a BGR uint8 image, shrunk to a long side of max_side when it is larger (and
        tiling is off): see prepare()."""
        h, w = image_bgr.shape[:2]
        if self.max_side and not self.tile and max(h, w) > self.max_side:
            f = self.max_side / max(h, w)
            size = (max(1, round(w * f)), max(1, round(h * f)))
            image_bgr = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
        return self.prepare(image_bgr)

    def prepare(self, image_bgr):
        """A batch of one image in the backend's input kind (the eval scripts' preprocessing, or the image)."""
        return self.backend.prepare(image_bgr)

    def labels(self, x, size=None):
        """(H, W) uint8 class ids of one network input; `size` (H, W): the original image's, when x was shrunk."""
        if size is None or tuple(size) == self.backend.size(x):
            return self.backend.labels(x)[0].to(torch.uint8).cpu().numpy()
        return upsampled_argmax(self.backend.logits(x)[0].float().cpu().numpy(), size)

    def stream(self, decoded):
        """(frame, (H, W) uint8 class ids) of each (frame, network input) of `decoded`, in order, through the
        backend's stream() (an OpenVINO file keeps two frames in flight, so that decoding, blending and encoding
        overlap the network). Frames shrunk for the network go one at a time, their logits resized back."""
        decoded = iter(decoded)
        first = next(decoded, None)
        if first is None:
            return
        decoded = itertools.chain([first], decoded)
        if self.backend.size(first[1]) != first[0].shape[:2]:
            for frame, x in decoded:
                with timed(self.profile, "network"):
                    pred = self.labels(x, frame.shape[:2])
                yield frame, pred
            return
        for frame, labels in self.backend.stream(decoded, self.profile):
            yield frame, labels[0].to(torch.uint8).cpu().numpy()

    def colours(self, pred):
        """(H, W, 3) uint8 RGB: each pixel of the class ids `pred` in its class's colour."""
        return colorize(pred, self.palette)

    def __call__(self, image_bgr):
        if self.tiled(image_bgr):
            return self.in_tiles(image_bgr)
        return self.labels(self.input(image_bgr), image_bgr.shape[:2])

    def in_tiles(self, image_bgr):
        """Class ids at full resolution, one tile at a time: each tile predicts its centre and sees
        TILE_MARGIN pixels of context around it, so memory depends on the tile, not on the image."""
        h, w = image_bgr.shape[:2]
        th, tw = TILE if w >= h else TILE[::-1]
        m = TILE_MARGIN
        step_h, step_w = th - 2 * m, tw - 2 * m
        out = np.empty((h, w), np.uint8)
        for y in range(0, h, step_h):
            for x in range(0, w, step_w):
                y0, x0, y1, x1 = max(0, y - m), max(0, x - m), min(h, y + step_h + m), min(w, x + step_w + m)
                pred = self.labels(self.prepare(image_bgr[y0:y1, x0:x1]))
                out[y:y + step_h, x:x + step_w] = pred[y - y0:y - y0 + step_h, x - x0:x - x0 + step_w]
        return out

    def save(self, stem, image_bgr, pred, alpha=0.5, outputs=OUTPUTS):
        """Write the files of one segmented image: stem.png (class ids, as cityscapes_eval.py writes them),
        stem_color.png (the classes' colours) and stem_overlay.png (the image blended with them at `alpha`).
        `outputs`: some of OUTPUTS (the web page re-blends the overlay alone). Returns the paths written."""
        paths = []
        for suffix in outputs:
            path = stem + suffix
            if suffix == "_overlay.png":
                save_png(path, overlay(image_bgr[:, :, ::-1], pred, self.palette, alpha=alpha,
                                       background=self.background))
            else:
                save_png(path, pred, self.palette if suffix == "_color.png" else None)
            paths.append(path)
        return paths

    def describe(self):
        net = self.network
        name = f"{net['name']} M{net['M']}N{net['N']}" if "M" in net else net["name"]
        trained = f", trained on {self.dataset}" if self.dataset else ""
        return f"{name}, {self.classes} classes{trained}, on {self.device.type}"


def upsampled_argmax(logits, size):
    """argmax over classes of the logits (C, h, w) bilinearly resized to size (H, W), one class at a time:
    a few full-size planes in memory instead of C of them (19 float planes of a 48-megapixel photo: 3.6 GB)."""
    h, w = size
    best = cv2.resize(logits[0], (w, h), interpolation=cv2.INTER_LINEAR)  # half-pixel centres, as torch's
    ids = np.zeros((h, w), np.uint8)
    for c in range(1, logits.shape[0]):
        plane = cv2.resize(logits[c], (w, h), interpolation=cv2.INTER_LINEAR)
        higher = plane > best  # strict: ties keep the lower class, as argmax does
        ids[higher] = c
        np.maximum(best, plane, out=best)
        del plane, higher
    return ids


def load_segmenter(path, *, max_side=MAX_SIDE, tile=False, **options):
    """The Segmenter of a model file (.pth, .onnx, .xml); `options`: engine.backend.load's keywords (device, mode,
    amp, inform, ...; engine.cli.segmenter_options gives them from the command line). max_side and tile: how large
    images are segmented (see Segmenter)."""
    return Segmenter(load(path, **options), max_side, tile)


@dataclass(frozen=True)
class Probe:
    """What an input is, read from its content (its name does not decide)."""
    kind: str          # "image", or "video" (a file, a camera or a stream)
    size: tuple        # (width, height); an image's upright, (inf, inf) past Pillow's decompression-bomb limit
    frames: int = 1    # a video's: None when it does not say (a live source, some webm/VFR files)
    fps: float = None  # a video's, by video_metadata's rules (an implausible rate is taken as DEFAULT_FPS)


def probe(source, timeout=10.0):
    """The Probe of `source`: a file whose header Pillow reads is an image; else one that OpenCV opens with a
    frame size is a video (FFmpeg 'opens' a text file named .jpg, with no size). None for a file that is
    neither. A camera index or a stream URL is a video, opened here to check it (its UserError says what to
    do when it does not open)."""
    file = not (isinstance(source, int) or is_url(source))
    if file:
        header = image_header(source)
        if not isinstance(header, str):
            return Probe("image", header[:2])
        if too_large_image(source):
            return Probe("image", (float("inf"), float("inf")))
    capture = cv2.VideoCapture(source) if file else open_capture(source, timeout)
    try:
        size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if file and not (capture.isOpened() and min(size) > 0):
            return None
        frames, fps = video_metadata(capture, source, quiet=True)
    finally:
        capture.release()
    return Probe("video", size, frames, fps)


def too_large_image(path):
    """An image whose header Pillow refuses to read as a decompression bomb (over twice its 179 Mpixel limit)."""
    try:
        with Image.open(path):
            return False
    except Image.DecompressionBombError:
        return True
    except Exception:  # not an image at all: Pillow raises several types
        return False
