"""The libraries' noise kept out of a tool's output: FFmpeg's per-packet lines ('[mjpeg @ 0x..] overread 8'),
OpenCV's 'tag VP80 is not supported' when it writes WebM (it writes it all the same), libpng's warnings about a
PNG's metadata, Pillow's DecompressionBombWarning. What they tell a user is said once, in our words; the faults
they hint at (a truncated video, a PNG that does not decode) are found and said by the code that meets them.

    quiet_libraries()           # in main(): the libraries' own switches
    filter_stderr()             # a tool run as a command: also the lines C code prints straight to stderr
"""
import atexit
import os
import re
import sys
import threading
import warnings

from utils.log import notice

# Lines printed by C code that no switch turns off, each with what we say once instead (None: nothing to say).
NOISE = (
    (re.compile(rb"^libpng warning: (.*)"),
     "some PNG files carry damaged metadata (libpng: {}); their pixels are read all the same."),
    (re.compile(rb"^OpenCV: FFMPEG: tag 0x[0-9a-f]+/'\w+' is not supported"), None),
    (re.compile(rb"^\[[\w,]+ @ 0x[0-9a-f]+\] "), None),  # FFmpeg's, should its log level be set back
)
NOISE_STARTS = (b"libpng warning: ", b"OpenCV: FFMPEG: ", b"[")  # how NOISE lines begin
_filtered = threading.Lock()  # held once stderr is filtered: once per process


def quiet_libraries():
    """FFmpeg (inside OpenCV) prints only what stops it, OpenCV its errors; Pillow's warning about a very large
    image is not printed (the segmenter caps what the network sees, and the web page has its own limit)."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg is first used
    import cv2
    from PIL import Image
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def filter_stderr(say=notice):
    """Route file descriptor 2 through a thread that drops NOISE (saying each kind once through `say`) and passes
    every other line on, in order. At exit the pipe is drained before the process ends, so no error line is lost.
    For a tool run as a command only: it replaces the process's stderr file descriptor."""
    if not _filtered.acquire(blocking=False):
        return
    sys.stderr.flush()
    real = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    said = set()

    def handle(line):
        kind = next(((p, text) for p, text in NOISE if p.match(line)), None)
        if kind is None:
            os.write(real, line)
        elif kind[1] is not None and kind[0] not in said:
            said.add(kind[0])
            say(kind[1].format(kind[0].match(line)[1].decode(errors="replace").strip()))

    def forward():
        # Line by line, a line ending at \r too: a progress bar (tqdm) redraws its line after a \r, and is passed
        # on at once unless it could be the start of a noise line.
        rest = b""
        while True:
            chunk = os.read(read, 1 << 16)
            if not chunk:
                break
            *lines, rest = re.split(rb"(?<=[\r\n])", rest + chunk)
            for line in lines:
                handle(line)
            if rest and not any(p.startswith(rest) or rest.startswith(p) for p in NOISE_STARTS):
                os.write(real, rest)
                rest = b""
        if rest:
            handle(rest)
        os.close(read)
    thread = threading.Thread(target=forward, daemon=True, name="stderr-filter")
    thread.start()

    def drain():
        sys.stderr.flush()
        os.dup2(real, 2)  # the pipe's last write end closes: the thread reads to its end, then stops
        thread.join(timeout=2.0)
    atexit.register(drain)
