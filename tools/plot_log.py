"""Plot a training log.txt: train loss, and train/val mIoU, over epochs.

    python tools/plot_log.py checkpoint/cityscapes/CGNet_M3N21bs16gpu2_ontrainval/log.txt
    python tools/plot_log.py checkpoint/cityscapes/CGNet_M3N21bs16gpu2_ontrainval     # the run folder: its log.txt

The log has the original's format: `Parameters: N`, a header line starting with `Epoch`, then one row per
epoch, `epoch  train_loss  train_mIoU  [val_mIoU]  lr`, tab separated (val_mIoU only on validation epochs).
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

from utils.errors import UserError, run_cli  # noqa: E402

EXPECTED = "epoch, train loss, train mIoU, [val mIoU,] lr"


def get_args_parser():
    parser = argparse.ArgumentParser(description="Plot the loss and mIoU curves of a training log.txt.")
    parser.add_argument("log", type=Path, help="log.txt written by a training run, or its run folder")
    parser.add_argument("--out", type=Path, default=None, help="PNG to write (default: log.png next to the log)")
    return parser


def read_log(path):
    """{epoch: (train_loss, train_mIoU, val_mIoU or None)}; a resumed run's later row for an epoch wins."""
    if not path.is_file():
        raise UserError(f"{path} not found: give a run folder or the log.txt that a training run wrote to it.")
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file: give the log.txt that a training run wrote.") from None
    if not lines:
        raise UserError(f"{path} is empty: plot it once training has written its first epoch.")
    header = next((i for i, line in enumerate(lines) if line.startswith("Epoch")), None)
    if header is None:
        raise UserError(f"{path} has no header line starting with 'Epoch': give a log.txt written by "
                        f"cityscapes_train.py or camvid_train.py.")
    rows = {}
    for number, line in enumerate(lines[header + 1:], header + 2):
        if line.startswith(("Parameters", "Epoch")):  # a resumed run may repeat the preamble
            continue
        fields = line.split()
        try:
            if len(fields) not in (4, 5):
                raise ValueError
            values = [float(f) for f in fields[1:-1]]
            rows[int(fields[0])] = (values[0], values[1], values[2] if len(values) == 3 else None)
        except ValueError:
            raise UserError(f"line {number} of {path} is not a log row ({EXPECTED}, tab separated): "
                            f"{line.strip()[:60]!r}; give an unedited log.txt.") from None
    if not rows:
        raise UserError(f"{path} has no epoch rows yet: plot it once training has written its first epoch.")
    return dict(sorted(rows.items()))


def plot(rows, out):
    try:
        from matplotlib.figure import Figure  # a Figure without pyplot renders with Agg, no display needed
    except ImportError:
        raise UserError("plotting needs matplotlib, which is not installed: pip install matplotlib.") from None
    epochs = list(rows)
    val = [(e, v[2]) for e, v in rows.items() if v[2] is not None]
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_loss, ax_iou = fig.subplots(1, 2)
    ax_loss.plot(epochs, [v[0] for v in rows.values()])
    ax_loss.set(xlabel="epoch", ylabel="train loss", title="loss")
    ax_iou.plot(epochs, [v[1] for v in rows.values()], label="train")
    if val:
        ax_iou.plot(*zip(*val), "o-", label="val")
    ax_iou.set(xlabel="epoch", ylabel="mIoU", title="mean IoU")
    ax_iou.legend()
    for ax in (ax_loss, ax_iou):
        ax.grid(alpha=0.3)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, format="png")


def main(args):
    log = args.log / "log.txt" if args.log.is_dir() else args.log  # a run folder: the log the training wrote
    out = args.out or log.with_name("log.png")
    plot(read_log(log), out)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    run_cli(main, get_args_parser())
