"""Where a frame's time goes (tools/segment.py --profile): seconds spent in each stage, from every thread.

    profile = Profile()
    with timed(profile, "decode"):      # timed(None, ...) does nothing: the code path is the same without --profile
        ok, frame = capture.read()
    profile.frame()                      # one frame done
    print(profile.table())

The stages run in different threads (decoding ahead, the network, writing behind), so they overlap: the wall
time per frame is at least the busiest thread's share and at most the sum of the stages.
"""
import contextlib
import threading
import time

STAGES = ("decode", "preprocess", "network", "colour and blend", "encode", "write")
WHERE = {"decode": "decoding thread", "preprocess": "decoding thread", "network": "OpenVINO/torch threads",
         "colour and blend": "main thread", "encode": "writing thread", "write": "writing thread"}


class Profile:
    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.frames = 0
        self.start = time.perf_counter()
        self.end = None
        self.lock = threading.Lock()

    def add(self, stage, seconds):
        with self.lock:
            self.seconds[stage] += seconds
            self.end = time.perf_counter()

    def frame(self):
        with self.lock:
            self.frames += 1
            self.end = time.perf_counter()

    def rows(self):
        """[(stage, ms per frame)], and the wall time per frame in ms."""
        n = max(self.frames, 1)
        wall = ((self.end or time.perf_counter()) - self.start) / n * 1000
        return [(s, self.seconds[s] / n * 1000) for s in STAGES], wall

    def table(self):
        rows, wall = self.rows()
        lines = [f"where a frame's time goes ({self.frames} frames; stages in different threads overlap):",
                 f"{'stage':<18}{'ms/frame':>10}  where"]
        lines += [f"{stage:<18}{ms:>10.2f}  {WHERE[stage]}" for stage, ms in rows]
        lines += [f"{'sum of stages':<18}{sum(ms for _, ms in rows):>10.2f}",
                  f"{'wall per frame':<18}{wall:>10.2f}  ({1000 / wall if wall else 0:.2f} frames/s)"]
        return "\n".join(lines)


@contextlib.contextmanager
def _timed(profile, stage):
    start = time.perf_counter()
    try:
        yield
    finally:
        profile.add(stage, time.perf_counter() - start)


def timed(profile, stage):
    """A context that adds its time to `stage` of `profile`, or nothing when profile is None."""
    return contextlib.nullcontext() if profile is None else _timed(profile, stage)
