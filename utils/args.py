"""argparse types whose messages say what was expected; shared by the scripts, tools and benchmark."""
import argparse


def str2bool(value):
    v = str(value).strip().lower()
    if v in ("true", "1", "yes", "y", "on"):
        return True
    if v in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false/1/0/yes/no, got {value!r}")


def size_pair(value):
    try:
        h, w = (int(x) for x in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W such as 680,680, got {value!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {value!r}")
    return h, w


def _number(cast, ok, expected, bound):
    """An argparse type: `cast` the text, then check `ok`; the messages say what was expected."""
    def parse(value):
        try:
            x = cast(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
        if not ok(x):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return x
    return parse


positive_int = _number(int, lambda n: n >= 1, "a positive integer", "at least 1")
non_negative_int = _number(int, lambda n: n >= 0, "an integer >= 0", ">= 0")
positive_float = _number(float, lambda x: 0 < x < float("inf"), "a positive number", "a finite number > 0")
# numpy's generators take no negative seed
seed_int = _number(int, lambda n: 0 <= n < 2 ** 32, "an integer 0..2**32-1", "in 0..2**32-1")


def scale_list(value):
    try:
        scales = [float(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected scales like 0.75,1.0,1.25, got {value!r}") from None
    if not scales or not all(0 < s <= 8 for s in scales):
        raise argparse.ArgumentTypeError(f"scales must be numbers in (0, 8], got {value!r}")
    return scales
