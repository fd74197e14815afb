"""A web page to try a checkpoint: drop an image or a short video and see its segmentation.

    python tools/webui.py --resume model_300.pth [--host 127.0.0.1] [--port 7860]

Image tab: the overlay and the colour map side by side, the legend of the classes, the area each class
covers, and downloads: the class-id PNG (the file tools/segment.py writes), the colour PNG and the
overlay. The opacity slider re-blends the kept prediction without running the network again. Video tab:
the overlay video of tools/segment.py (same frames, size and frame rate) with a progress bar.

The predictions are tools/segment.py's: the same engine.segmenter and the same decoding (cv2.imread of the
uploaded file). The image segmentation is an API endpoint for gradio_client scripts:

    from gradio_client import Client, handle_file
    overlay, colour, areas, files = Client("http://127.0.0.1:7860/").predict(
        handle_file("street.jpg"), 0.5, api_name="/segment")   # files: class ids, colour, overlay PNGs

It binds 127.0.0.1 (this machine only) unless --host says otherwise.

It can be left running: what a visitor costs is bounded. The decoded image and prediction that re-blending
needs live in one server-side cache bounded in bytes (--cache_mb; a session keeps only its key and file
paths), dropped when the session ends (--session_minutes after its last upload, or its tab closed). Uploads and
results live in one temporary folder: a session's files go with it, every file after --session_minutes, the
oldest first whenever the folder exceeds --max_temp_mb, and all of it when the server stops (Ctrl-C or
SIGTERM). A full disk is one sentence to the visitor, and the page serves again once space is back.
"""
import argparse
import contextlib
import glob
import html
import os
import shutil
import signal
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local demo
# Importing Gradio makes empty folders in TMPDIR/gradio; a server whose import made it removes them when it stops.
GRADIO_DEFAULT = os.path.join(tempfile.gettempdir(), "gradio")
MADE_GRADIO_DEFAULT = not os.path.exists(GRADIO_DEFAULT)

import cv2  # noqa: E402
import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from dataset.datasets import undecodable  # noqa: E402
from engine.cli import segmenter_flags, segmenter_options  # noqa: E402
from engine.segmenter import load_segmenter, probe  # noqa: E402
from engine.video import segment_video, video_metadata  # noqa: E402
from utils.args import positive_float, positive_int  # noqa: E402
from utils.bounded import BoundedFolder, BytesLRU, release_memory, remove  # noqa: E402
from utils.log import log  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.quiet import filter_stderr, quiet_libraries  # noqa: E402
from utils.files import IMAGE_EXTENSIONS, NO_ROOM, NoRoom, check_room, free_bytes  # noqa: E402

# The demo's synthetic test scenes (tools/demo.py, `make demo`), offered as examples when they exist.
DEMO_EXAMPLES = os.path.join(ROOT, "demo", "data", "cityscapes", "leftImg8bit", "test")
MAX_EXAMPLES = 6

CSS = """
.legend {display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 0.9em; padding: 6px 2px;}
.legend span {display: inline-flex; align-items: center; gap: 5px; white-space: nowrap;}
.legend-title {font-weight: 600; padding: 2px 2px 6px;}
.swatch {display: inline-block; width: 14px; height: 14px; border-radius: 3px; border: 1px solid #8888;}
footer {display: none !important;}
"""


NO_SPACE = "the server is out of disk space; try again later."
EXPIRED = "this image's result has expired; upload it again."


def refuse(message):
    """The page shows `message` in an error box; the server logs it in one line, not as a traceback."""
    log(f"refused: {message}")
    return gr.Error(message, print_exception=False)


def hex_colour(rgb):
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def swatch(rgb):
    return f'<span class="swatch" style="background:{hex_colour(rgb)}"></span>'


def legend_html(names, palette):
    return '<div class="legend-title">Classes</div><div class="legend">' + "".join(
        f"<span>{swatch(rgb)}{html.escape(name)}</span>" for name, rgb in zip(names, palette)) + "</div>"


