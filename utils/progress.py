"""A minimal progress line: redrawn in place on a terminal, a few plain lines otherwise."""
import sys
import time


class Progress:
    def __init__(self, total, desc, stream=sys.stderr):
        self.total, self.desc, self.stream = total, desc, stream
        self.start = time.perf_counter()
        self.tty = stream.isatty()
        self.last = -1

    def update(self, done, extra=""):
        # Off a terminal, print about ten lines per loop, not one per step.
        step = max(1, self.total // 10)
        if not self.tty and done != self.total and done // step == self.last:
            return
        self.last = done // step
        elapsed = time.perf_counter() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        width = 24
        bar = "#" * (width * done // max(self.total, 1))
        line = f"{self.desc} [{bar:<{width}}] {done}/{self.total} {rate:.2f} it/s {extra}"
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        if self.tty and done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def plural(count, noun):
    """'1 iteration', '3 iterations': counts in messages read as English."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
