"""The split lists of the datasets shipped with the project (tools/prepare_cityscapes.py, tools/prepare_camvid.py):
the original lists when the data has every file they name, else lists of the files on disk; their checks.

A list holds one sample per line, paths relative to the data folder: `image label`, as in the original release's lists.
"""
import os
import shlex
import sys
from pathlib import Path

from utils.errors import UserError
from utils.files import save_text
from utils.log import notice

REPO = Path(__file__).resolve().parents[1]
SPLITS = ("train", "val", "trainval", "test")
SHOW = 3  # missing files named in a message


def read_list(path):
    with open(path) as f:
        return [tuple(line.split()) for line in f if line.strip()]


def list_text(rows):
    return "".join(" ".join(row) + "\n" for row in rows)


def missing(data_dir, rows):
    """The paths named by rows that are not files under data_dir, in list order."""
    return [p for row in rows for p in row if not (data_dir / p).is_file()]


def choose_lists(data_dir, shipped_dir, prefix, generated):
    """Per split, the shipped original list when data_dir has every file it names, else the rows on disk.

    Returns {split: (rows, "original" | "generated")}.
    """
    chosen = {}
    for split in SPLITS:
        name = f"{prefix}_{split}_list.txt"
        original = read_list(shipped_dir / name)
        lacking = missing(data_dir, original)
        if not lacking:
            chosen[split] = (original, "original")
            continue
        rows = generated[split]
        notice(f"{data_dir} lacks {len(lacking)} of the {sum(map(len, original))} files named by the "
               f"original {name} (e.g. {lacking[0]}); using a list of the {len(rows)} samples found on disk instead.")
        chosen[split] = (rows, "generated")
    return chosen


def write_lists(data_dir, prefix, chosen):
    """Write each list into data_dir unless it already holds exactly that text (a rerun touches nothing)."""
    for split, (rows, _) in chosen.items():
        path = data_dir / f"{prefix}_{split}_list.txt"
        text = list_text(rows)
        if path.is_file() and path.read_text() == text:
            continue
        save_text(path, text)
        print(f"wrote {path}")


def verify(data_dir, prefix, chosen, hint):
    """Raise UserError naming the first missing files; hint(relative_path) says how to get them."""
    for split, (rows, _) in chosen.items():
        lacking = missing(data_dir, rows)
        if lacking:
            for p in lacking[:SHOW]:
                print(f"missing: {data_dir / p}", file=sys.stderr)
            count = "1 file" if len(lacking) == 1 else f"{len(lacking)} files"
            raise UserError(f"{count} named by {data_dir / f'{prefix}_{split}_list.txt'} missing "
                            f"(first: {lacking[0]}): {hint(lacking[0])}.")


def train_command(script, data_dir, prefix, chosen):
    """The command to train next; the training scripts read the shipped lists unless told otherwise."""
    q = lambda path: shlex.quote(os.fspath(path))  # noqa: E731
    command = f"python {script} --data_dir {q(data_dir)}"
    if any(chosen[split][1] == "generated" for split in ("trainval", "val")):
        command += (f" --train_data_list {q(data_dir / f'{prefix}_trainval_list.txt')}"
                    f" --val_data_list {q(data_dir / f'{prefix}_val_list.txt')}")
    return command


def summary(chosen, command):
    for split, (rows, source) in chosen.items():
        print(f"{split:>8}: {len(rows)} samples ({source} list)")
    print(f"ready; train with:\n  {command}")

