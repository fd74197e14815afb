"""Segment your own images, folders and videos with a trained checkpoint: no list file, no dataset.

    python tools/segment.py --resume model_350.pth street.jpg photos/ "shots/*.png" drive.mp4 --out result/mine

Per image: OUT/{stem}.png (class ids: the dataset's train ids), OUT/{stem}_color.png and
OUT/{stem}_overlay.png; a folder keeps its subfolders under OUT (photos/sub/y.jpg -> OUT/sub/y.png).
Per video: OUT/{stem}_overlay.mp4 with the same frame count, size and frame rate. The network, its
classes, its input mean and the palette come from the checkpoint; the predictions are those of
cityscapes_eval.py (the same fast exact path by default). Images are decoded ahead in a thread and
results written in the background while the network runs, into a hidden folder inside OUT whose files
are moved into place when every input succeeded: a failure or Ctrl-C leaves OUT as it was.
"""
import argparse
import glob
import os
import sys
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import torch  # noqa: E402

from dataset.datasets import image_header, normalize, to_tensor  # noqa: E402
from engine.segmenter import ahead, load_segmenter, segment_video  # noqa: E402
from utils.args import str2bool  # noqa: E402
from utils.dist import log  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.files import BackgroundWriter, check_writable_dir, save_png, staged_folder  # noqa: E402
from utils.progress import Progress  # noqa: E402
from utils.vis import overlay  # noqa: E402

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")


@dataclass(frozen=True)
class Item:
    path: str
    stem: str          # output name relative to --out, without extension: "x" or "sub/x"
    from_folder: bool  # a folder's unreadable files are skipped; a named file must be readable


def expand(inputs):
    """(images, videos) as Items, in the order given; folders recursively and sorted, globs sorted."""
    images, videos = [], []
    for text in inputs:
        if os.path.isdir(text):
            files = sorted(p for p in glob.glob(os.path.join(glob.escape(text), "**", "*"), recursive=True)
                           if os.path.isfile(p))
            if not files:
                raise UserError(f"input folder {text} holds no files; give a folder with images in it.")
            images += [Item(p, os.path.splitext(os.path.relpath(p, text))[0], True) for p in files]
        elif os.path.isfile(text):
            stem = os.path.splitext(os.path.basename(text))[0]
            (videos if text.lower().endswith(VIDEO_EXTENSIONS) else images).append(Item(text, stem, False))
        elif glob.has_magic(text):
            files = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
            if not files:
                raise UserError(f"input {text} matches no file; check the pattern (quote it so the shell "
                                f"passes it on).")
            base = text[:min(text.index(c) for c in "*?[" if c in text)]
            base = base if base.endswith(os.sep) else os.path.dirname(base)
            for p in files:
                item = Item(p, os.path.splitext(os.path.relpath(p, base or "."))[0], False)
                (videos if p.lower().endswith(VIDEO_EXTENSIONS) else images).append(item)
        else:
            raise UserError(f"input {text} does not exist; give image files, folders, globs or videos.")
    seen = {}
    for item in images + videos:
        if item.stem in seen and seen[item.stem] != item.path:
            raise UserError(f"inputs {seen[item.stem]} and {item.path} would both be written as {item.stem}.png; "
                            f"segment them into different --out folders.")
        seen[item.stem] = item.path
    for item in images:  # a file named on the command line must be an image; a folder's others are skipped
        if not item.from_folder and isinstance(image_header(item.path), str):
            raise UserError(f"input {item.path} is not a readable image; give an image file (png, jpg, bmp, ...) "
                            f"or a video OpenCV can read.")
    for item in videos:  # before any work, not after the images are done
        capture = cv2.VideoCapture(item.path)
        opened = capture.isOpened()
        capture.release()
        if not opened:
            raise UserError(f"video {item.path} cannot be read by OpenCV (damaged, or not a video); "
                            f"convert it to mp4 or give its frames as images.")
    return images, videos


def decode_images(items, mean):
    """(item, BGR uint8 image or None when unreadable, its network input (1, 3, H, W))."""
    for item in items:
        image = cv2.imread(item.path, cv2.IMREAD_COLOR)  # what load_image does, without raising
        yield item, image, None if image is None else to_tensor(normalize(image, mean))[None]


def write_image(out, stem, image_bgr, pred, palette):  # out: the staging folder
    path = os.path.join(out, stem)
    save_png(f"{path}.png", pred)
    save_png(f"{path}_color.png", pred, palette)
    save_png(f"{path}_overlay.png", overlay(image_bgr[:, :, ::-1], pred, palette))


def segment_images(out, items, predict, mean, palette):
    """Returns the paths of the folder files that were skipped as unreadable."""
    skipped = []
    writer = BackgroundWriter(2)
    bar = Progress(len(items), "images")
    try:
        for n, (item, image, x) in enumerate(ahead(decode_images(items, mean)), 1):
            if image is None:
                log(f"skipped {item.path}: not a readable image")
                skipped.append(item.path)
            else:
                pred = predict(x).argmax(1)[0].to(torch.uint8).cpu().numpy()
                writer.submit(write_image, out, item.stem, image, pred, palette)
            bar.update(n)
    finally:
        writer.close()
    return skipped


def main(args):
    images, videos = expand(args.inputs)
    check_writable_dir(args.out, "--out")
    seg = load_segmenter(args)
    predict, mean, palette = seg.predict, seg.mean, seg.palette
    summary = {"images": 0, "skipped": [], "videos": []}
    with staged_folder(args.out, log) as out:  # every output appears when all succeeded, or none does
        if images:
            summary["skipped"] = segment_images(out, images, predict, mean, palette)
            summary["images"] = len(images) - len(summary["skipped"])
        for item in videos:
            summary["videos"].append(segment_video(seg, item.path, os.path.join(out, f"{item.stem}_overlay.mp4"),
                                                       label=f"{item.stem}_overlay.mp4"))
    for video in summary["videos"]:
        video["path"] = os.path.join(args.out, os.path.relpath(video["path"], out))
    log(f"segmented {summary['images']} image(s) and {len(videos)} video(s) into {args.out}"
        + (f"; {len(summary['skipped'])} files skipped (not readable images, named above)" if summary["skipped"] else ""))
    return summary


def get_args_parser():
    p = argparse.ArgumentParser(description="Segment images, folders, globs and videos with a CGNet checkpoint.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files, folders (recursively), quoted globs such as 'shots/*.jpg', video files")
    p.add_argument("--resume", required=True, help="checkpoint: ours (self-contained) or the original release's; "
                                                   "or an exported .onnx/.xml (runs on the CPU)")
    p.add_argument("--out", required=True, help="folder to write the results to (created if missing)")
    p.add_argument("--inform_data_file", default=None,
                   help="statistics file whose mean to use for a checkpoint that records none (the original "
                        "release's); 19-class checkpoints default to the release's Cityscapes mean")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"],
                   help="autocast inference: faster, not bit-exact")
    p.add_argument("--compile", type=str2bool, default=False, help="torch.compile the model (exact)")
    p.add_argument("--plain", type=str2bool, default=False,
                   help="the original's eager fp32 forward, to measure what the default path gains")
    p.add_argument("--cuda", type=str2bool, default=True, help="use a GPU if one is visible (true/false)")
    p.add_argument("--gpus", default="0", help="GPU id to use; '' runs on the CPU")
    return p


if __name__ == "__main__":
    run_cli(main, get_args_parser())