def class_areas(pred, names, palette):
    """Rows [swatch, class, area %] of the classes present in `pred`, the largest first."""
    counts = np.bincount(pred.ravel(), minlength=len(names))[:len(names)]
    order = np.argsort(-counts, kind="stable")
    return [[swatch(palette[c]), names[c], round(100.0 * counts[c] / pred.size, 2)] for c in order if counts[c]]


def upload_name(path):
    return os.path.basename(path) if path else "the upload"


def read_image(path, max_megapixels):
    """The upload as tools/segment.py reads it (cv2.imread, BGR), refused with a sentence when it is not an
    image, or a video, or too large (from its header: before it is decoded). Raises gr.Error, which the page
    shows."""
    name = upload_name(path)
    found = probe(path)
    if found is None:
        raise refuse(f"{name} is not an image; upload a png, jpg, bmp, tif or webp image.")
    if found.kind == "video":
        raise refuse(f"{name} is a video; segment it in the Video tab.")
    width, height = found.size
    if width * height > max_megapixels * 1e6:
        raise refuse(f"{name} is larger than this page's limit of {max_megapixels:g} Mpixel (--max_megapixels); "
                     f"make it smaller, or segment it with tools/segment.py.")
    broken = undecodable(path)  # strictly, as tools/segment.py's check: a file cut short is not half an image
    if broken:
        raise refuse(f"{name} cannot be decoded ({broken}); upload it again whole, or re-save it as png or jpg.")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise refuse(f"{name} cannot be decoded by OpenCV; convert it to png or jpg.")
    return image


def check_video(path, max_seconds, max_megapixels):
    """(frame count, or 0 when the file does not say; frame rate, as the overlay video is written) of the
    upload, refused before any frame is segmented when it is not a video or is too long or too large."""
    name = upload_name(path)
    found = probe(path)
    if found is None:
        raise refuse(f"{name} is not a video OpenCV can read; upload an mp4, webm, avi or mov file.")
    if found.kind == "image":
        raise refuse(f"{name} is an image; segment it in the Image tab.")
    frames = found.frames or 0
    if frames / found.fps > max_seconds:
        raise too_long(name, max_seconds)
    if found.size[0] * found.size[1] > max_megapixels * 1e6:
        raise refuse(f"{name} has frames larger than this page's limit of {max_megapixels:g} Mpixel "
                     f"(--max_megapixels); segment it with tools/segment.py.")
    return frames, found.fps


def too_long(name, max_seconds):
    return refuse(f"{name} lasts longer than this page's limit of {max_seconds:g} s (--max_video_seconds); cut it "
                  f"shorter, or segment it with tools/segment.py.")


def browser_video(mp4, webm):
    """A VP8 WebM copy of `mp4` for the page's player: browsers do not play the MPEG-4 part 2 codec that
    OpenCV writes into mp4, and OpenCV's wheels carry no H.264 encoder. The mp4 stays the download."""
    capture = cv2.VideoCapture(mp4)
    _, fps = video_metadata(capture, mp4)
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(webm, cv2.VideoWriter_fourcc(*"VP80"), fps, size)
    try:
        ok, frame = capture.read()
        while ok:
            writer.write(frame)
            ok, frame = capture.read()
    finally:
        writer.release()
        capture.release()
    check_room(os.path.dirname(webm))  # OpenCV's writer says nothing when the disk fills
    return webm


def out_of_space(temp, needed, keep):
    """After a full disk: make room for the next request (the oldest files go), and this visitor's sentence."""
    temp.make_room(needed, keep)
    log(f"refused: the disk of {temp.root} is full ({free_bytes(temp.root):,} bytes free after removing the oldest "
        f"files)")
    return gr.Error(NO_SPACE, print_exception=False)


