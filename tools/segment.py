"""Segment your own images, folders, videos, a camera or a stream with a trained checkpoint: no list file,
no dataset.

    python tools/segment.py --resume model_350.pth street.jpg photos/ "shots/*.png" drive.mp4 --out result/mine
    python tools/segment.py --resume model_350.pth --camera 0 --max_frames 300 --show --out result/live
    python tools/segment.py --resume cgnet_int8.xml drive.mp4 --out result/drive --profile   # where time goes

Per image: OUT/{stem}.png (class ids: the dataset's train ids), OUT/{stem}_color.png and
OUT/{stem}_overlay.png; a folder keeps its subfolders under OUT (photos/sub/y.jpg -> OUT/sub/y.png), and its
videos are segmented as videos. Per video, camera (camera{N}) or stream URL: OUT/{stem}_overlay.mp4 with the
same size and frame rate. The network, its classes, its input mean and the palette come from the checkpoint;
the predictions are those of cityscapes_eval.py (the same fast exact path by default) for images up to
--max_side; larger photos are shrunk for the network and their predictions resized back (--tile: full
resolution in tiles). Images are decoded ahead in a thread and results written in the background while the
network runs, into a hidden folder inside OUT whose files are moved into place when every input succeeded:
a failure or Ctrl-C leaves OUT as it was. A live source (camera, stream) has no end: --max_frames, closing
the --show window or Ctrl-C end it, and the video so far is delivered with the other outputs.
"""
import argparse
import glob
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

import cv2  # noqa: E402
from PIL import Image  # noqa: E402

from dataset.annotations import FORMATS as ANNOTATION_FORMATS, Annotations  # noqa: E402
from dataset.datasets import undecodable  # noqa: E402
from engine.cli import segmenter_flags, segmenter_options  # noqa: E402
from engine.profile import Profile  # noqa: E402
from engine.segmenter import OUTPUTS, load_segmenter, probe  # noqa: E402
from engine.video import ahead, is_url, segment_video  # noqa: E402
from utils.args import non_negative_int, positive_float, positive_int, str2bool  # noqa: E402
from utils.log import log, notice  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.quiet import filter_stderr, quiet_libraries  # noqa: E402
from utils.files import VIDEO_EXTENSIONS, BackgroundWriter, check_writable_dir, staged_folder  # noqa: E402
from utils.progress import bar  # noqa: E402

VIDEO_OUTPUT = "_overlay.mp4"
INTERRUPTED = ("stopped by Ctrl-C before every input was segmented; --out was left as it was (a camera or "
               "stream stopped by Ctrl-C instead keeps its video so far).")


@dataclass(frozen=True)
class Item:
    path: object       # a file, a stream URL or a camera index
    stem: str          # output name relative to --out, without extension: "x" or "sub/x"
    from_folder: bool  # a folder's unreadable files are skipped; a named file must be readable
    kind: str = None   # "image" or "video", as engine.segmenter.probe finds it (check_outputs)

    @property
    def outputs(self):
        return [self.stem + s for s in ((VIDEO_OUTPUT,) if self.is_video else OUTPUTS)]

    @property
    def is_video(self):
        return self.kind == "video"


def walk(folder):
    """The files under `folder`, sorted, each real file once, following links to folders but not round a
    loop (sub/loop -> ..), which is noted."""
    files, seen_dirs, seen_files = [], set(), set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen_dirs:
            notice(f"skipped {root}: it leads back to {real}, a folder already read (a link loop).")
            dirs[:] = []
            continue
        seen_dirs.add(real)
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            if os.path.isfile(path) and os.path.realpath(path) not in seen_files:
                seen_files.add(os.path.realpath(path))
                files.append(path)
    return files


def url_stem(url):
    """'http://host/cams/clip.avi?x=1' -> 'clip'; a URL without a file name -> its host."""
    parsed = urlparse(url)
    stem = os.path.splitext(os.path.basename(parsed.path.rstrip("/")))[0]
    return stem or (parsed.hostname or "stream").replace(".", "_")


def expand(inputs, camera=None, timeout=10.0, skip_bad=False):
    """(items, skipped paths, refused paths); items in the order given, folders recursively and sorted, globs
    sorted, a camera last."""
    items = []
    for text in inputs:
        if is_url(text):
            items.append(Item(text, url_stem(text), False))
        elif os.path.isdir(text):
            files = walk(text)
            if not files:
                raise UserError(f"input folder {text} holds no files; give a folder with images in it.")
            items += [Item(p, os.path.splitext(os.path.relpath(p, text))[0], True) for p in files]
        elif os.path.isfile(text):
            items.append(Item(text, os.path.splitext(os.path.basename(text))[0], False))
        elif glob.has_magic(text):
            files = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
            if not files:
                raise UserError(f"input {text} matches no file; check the pattern (quote it so the shell "
                                f"passes it on).")
            base = text[:min(text.index(c) for c in "*?[" if c in text)]
            base = base if base.endswith(os.sep) else os.path.dirname(base)
            items += [Item(p, os.path.splitext(os.path.relpath(p, base or "."))[0], False) for p in files]
        else:
            raise UserError(f"input {text} does not exist; give image files, folders, globs, videos or a stream URL.")
    if camera is not None:
        items.append(Item(camera, f"camera{camera}", False))
    return check_outputs(unique(items), timeout, skip_bad)


