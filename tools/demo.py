"""The bundled demo (`make demo`): synthetic Cityscapes-layout data -> train -> eval -> test -> submission.

Every step runs the real scripts as a user would, and each command is printed before it runs, so the
demo doubles as a worked example. On 2 CPU cores it takes a few minutes.

    python tools/demo.py [--out demo] [--epochs 40]
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

from dataset.synthetic import make_cityscapes  # noqa: E402


def run(args):
    print("\n$ " + " ".join(shlex.quote(a) for a in args), flush=True)
    result = subprocess.run([sys.executable] + args, cwd=ROOT)
    if result.returncode:
        sys.exit(f"demo: the step above failed (exit {result.returncode}); its message is printed above.")


def get_args_parser():
    p = argparse.ArgumentParser(description="Train, evaluate and test CGNet on synthetic street scenes.")
    p.add_argument("--out", default="demo", help="folder for the demo's data, checkpoints and results")
    p.add_argument("--epochs", type=int, default=40, help="training epochs")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and of training")
    return p


def main(a):
    start = time.perf_counter()
    out = os.path.relpath(os.path.join(ROOT, a.out), ROOT)
    data = os.path.join(out, "data", "cityscapes")
    print(f"making synthetic Cityscapes-layout data in {data}", flush=True)
    make_cityscapes(os.path.join(ROOT, data), n_train=24, n_val=6, n_test=6, size=(256, 512), seed=a.seed)

    common = ["--data_dir", data, "--inform_data_file", os.path.join(out, "cityscapes_inform.pkl"),
              "--num_workers", "2"]
    run(["cityscapes_train.py", *common, "--train_type", "ontrain",
         "--train_data_list", f"{data}/cityscapes_train_list.txt", "--val_data_list", f"{data}/cityscapes_val_list.txt",
         "--input_size", "256,256", "--batch_size", "8", "--max_epochs", str(a.epochs),
         "--val_interval", "10", "--savedir", os.path.join(out, "checkpoint") + "/", "--seed", str(a.seed),
         "--overwrite"])  # the demo's own run: running the demo again trains it again
    run_dir = os.path.join(out, "checkpoint", "cityscapes", "CGNet_M3N21bs8cpu_ontrain")
    ckpt = os.path.join(run_dir, f"model_{a.epochs}.pth")
    run(["tools/plot_log.py", os.path.join(run_dir, "log.txt")])

    val_dir = os.path.join(out, "result", "cityscapes", "val")
    run(["cityscapes_eval.py", *common, "--val_data_list", f"{data}/cityscapes_val_list.txt",
         "--resume", ckpt, "--save_seg_dir", val_dir, "--panel", "true"])
    test_dir = os.path.join(out, "result", "cityscapes", "test")
    submit = os.path.join(out, "result", "cityscapes_submit")
    run(["cityscapes_test.py", *common, "--test_data_list", f"{data}/cityscapes_test_list.txt",
         "--resume", ckpt, "--save_seg_dir", test_dir, "--submit_dir", submit,
         "--zip", os.path.join(out, "result", "cityscapes_submit.zip"), "--overlay", "true"])

    metrics = json.load(open(os.path.join(ROOT, val_dir, "metrics.json")))
    minutes = (time.perf_counter() - start) / 60
    print(f"""
demo finished in {minutes:.1f} min: validation mIoU {metrics['mIoU'] * 100:.1f} % on {metrics['images']} synthetic images
  training log and curves  {run_dir}/log.txt, {run_dir}/log.png
  checkpoints              {run_dir}/ (model_N.pth as the original, checkpoint.pth to resume)
  val predictions, panels  {val_dir}/ (*.png trainIds, *_color.png, *_panel.png, metrics.json, confusion.png)
  test colour PNGs         {test_dir}/ (*_color.png, *_overlay.png)
  submission (labelIds)    {submit}/ and {out}/result/cityscapes_submit.zip""")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