def build_app(seg, workdir, examples=(), max_megapixels=50.0, max_video_seconds=60.0, cache_mb=256,
              session_minutes=30.0, max_temp_mb=2048):
    """The page (a gr.Blocks) for the segmenter `seg`. Results are written under `workdir`, which the caller
    removes when the server stops (main() also puts Gradio's uploads and cache there)."""
    ttl = session_minutes * 60
    temp, cache = BoundedFolder(workdir, int(max_temp_mb * 2 ** 20), ttl), BytesLRU(int(cache_mb * 2 ** 20))

    def end_session(kept):
        """A session's result went (a new upload, the session expired or its tab closed): its files with it."""
        if kept:
            cache.drop(kept["key"])
            remove(os.path.dirname(kept["stem"]))
            if kept.get("blend"):
                remove(kept["blend"])
            if os.path.dirname(os.path.dirname(kept["upload"])) == workdir:  # Gradio's upload, in main()'s folder
                remove(os.path.dirname(kept["upload"]))
        temp.bound()  # also what no session owns, past its age (this runs on Gradio's timer of expired states)

    def segment(path, opacity, before):
        try:
            return segment_image(path, opacity, before)
        finally:
            release_memory()

    def segment_image(path, opacity, before):
        if not path:  # the upload was cleared
            return None, None, None, None, None
        end_session(before)
        image = read_image(path, max_megapixels)
        pred = seg(image)
        needed = image.nbytes + 2 * pred.nbytes  # the three PNGs, uncompressed: more than they take
        for last in (False, True):  # a full disk: once more after the oldest files made room
            folder = None
            try:
                folder = temp.folder()
                stem = os.path.join(folder, os.path.splitext(os.path.basename(path))[0])
                files = seg.save(stem, image, pred, alpha=opacity)  # what tools/segment.py writes
                break
            except (NoRoom, OSError) as e:
                if folder:
                    remove(folder)
                if not isinstance(e, NoRoom) and e.errno not in NO_ROOM:
                    raise
                if last or not temp.make_room(needed, keep=path):
                    raise out_of_space(temp, needed, path) from None
        key = uuid.uuid4().hex
        cache.put(key, image, pred)
        kept = {"key": key, "stem": stem, "files": files, "upload": path}  # all a session keeps: small
        return files[2], files[1], class_areas(pred, seg.class_names, seg.palette), files, kept

    def reblend(kept, opacity):
        try:
            return blend_again(kept, opacity)
        finally:
            release_memory()

    def blend_again(kept, opacity):
        if not kept:
            return None, None, kept
        found = cache.get(kept["key"])
        if found is None:  # evicted from the cache: read back from the files while they last
            image = cv2.imread(kept["upload"], cv2.IMREAD_COLOR) if os.path.isfile(kept["upload"]) else None
            pred = cv2.imread(kept["files"][0], cv2.IMREAD_UNCHANGED) if os.path.isfile(kept["files"][0]) else None
            if image is None or pred is None:
                raise refuse(EXPIRED)
            found = (image, pred)
            cache.put(kept["key"], *found)
        # A new file each time: Gradio serves a file already inside its temp folder by its path, so an overlay
        # rewritten in place would keep its URL and the browser would go on showing the old one.
        folder = None
        try:
            folder = temp.folder()
            over, = seg.save(os.path.join(folder, os.path.basename(kept["stem"])), *found, alpha=opacity,
                             outputs=("_overlay.png",))
        except (NoRoom, OSError) as e:
            if folder:
                remove(folder)
            if not isinstance(e, NoRoom) and e.errno not in NO_ROOM:
                raise
            raise out_of_space(temp, found[0].nbytes, kept["upload"]) from None
        if kept.get("blend"):
            remove(kept["blend"])
        kept = {**kept, "blend": folder, "files": [*kept["files"][:2], over]}
        return over, kept["files"], kept

    def segment_clip(path, progress=gr.Progress()):
        try:
            return segment_video_file(path, progress)
        finally:
            release_memory()

    def segment_video_file(path, progress):
        if not path:
            return None, None, ""
        _, fps = check_video(path, max_video_seconds, max_megapixels)
        stem = os.path.splitext(os.path.basename(path))[0]
        mp4 = os.path.join(temp.folder(), f"{stem}_overlay.mp4")
        most = int(max_video_seconds * fps) + 1  # fps: probe's, so a file claiming 1000 fps gets 25's ceiling

        def on_frame(done, total):
            if done > most:  # a file that did not tell its length (frames 0) stops once past the page's limit
                raise too_long(upload_name(path), max_video_seconds)
            progress((done, total) if total else done, desc="segmenting frames", unit="frames")
        try:
            result = segment_video(seg, path, mp4, label=f"{stem}_overlay.mp4", on_frame=on_frame)
            progress(None, desc="preparing the video for the browser")
            webm = browser_video(mp4, os.path.join(os.path.dirname(mp4), f"{stem}_overlay.webm"))
        except NoRoom:
            remove(os.path.dirname(mp4))
            raise out_of_space(temp, 4 * os.path.getsize(path), path) from None
        except UserError as e:
            raise refuse(str(e)) from None
        summary = f"{result['frames']} frames segmented at {result['fps']:.1f} frames/s."
        if result["claimed"] and result["frames"] < result["claimed"] and result["stopped"] is None:
            summary += (f" The file claims {result['claimed']} frames but only {result['frames']} could be read "
                        f"(it is cut short or damaged); the overlay holds those {result['frames']}.")
        return webm, mp4, summary

    every = int(max(1, min(60, ttl / 4)))
    with gr.Blocks(title="CGNet: try a checkpoint", analytics_enabled=False, delete_cache=(every, int(ttl))) as app:
        gr.Markdown(f"## CGNet: try a checkpoint\n**{html.escape(seg.describe())}** · "
                    f"`{html.escape(os.path.basename(seg.path))}`")
        kept = gr.State(time_to_live=ttl, delete_callback=end_session)
        with gr.Tab("Image"):
            with gr.Row():
                with gr.Column(scale=2, min_width=300):
                    upload = gr.File(label="Image (drop or click)", height=110, elem_id="upload")
                    opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Overlay opacity", elem_id="opacity",
                                        info="re-blends the prediction without running the network again")
                    if examples:
                        gr.Examples(examples=[[p] for p in examples], inputs=[upload], label="Examples",
                                    example_labels=[os.path.splitext(os.path.basename(p))[0] for p in examples])
                    files = gr.File(label="Downloads: class ids, colour map, overlay", file_count="multiple",
                                    interactive=False, elem_id="downloads")
                with gr.Column(scale=5):
                    shown = dict(type="filepath", format="png", interactive=False, buttons=["download", "fullscreen"])
                    with gr.Row(equal_height=True):
                        over = gr.Image(label="Overlay", elem_id="overlay", **shown)
                        colour = gr.Image(label="Colour map", elem_id="colour", **shown)
                    with gr.Row():
                        areas = gr.Dataframe(headers=["", "class", "area %"], datatype=["html", "str", "number"],
                                             label="Area each class covers", interactive=False, max_height=360,
                                             column_widths=["14%", "56%", "30%"], scale=2, elem_id="areas")
                        gr.HTML(legend_html(seg.class_names, seg.palette), padding=True, container=True, scale=3,
                                elem_id="legend")
        with gr.Tab("Video"):
            with gr.Row():
                with gr.Column(scale=2, min_width=300):
                    clip = gr.File(label="Video (drop or click)", height=110, elem_id="clip")
                    gr.Markdown(f"Up to {max_video_seconds:g} s. Every frame is segmented as `tools/segment.py` "
                                f"does; the mp4 download keeps the frame count, size and frame rate.")
                    clip_file = gr.File(label="Download: overlay video (mp4)", interactive=False, elem_id="clip_file")
                    clip_info = gr.Markdown(label="Summary")
                with gr.Column(scale=5):
                    clip_out = gr.Video(label="Overlay video", interactive=False, loop=True, elem_id="clip_out")

        # Images and videos queue for the one network (launch: one at a time); re-blending does not use it.
        upload.change(segment, [upload, opacity, kept], [over, colour, areas, files, kept], api_name="segment",
                      concurrency_id="network")
        opacity.change(reblend, [kept, opacity], [over, files, kept], api_name="blend", trigger_mode="always_last")
        clip.change(segment_clip, [clip], [clip_out, clip_file, clip_info], api_name="segment_video",
                    concurrency_id="network")
    app.temp, app.kept = temp, cache  # what the tests look at
    return app


