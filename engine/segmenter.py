"""A model file as a segmenter of BGR images, with what showing its result needs: the network's input mean,
its classes' names and colours. One place turns a --resume file into predictions for tools/segment.py and
tools/webui.py, through the same predictor() as the evaluation scripts.

    seg = load_segmenter(args)          # args: resume, inform_data_file, amp, compile, plain, cuda, gpus
    pred = seg(image_bgr)               # (H, W) uint8 class ids, as cityscapes_eval.py predicts them
"""
import os
import queue
import threading
import time
from dataclasses import dataclass

import cv2

import numpy as np
import torch

from dataset.datasets import normalize, to_tensor
from engine.checkpoint import build_for_inference, checkpoint_mean, class_table
from engine.evaluate import predictor
from engine.exported import is_exported, load_exported
from utils.device import select_device, use_device
from utils.dist import log
from utils.errors import UserError
from utils.files import BackgroundWriter
from utils.progress import Progress
from utils.vis import overlay


@dataclass
class Segmenter:
    predict: object           # input() of an image -> logits (B, classes, H, W); preprocessed float inputs too
    mean: np.ndarray          # what preprocessing subtracts (dataset.datasets.normalize)
    network: dict             # build_model's keyword arguments
    dataset: str              # the dataset it was trained for, or None
    class_names: list
    palette: list             # [[r, g, b], ...], one per class
    device: torch.device
    path: str
    takes_uint8: bool = False  # an exported file: its graph takes the BGR image itself (engine.exported)

    @property
    def classes(self):
        return len(self.class_names)

    def input(self, image_bgr):
        """The network input of a BGR uint8 image: (1, 3, H, W), the evaluation scripts' preprocessing; for an
        exported file the image itself (1, H, W, 3), which its graph preprocesses."""
        if self.takes_uint8:
            return torch.from_numpy(image_bgr)[None]
        return to_tensor(normalize(image_bgr, self.mean))[None]

    def labels(self, x):
        """(H, W) uint8 class ids of one network input (an exported file's graph computes them itself)."""
        pred = self.predict.labels(x) if self.takes_uint8 else self.predict(x).argmax(1)
        return pred[0].to(torch.uint8).cpu().numpy()

    def __call__(self, image_bgr):
        return self.labels(self.input(image_bgr))

    def describe(self):
        net = self.network
        name = f"{net['name']} M{net['M']}N{net['N']}" if "M" in net else net["name"]
        trained = f", trained on {self.dataset}" if self.dataset else ""
        return f"{name}, {self.classes} classes{trained}, on {self.device.type}"


def load_segmenter(args, path=None, flag="--resume"):
    """The segmenter of `path` (default args.resume) on the device the flags select."""
    path = path or args.resume
    if is_exported(path):  # .onnx / .xml: on the CPU, through the file's runtime
        predict, weights = load_exported(path, flag, args.amp, args.compile)
        names, palette = class_table(weights)
        return Segmenter(predict, weights.mean, weights.network, weights.dataset, names, palette,
                         torch.device("cpu"), path, takes_uint8=True)
    device, _ = select_device(args)
    use_device(device)
    model, weights = build_for_inference(path, flag)
    mean = checkpoint_mean(weights, path, getattr(args, "inform_data_file", None), flag)
    names, palette = class_table(weights)
    return Segmenter(predictor(args, model.to(device), device), mean, weights.network, weights.dataset,
                     names, palette, device, path)


def ahead(iterator, depth=4):
    """Run `iterator` in a thread, up to `depth` items ahead of the consumer: decoding overlaps inference
    (OpenCV decodes without holding the GIL). Its exceptions are raised in the consumer."""
    done = object()
    q = queue.Queue(depth)

    def work():
        try:
            for x in iterator:
                q.put((x, None))
            q.put((done, None))
        except BaseException as e:  # handed to the consumer, which re-raises it
            q.put((done, e))

    threading.Thread(target=work, daemon=True).start()
    while True:
        x, error = q.get()
        if error is not None:
            raise error
        if x is done:
            return
        yield x


def decode_video(capture, seg):
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield frame, seg.input(frame)


def segment_video(seg, source, path, label=None):
    """The overlay video of `source` written to `path` (mp4): the same frames, size and frame rate.
    Returns {"path", "frames", "seconds", "fps"}; `label` names the output in the summary line."""
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise UserError(f"video {source} cannot be read by OpenCV (damaged, or not a video); "
                        f"convert it to mp4 or give its frames as images.")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    result = {}

    def write(tmp):
        video = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not video.isOpened():
            raise UserError(f"OpenCV cannot write an mp4 video ({label or os.path.basename(path)}); check that the "
                            f"output folder is writable.")
        writer = BackgroundWriter(1)  # one thread: frames stay in order
        bar = Progress(total, os.path.basename(source))
        start, frames = time.perf_counter(), 0
        try:
            for frame, x in ahead(decode_video(capture, seg)):
                pred = seg.labels(x)
                writer.submit(lambda f, p: video.write(overlay(f[:, :, ::-1], p, seg.palette)[:, :, ::-1]), frame, pred)
                frames += 1
                bar.update(min(frames, total) if total else frames)
        finally:
            writer.close()
            video.release()
            capture.release()
        if frames == 0:
            raise UserError(f"video {source} has no frame OpenCV can decode; convert it to mp4.")
        result.update(frames=frames, seconds=time.perf_counter() - start)

    write(path)
    result.update(path=path, fps=result["frames"] / result["seconds"])
    log(f"{label or os.path.basename(path)}: {result['frames']} frames of {size[0]}x{size[1]} at {result['fps']:.2f} frames/s")
    return result
