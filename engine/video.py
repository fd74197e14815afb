"""Video for the segmenter: files, cameras and stream URLs in, an overlay video (mp4) out.

    result = segment_video(seg, "drive.mp4", "out/drive_overlay.mp4")   # seg: engine.segmenter.Segmenter

A file (or a finite stream) is segmented frame by frame, its decoding ahead in a thread (ahead()); a live
source (a camera, a stream with no frame count) is read by a thread that keeps only its newest frame (Latest),
so frames are dropped, not queued, when the network is slower than the source. Both threads are stopped and
joined before the capture is released. open_capture() and video_metadata() are the one way a capture is
opened and its frame count and rate are read (engine.segmenter.probe uses them too).
"""
import contextlib
import os
import queue
import threading
import time

import cv2
import numpy as np

from engine.profile import timed
from utils.errors import UserError
from utils.files import BackgroundWriter, check_room
from utils.log import log, notice
from utils.progress import bar
from utils.vis import overlay

MAX_FPS = 240          # above this (or <= 0) a video's reported frame rate is taken as unknown
DEFAULT_FPS = 25.0


@contextlib.contextmanager
def ahead(iterator, depth=4):
    """with ahead(it) as items: run `iterator` in a thread, up to `depth` items ahead of the consumer, so that
    decoding overlaps inference (OpenCV decodes without holding the GIL). Its exceptions are raised in the
    consumer. Leaving the block, by its end, an error or Ctrl-C, stops the thread and waits for it: after it
    nothing reads from what the iterator reads (a capture can then be released safely)."""
    done = object()
    q = queue.Queue(depth)
    stop = threading.Event()

    def put(item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def work():
        try:
            for x in iterator:
                if not put((x, None)):
                    return
            put((done, None))
        except BaseException as e:  # handed to the consumer, which re-raises it
            put((done, e))

    def items():
        while True:
            x, error = q.get()
            if error is not None:
                raise error
            if x is done:
                return
            yield x

    thread = threading.Thread(target=work, daemon=True, name="decode-ahead")
    thread.start()
    try:
        yield items()
    finally:
        stop.set()
        thread.join()


def decode_video(capture, seg):
    while True:
        with timed(seg.profile, "decode"):
            ok, frame = capture.read()
        if not ok:
            return
        with timed(seg.profile, "preprocess"):
            x = seg.input(frame)
        yield frame, x


class Latest:
    """A live source read by a thread that keeps only the newest frame: when the network is slower than the
    camera, frames are dropped, not queued (a queue would lag ever further behind the scene)."""

    def __init__(self, capture):
        self.capture, self.frame, self.index, self.ended = capture, None, 0, False
        self.cond = threading.Condition()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.grab, daemon=True, name="live-grabber")
        self.thread.start()

    def grab(self):
        while not self.stop.is_set():
            ok, frame = self.capture.read()
            with self.cond:
                if not ok:
                    self.ended = True
                else:
                    self.frame, self.index = frame, self.index + 1
                self.cond.notify()
            if not ok:
                return

    def next(self, last_index):
        """(frame, index) of the newest frame after `last_index`, or (None, index) when the source ended."""
        with self.cond:
            while self.index == last_index and not self.ended:
                self.cond.wait(0.1)
            if self.index == last_index:
                return None, last_index
            return self.frame, self.index

    def close(self):
        self.stop.set()
        self.thread.join()


def open_capture(source, timeout=10.0):
    """An opened cv2.VideoCapture of a video file, a camera index (int) or a stream URL, or one sentence."""
    if isinstance(source, int):
        capture = cv2.VideoCapture(source)
        problem = (f"camera {source} cannot be opened; check --camera (0 is the first camera) and that no other "
                   f"program is using it.")
    elif is_url(source):
        ms = int(timeout * 1000)
        capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        problem = (f"stream {source} did not answer within {timeout:g} s or is not a video OpenCV can open; check "
                   f"the address (and --timeout for a slow network).")
    else:
        capture = cv2.VideoCapture(source)
        problem = (f"video {source} cannot be read by OpenCV (damaged, or not a video); convert it to mp4 or give "
                   f"its frames as images.")
    if not capture.isOpened():
        raise UserError(problem)
    return capture


def is_url(source):
    return isinstance(source, str) and "://" in source