def find_examples(folder):
    """Up to MAX_EXAMPLES images of `folder` (recursively, sorted); none when it does not exist."""
    if not folder or not os.path.isdir(folder):
        return []
    paths = sorted(p for p in glob.glob(os.path.join(glob.escape(folder), "**", "*"), recursive=True)
                   if p.lower().endswith(IMAGE_EXTENSIONS))
    return paths[:MAX_EXAMPLES]


def launch(app, args, examples, block=True):
    """Start serving; returns the URL. Bound to args.host only (127.0.0.1 by default: this machine)."""
    try:
        app.queue(default_concurrency_limit=1)  # one prediction at a time: they share the CPU or GPU
        _, url, _ = app.launch(server_name=args.host, server_port=args.port, quiet=True, prevent_thread_lock=True,
                               allowed_paths=list(examples), max_file_size=f"{args.max_upload_mb}mb",
                               css=CSS, theme=gr.themes.Soft(), footer_links=[])
    except OSError:
        raise UserError(f"--port {args.port} cannot be opened on --host {args.host} (in use by another program, "
                        f"or not an address of this machine); choose another --port.") from None
    if args.host in ("127.0.0.1", "localhost"):
        where = f"{args.host}: this machine only; --host 0.0.0.0 opens it to the network"
    else:
        where = f"{args.host}: other machines that reach this address can use the page, without a login"
    log(f"serving the page at {url} (bound to {where}); Ctrl-C stops it")
    if block:
        app.block_thread()
    return url


