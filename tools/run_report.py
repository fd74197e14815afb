"""Turn what training runs printed into a report (utils.report), so that an epoch time on a page comes from a run:
the seconds of every epoch (the line each epoch ends with: "epoch 3/120: loss ..., 54.9 s; run ETA ..."), the
hours the original 800-epoch recipe would take at that pace, and the test mIoU when a metrics file is given.

    python camvid_train.py ... 2>&1 | tee train.txt
    python camvid_test.py ... --metrics test.json
    python tools/run_report.py default=train.txt --metrics default=test.json --report docs/speed/MACHINE
    python tools/speed_page.py

Several runs side by side (LABEL=TRANSCRIPT each) get a column of speed against --baseline LABEL.
"""
import argparse
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

from utils.args import positive_int  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.report import add_section  # noqa: E402

EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+): loss .*, ([0-9.]+) s(?:;|$)", re.M)


def labelled(text, flag):
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise UserError(f"{flag} {text!r} is not LABEL=FILE (e.g. default=train.txt).")
    return label, Path(path)


def epoch_seconds(path):
    """{epoch: seconds} from a training transcript; a resumed run's later line for an epoch wins."""
    try:
        text = path.read_text(errors="replace").replace("\r", "\n")  # tqdm redraws its bar with carriage returns
    except OSError as e:
        raise UserError(f"cannot read the training transcript {path} ({e.strerror}); give the file its output "
                        f"was saved to (python camvid_train.py ... 2>&1 | tee train.txt).") from None
    seconds = {int(m.group(1)): float(m.group(3)) for m in EPOCH_LINE.finditer(text)}
    if not seconds:
        raise UserError(f"{path} has no line 'epoch N/E: loss ..., S s': give the saved output of a training run.")
    return seconds


def test_miou(path):
    try:
        return 100 * float(json.loads(path.read_text())["mIoU"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{path} is not a metrics file with an mIoU; write one with camvid_test.py ... "
                        f"--metrics FILE.") from None


def get_args_parser():
    p = argparse.ArgumentParser(description="Report the epoch times (and test mIoU) of training runs.")
    p.add_argument("runs", nargs="+", help="LABEL=TRANSCRIPT: the saved output of a training run")
    p.add_argument("--metrics", action="append", default=[], help="LABEL=FILE: camvid_test.py --metrics of a run")
    p.add_argument("--baseline", default=None, help="the LABEL the others' speed is compared with")
    p.add_argument("--epochs", type=positive_int, default=800, help="the full recipe's epochs, for its hours")
    p.add_argument("--section", default="training runs: seconds per epoch, data loading and validation included")
    p.add_argument("--report", required=True, help="the report to add the section to (see utils/report.py)")
    return p


def rows_of(args):
    runs = dict(labelled(r, "the run") for r in args.runs)
    metrics = dict(labelled(m, "--metrics") for m in args.metrics)
    for flag, labels in (("--metrics", metrics), ("--baseline", [args.baseline] if args.baseline else [])):
        for label in labels:
            if label not in runs:
                raise UserError(f"{flag} names the run {label!r}, which is not one of {', '.join(runs)}.")
    seconds = {label: epoch_seconds(path) for label, path in runs.items()}
    # The first epoch of a process also compiles; the pace of a long run is that of the others.
    pace = {label: statistics.median(list(s.values())[1:] or list(s.values())) for label, s in seconds.items()}
    rows = []
    for label, s in seconds.items():
        row = {"configuration": label, "epochs": len(s), "first epoch s": s[min(s)], "median epoch s": pace[label],
               "minutes, all epochs": sum(s.values()) / 60, f"hours for {args.epochs} epochs": pace[label] *
               args.epochs / 3600}
        if args.baseline:
            row[f"x {args.baseline}"] = pace[args.baseline] / pace[label]
        if label in metrics:
            row["test mIoU %"] = test_miou(metrics[label])
        rows.append(row)
    return rows


def main(args):
    rows = rows_of(args)
    add_section(args.report, args.section, rows)
    for row in rows:
        print(", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    run_cli(main, get_args_parser())
