"""Images/second of cityscapes_eval.py: the default fast path against --plain (the original's loop).

Makes a few full-resolution (1024x2048) synthetic Cityscapes val images, then runs the real
cityscapes_eval.main() on them once per configuration and prints one table.

    python tools/bench_eval.py [--images 6] [--size 1024,2048] [--configs plain,default,bf16]
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

import torch  # noqa: E402

import cityscapes_eval  # noqa: E402
from dataset.synthetic import make_cityscapes  # noqa: E402
from utils.args import positive_int, size_pair  # noqa: E402

CONFIGS = {
    "plain": ["--plain", "true"],                 # eager fp32, host argmax, synchronous PNGs, no workers
    "default": [],                                # what cityscapes_eval.py does without flags
    "compile": ["--compile", "true"],
    "bf16": ["--amp", "bf16"],
}


def main(a):
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "cs")
        make_cityscapes(data, n_train=1, n_val=a.images, n_test=1, size=a.size)
        # Random weights with realistic BN statistics: speed does not depend on what the weights are.
        from model import build_model
        model = build_model("CGNet", 19)
        ckpt = os.path.join(tmp, "model.pth")
        torch.save({"epoch": 1, "model": model.state_dict()}, ckpt)
        rows = []
        for name in a.configs.split(","):
            args = cityscapes_eval.get_args_parser().parse_args([
                "--data_dir", data, "--val_data_list", f"{data}/cityscapes_val_list.txt",
                "--inform_data_file", os.path.join(tmp, "inform.pkl"), "--resume", ckpt,
                "--save_seg_dir", os.path.join(tmp, name), "--cuda", str(a.cuda),
                "--num_workers", str(a.num_workers), *CONFIGS[name]])
            cityscapes_eval.main(args)  # warm-up: caches, compilation, thread pools
            start = time.perf_counter()
            cityscapes_eval.main(args)
            rows.append((name, a.images / (time.perf_counter() - start)))
    base = dict(rows).get("plain")
    print(f"\ncityscapes_eval.py over {a.images} images of {a.size[0]}x{a.size[1]}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'configuration':<12}{'images/s':>10}{'vs plain':>10}")
    for name, ips in rows:
        print(f"{name:<12}{ips:>10.3f}{(f'{ips / base:.2f}x' if base else ''):>10}")


def get_args_parser():
    p = argparse.ArgumentParser(description="Time cityscapes_eval.py's fast path against its --plain loop.")
    p.add_argument("--images", type=positive_int, default=6)
    p.add_argument("--size", type=size_pair, default=(1024, 2048))
    p.add_argument("--configs", default="plain,default,bf16",
                   help=f"comma-separated, from {', '.join(CONFIGS)}")
    p.add_argument("--num_workers", type=int, default=2)
    p.add_argument("--cuda", default="true")
    return p


if __name__ == "__main__":
    main(get_args_parser().parse_args())