def main(args):
    quiet_libraries()
    if args.examples != DEMO_EXAMPLES and not os.path.isdir(args.examples):
        raise UserError(f"--examples {args.examples} is not a folder; give a folder of images, or leave the flag out.")
    seg = load_segmenter(args.resume, **segmenter_options(args))
    log(f"loaded {args.resume}: {seg.describe()}")
    examples = find_examples(args.examples)
    workdir = tempfile.mkdtemp(prefix="cgnet-webui-")
    # Gradio's uploads and its cache in the same folder: results written there are served without a copy, its
    # delete_cache removes both by age, Temp bounds both, and the folder goes at the end.
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = workdir
    # systemd and Docker stop a service with SIGTERM: the same end as Ctrl-C, the temporary folder removed.
    handler = signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        launch(build_app(seg, workdir, examples, args.max_megapixels, args.max_video_seconds, args.cache_mb,
                         args.session_minutes, args.max_temp_mb), args, examples)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if MADE_GRADIO_DEFAULT:
            for folder, _, _ in sorted(os.walk(GRADIO_DEFAULT), reverse=True):  # the deepest first; empty ones only
                with contextlib.suppress(OSError):
                    os.rmdir(folder)
        signal.signal(signal.SIGTERM, handler)
        if before is None:
            del os.environ["GRADIO_TEMP_DIR"]
        else:
            os.environ["GRADIO_TEMP_DIR"] = before


def stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt  # in the main thread: Gradio's block_thread closes the server, main's finally cleans


def get_args_parser():
    p = argparse.ArgumentParser(description="A web page to try a CGNet checkpoint on images and videos.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind: 127.0.0.1 serves this machine only, 0.0.0.0 every network interface")
    p.add_argument("--port", type=positive_int, default=7860, help="port to serve on")
    p.add_argument("--examples", default=DEMO_EXAMPLES,
                   help="folder of images offered as examples (default: the demo's test images, when made)")
    p.add_argument("--max_megapixels", type=positive_float, default=50.0, help="largest image or frame accepted")
    p.add_argument("--max_video_seconds", type=positive_float, default=60.0, help="longest video accepted")
    p.add_argument("--max_upload_mb", type=positive_int, default=500, help="largest upload accepted, in MB")
    p.add_argument("--cache_mb", type=positive_int, default=256,
                   help="memory for the decoded images and predictions kept for re-blending, all visitors together")
    p.add_argument("--session_minutes", type=positive_float, default=30.0,
                   help="a visitor's result (its files, its re-blending) is kept this long after the upload")
    p.add_argument("--max_temp_mb", type=positive_int, default=2048,
                   help="disk for uploads and results, all visitors together; the oldest go first beyond it")
    segmenter_flags(p)
    return p


if __name__ == "__main__":
    filter_stderr()
    run_cli(main, get_args_parser())