def unique(items):
    """A file named twice (itself and in its folder) is segmented once."""
    seen, kept = set(), []
    for item in items:
        key = os.path.realpath(item.path) if isinstance(item.path, str) and not is_url(item.path) else item.path
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


def check_outputs(items, timeout, skip_bad=False):
    """Before any work: what each input is (probe(): cameras and streams are opened, so that a bad one ends
    the run before it starts), every image decoded once (undecodable()), no two writing one file. Returns (items,
    the paths of a folder's files skipped as neither images nor videos, the paths refused as broken: with
    `skip_bad` they are left out, else the first ends the run here, before any network time is spent)."""
    kept, skipped, refused, written = [], [], [], {}
    for item in items:
        found = probe(item.path, timeout)
        if found is None:
            if not item.from_folder:
                if not skip_bad:
                    raise UserError(unreadable(item.path))
                log(f"skipped {item.path} (--skip_bad): {unreadable(item.path)}")
                refused.append(item.path)
            else:
                log(f"skipped {item.path}: neither an image nor a video OpenCV can read")
                skipped.append(item.path)
            continue
        kept.append(replace(item, kind=found.kind))
    images = [i.path for i in kept if not i.is_video]
    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:  # decoders release the GIL
        broken = {p: why for p, why in zip(images, pool.map(undecodable, images)) if why}
    if broken and not skip_bad:
        shown = [f"{p} ({why})" for p, why in list(broken.items())[:3]]
        more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
        raise UserError(f"input{'s' if len(broken) > 1 else ''} {', '.join(shown)}{more} cannot be decoded, although "
                        f"{'their headers read' if len(broken) > 1 else 'its header reads'}; re-save or remove "
                        f"{'them' if len(broken) > 1 else 'it'}, or pass --skip_bad to segment the other inputs.")
    for path, why in broken.items():
        log(f"skipped {path} (--skip_bad): it cannot be decoded ({why})")
    refused += list(broken)
    kept = [i for i in kept if i.path not in broken]
    for item in kept:
        for name in item.outputs:  # judged on the real names: a.jpg's a_color.png is a_color.jpg's a_color.png
            if name in written:
                raise UserError(f"inputs {written[name].path} and {item.path} would both be written as {name}; "
                                f"rename one, or segment them into different --out folders.")
            written[name] = item
    return kept, skipped, refused


def unreadable(path):
    """Why a named file is refused, in the words of what its name says it is."""
    if path.lower().endswith(VIDEO_EXTENSIONS):
        return (f"video {path} cannot be read by OpenCV (damaged, or not a video); convert it to mp4 or give its "
                f"frames as images.")
    return (f"input {path} is not a readable image; give an image file (png, jpg, bmp, ...) or a video OpenCV can "
            f"read.")


def decode_images(items, seg):
    """(item, BGR uint8 image, its network input (1, 3, h, w), or None for an image segmented in tiles)."""
    for item in items:
        image = cv2.imread(item.path, cv2.IMREAD_COLOR)  # applies the EXIF orientation, as image_header reports
        if image is None:
            raise UserError(f"input {item.path} cannot be decoded, although its header reads; re-save it as png "
                            f"or jpg.")
        if item.path.lower().endswith(".gif"):
            with Image.open(item.path) as gif:
                if getattr(gif, "n_frames", 1) > 1:
                    notice(f"{item.path} has {gif.n_frames} frames; only the first is segmented (convert it "
                           f"to a video to segment them all).")
        yield item, image, None if seg.tiled(image) else seg.input(image)


def segment_images(out, items, seg, notes=None):
    writer = BackgroundWriter(2)  # bounded by bytes: a few 48-megapixel photos, or many small ones
    progress = bar(len(items), "images", "images")
    try:
        with ahead(decode_images(items, seg), depth=2) as decoded:
            for item, image, x in decoded:
                pred = seg(image) if x is None else seg.labels(x, image.shape[:2])
                writer.submit(seg.save, os.path.join(out, item.stem), image, pred)  # out: the staging folder
                if notes:  # --save_annotations
                    writer.submit(notes.add, item.stem, item.path, pred)
                progress.update()
    finally:
        writer.close()
        progress.close()