def video_metadata(capture, source, quiet=False):
    """(frames or None when unknown, frames per second): OpenCV reports 0, negative or huge frame counts and
    rates like 1000 fps for some webm/VFR files and streams; those are taken as unknown (a rate as DEFAULT_FPS,
    with a notice unless `quiet`)."""
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    total = int(count) if 0 < count < 2 ** 31 else None
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not 0 < fps <= MAX_FPS:
        if not quiet:
            notice(f"{source} reports {fps:g} frames/s, which cannot be right; its overlay video is written at "
                   f"{DEFAULT_FPS:g} frames/s.")
        fps = DEFAULT_FPS
    return total, fps


class Window:
    """--show: the overlay and the frames/s in a window, when there is a display; otherwise a notice, once."""

    def __init__(self, title):
        self.title, self.open = title, False
        if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            notice("--show skipped: there is no display (DISPLAY is not set).")
            return
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
            self.open = True
        except cv2.error:
            notice("--show skipped: this OpenCV build cannot open windows.")

    def show(self, image_bgr, fps):
        """False when the user closed the window or pressed q/Esc: the stream ends there."""
        if not self.open:
            return True
        image = np.ascontiguousarray(image_bgr)
        cv2.putText(image, f"{fps:.1f} frames/s", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27) and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self):
        if self.open:
            cv2.destroyWindow(self.title)


def segment_video(seg, source, path, label=None, max_frames=None, show=False, timeout=10.0, live=None,
                  stop=None, on_frame=None, strict=False):
    """The overlay video of `source` (a video file, a camera index or a stream URL) written to `path` (mp4):
    the same frames, size and frame rate. Returns {"path", "frames", "seconds", "fps", "live", "stopped"};
    `label` names the output in the summary line.

    A live source (a camera, or a stream with no frame count; live=True forces it) is read by a thread that
    keeps only its newest frame, and ends with the stream, after `max_frames`, when the --show window is
    closed, or on Ctrl-C: the video written so far is finished and kept (stopped: "Ctrl-C"). Frames dropped
    while the network was busy are filled with the last overlay, so the video keeps the source's timing.
    A file or a finite stream is segmented frame by frame, whole (or its first `max_frames`).
    For a caller such as a web page: `stop` (a threading.Event) ends the video early, keeping what was written
    (stopped: "stop"), and on_frame(frames, total or None) is called after each segmented frame.

    A file that ends before the frame count it claims (cut short, damaged) keeps the frames read, with a warning
    that says how many of how many ("claimed" in the result; `strict`: a UserError instead)."""
    capture = open_capture(source, timeout)
    name = label or os.path.basename(path)
    window = video = None
    try:
        total, fps = video_metadata(capture, source)
        claimed = total
        live = isinstance(source, int) or (is_url(source) and total is None) if live is None else live
        size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        video = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not video.isOpened():
            raise UserError(f"OpenCV cannot write an mp4 video ({name}); check that the output folder is writable.")
        window = Window(name) if show else None
        if max_frames:
            total = min(total, max_frames) if total else max_frames
        ends = Ends(max_frames, window, stop, on_frame, total)
        run = (segment_live if live else segment_frames)(seg, capture, video, ends, source)
    finally:
        if window is not None:
            window.close()
        if video is not None:
            with timed(seg.profile, "write"):  # the rest of the buffered file and the mp4's index
                video.release()
        capture.release()  # after the reading thread has stopped: segment_* join it before they return
    if run["frames"] == 0:
        kind = "camera" if isinstance(source, int) else "stream" if is_url(source) else "video"
        raise UserError(f"{kind} {source} gave no frame OpenCV can decode"
                        + ("; convert it to mp4." if kind == "video" else "."))
    check_room(os.path.dirname(os.path.abspath(path)))  # OpenCV's writer says nothing when the disk fills
    result = dict(run, path=path, live=live, fps=run["frames"] / run["seconds"], claimed=claimed)
    if not live and run["stopped"] is None and claimed and run["frames"] < claimed:
        if strict:
            raise UserError(f"video {source} is cut short or damaged: {run['frames']} of the {claimed} frames it "
                            f"claims could be read; repair or re-export it, or leave --strict out to keep those "
                            f"{run['frames']}.")
        log(f"warning: {source}: {run['frames']} of the {claimed} frames it claims could be read (cut short or "
            f"damaged); {name} holds those {run['frames']} (--strict makes this an error).")
    stopped = {"Ctrl-C": " (stopped by Ctrl-C; the video so far is kept)",
               "window": " (stopped: window closed)", "stop": " (stopped early)"}.get(run["stopped"], "")
    log(f"{name}: {result['frames']} frames of {size[0]}x{size[1]} at {result['fps']:.2f} frames/s{stopped}")
    return result


