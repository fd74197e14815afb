"""Progress bars: tqdm's (ETA, unknown totals, the terminal's width), with one rule for logs."""
import sys

from tqdm import tqdm


class _Lines:
    """Off a terminal (a log file, a pipe), each of tqdm's redraws ('\\r' + line) becomes a line of its own."""

    def __init__(self, stream):
        self.stream, self.last = stream, None

    def write(self, text):
        text = text.replace("\r", "").strip("\n")
        state = text.split("[")[0]  # the description, percentage, bar and count, without timings
        if text.strip() and state != self.last:  # closing redraws the last state: once is enough
            self.stream.write(text + "\n")
            self.last = state

    def flush(self):
        self.stream.flush()


def bar(total, desc, unit="it", stream=None):
    """A tqdm bar on stderr: redrawn in place on a terminal; elsewhere about ten lines per loop (every tenth
    of a known total, every 30 s without one), not one per step."""
    stream = stream or sys.stderr
    if stream.isatty():
        return tqdm(total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True)
    every = max(1, total // 10) if total else 1
    return tqdm(total=total, desc=desc, unit=unit, file=_Lines(stream), ncols=100, ascii=True,
                mininterval=0 if total else 30, miniters=every, maxinterval=float("inf"))


def iterate(items, desc, unit="it"):
    """Yield items while a bar counts them."""
    items = list(items)
    with bar(len(items), desc, unit) as progress:
        for item in items:
            yield item
            progress.update()


def plural(count, noun):
    """'1 iteration', '3 iterations': counts in messages read as English."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