def main(args):
    quiet_libraries()
    if not args.inputs and args.camera is None:
        raise UserError("no input given; name images, folders, globs, videos or stream URLs, or a --camera.")
    items, skipped, refused = expand(args.inputs, args.camera, args.timeout, args.skip_bad)
    if not items:
        raise UserError(f"no readable image or video in {' '.join(args.inputs)}; give images, videos or a stream.")
    if args.profile and not any(i.is_video for i in items):
        notice("--profile times the frames of videos; these inputs are images only, so it prints nothing.")
    check_writable_dir(args.out, "--out")
    seg = load_segmenter(args.resume, **segmenter_options(args))
    images = [i for i in items if not i.is_video]
    videos = [i for i in items if i.is_video]
    summary = {"images": len(images), "skipped": skipped, "refused": refused, "videos": []}
    with staged_folder(args.out, log) as out:  # every output appears when all succeeded, or none does
        if images:
            start = time.perf_counter()
            notes = Annotations(args.save_annotations, args.out, out, seg.class_names) if args.save_annotations \
                else None
            segment_images(out, images, seg, notes)
            if notes:
                notes.close()
            summary["seconds"] = time.perf_counter() - start
            log(f"{len(images)} image(s) in {summary['seconds']:.1f} s ({len(images) / summary['seconds']:.2f} "
                f"images/s)")
        for item in videos:
            seg.profile = Profile() if args.profile else None
            summary["videos"].append(segment_video(seg, item.path, os.path.join(out, item.stem + VIDEO_OUTPUT),
                                                   label=item.stem + VIDEO_OUTPUT, max_frames=args.max_frames,
                                                   show=args.show, timeout=args.timeout, strict=args.strict))
            if seg.profile is not None:
                log(seg.profile.table())
                summary["videos"][-1]["profile"] = dict(seg.profile.rows()[0])
    for video in summary["videos"]:
        video["path"] = os.path.join(args.out, os.path.relpath(video["path"], out))
    log(f"segmented {len(images)} image(s) and {len(videos)} video(s) into {args.out}"
        + (f"; {len(skipped)} files skipped (named above)" if skipped else ""))
    if refused:
        log(f"warning: {len(refused)} broken input(s) refused and not segmented (--skip_bad): {', '.join(refused)}")
    return summary


def get_args_parser():
    p = argparse.ArgumentParser(description="Segment images, folders, globs, videos, a camera or a stream with a "
                                            "CGNet checkpoint.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="image files, folders (recursively, their videos too), quoted globs such as 'shots/*.jpg', "
                        "video files, stream URLs (rtsp://, http(s)://: anything OpenCV's FFmpeg opens)")
    p.add_argument("--out", required=True, help="folder to write the results to (created if missing)")
    p.add_argument("--camera", type=non_negative_int, default=None,
                   help="also segment this camera (0: the first), live, into OUT/camera{N}_overlay.mp4")
    p.add_argument("--max_frames", type=positive_int, default=None,
                   help="end each video, stream or camera after this many segmented frames (default: its end, or "
                        "Ctrl-C for a live source)")
    p.add_argument("--show", type=str2bool, nargs="?", const=True, default=False,
                   help="show each video's overlay and frames/s in a window (q or Esc ends it); skipped without "
                        "a display")
    p.add_argument("--timeout", type=positive_float, default=10.0,
                   help="seconds a stream URL may take to open or to send a frame")
    p.add_argument("--profile", type=str2bool, nargs="?", const=True, default=False,
                   help="after each video, print where a frame's time went: decode, preprocess, network, colour and "
                        "blend, encode, write (ms per frame)")
    p.add_argument("--save_annotations", choices=ANNOTATION_FORMATS, default=None,
                   help="also write the images' predictions as annotations a labelling tool opens, with the images "
                        "in OUT/images/ and the model's classes in OUT/classes.txt: labelme (OUT/images/{stem}.json, "
                        "OUT/labels.txt) or coco (OUT/annotations/instances_default.json, e.g. for CVAT); correct "
                        "them there, prepare them with tools/prepare_dataset.py OUT and fine-tune with --weights")
    p.add_argument("--skip_bad", type=str2bool, nargs="?", const=True, default=False,
                   help="leave out inputs that cannot be decoded (every image is decoded once before any work) and "
                        "list them at the end, instead of stopping there")
    p.add_argument("--strict", type=str2bool, nargs="?", const=True, default=False,
                   help="a video that ends before the frame count it claims (cut short, damaged) is an error, "
                        "instead of a warning with the frames read kept")
    segmenter_flags(p)
    return p


if __name__ == "__main__":
    filter_stderr()
    run_cli(main, get_args_parser(), interrupted=INTERRUPTED)