class Ends:
    """What ends a video before its last frame, checked after each one: --max_frames, the --show window
    closed, the caller's stop event. Also reports each frame to the caller's on_frame."""

    def __init__(self, max_frames, window, stop, on_frame, total):
        self.max_frames, self.window, self.stop, self.on_frame, self.total = max_frames, window, stop, on_frame, total
        self.start = time.perf_counter()

    def after(self, frames, image_bgr):
        """None to go on, else why the video ends here; image_bgr: the overlay (computed only for a window)."""
        if self.on_frame is not None:
            self.on_frame(frames, self.total)
        if self.window is not None and not self.window.show(image_bgr(), frames / (time.perf_counter() - self.start)):
            return "window"
        if self.stop is not None and self.stop.is_set():
            return "stop"
        if self.max_frames and frames >= self.max_frames:
            return "max_frames"
        return None


def blend(seg, frame, pred):
    """The BGR overlay of one frame: the palette's colours reversed, so no copy of the frame is flipped."""
    with timed(seg.profile, "colour and blend"):
        return overlay(frame, pred, [rgb[::-1] for rgb in seg.palette], background=seg.background)


def write_frame(video, seg, image):
    with timed(seg.profile, "encode"):  # cv2.VideoWriter encodes and hands the bytes to FFmpeg's buffered file
        video.write(image)
    if seg.profile is not None:
        seg.profile.frame()


def write_overlay(video, seg, frame, pred):
    """Write (and return) the overlay of one frame."""
    image = blend(seg, frame, pred)
    write_frame(video, seg, image)
    return image


def segment_frames(seg, capture, video, ends, source):
    """Every frame of a file, in order: decoding runs ahead in a thread, the network keeps frames in flight where
    its runtime can (Segmenter.stream), this thread blends, another encodes. On two cores: two network threads
    (one per request in flight), decoding, blending and encoding in three more that mostly wait on each other."""
    writer = BackgroundWriter(1)  # one thread: frames stay in order
    progress = bar(ends.total, os.path.basename(str(source)), "frames")
    start, frames, stopped = time.perf_counter(), 0, None
    try:
        with ahead(decode_video(capture, seg)) as decoded, contextlib.closing(seg.stream(decoded)) as results:
            for frame, pred in results:
                image = blend(seg, frame, pred)  # here, while the network works on the next frames
                writer.submit(write_frame, video, seg, image)
                frames += 1
                progress.update()
                stopped = ends.after(frames, lambda: image)
                if stopped:
                    break
    finally:
        writer.close()
        progress.close()
    return {"frames": frames, "seconds": time.perf_counter() - start, "stopped": stopped}


def segment_live(seg, capture, video, ends, source):
    """The newest frame each time the network is free; Ctrl-C ends the stream like its end."""
    progress = bar(ends.total, str(source), "frames")
    start, frames, written, last, stopped = time.perf_counter(), 0, 0, 0, None
    grabber = Latest(capture)
    image = None
    try:
        while not stopped:
            frame, index = grabber.next(last)
            if frame is None:
                break
            with timed(seg.profile, "network"):
                pred = seg(frame)
            if image is not None:  # frames dropped while the network was busy: the last overlay keeps the timing
                for _ in range(index - last - 1):
                    video.write(image)
                written += index - last - 1
            image = write_overlay(video, seg, frame, pred)
            written += 1
            last, frames = index, frames + 1
            progress.update()
            stopped = ends.after(frames, lambda: image)
    except KeyboardInterrupt:  # the way to end a camera: what was written so far is kept
        stopped = "Ctrl-C"
    finally:
        grabber.close()
        progress.close()
    return {"frames": frames, "written": written, "seconds": time.perf_counter() - start, "stopped": stopped}
