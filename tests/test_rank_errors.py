"""Errors in a torchrun run (2 gloo processes): the one sentence of the rank that met it, and the others
stopping at once with one line that points to it, never a broken collective's traceback."""
import os
import re
import subprocess
import sys
import time

import pytest

from dataset.synthetic import make_cityscapes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def cs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cityscapes"))
    make_cityscapes(root, n_train=4, n_val=3, n_test=1, size=(48, 96))
    return root


def torchrun(root, out, *extra):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "cityscapes_train.py", "--data_dir", root, "--train_data_list", f"{root}/cityscapes_train_list.txt",
           "--val_data_list", f"{root}/cityscapes_val_list.txt", "--dataset_list", "cityscapes_train_list.txt",
           "--inform_data_file", f"{out}/inform.pkl", "--savedir", f"{out}/ckpt/", "--input_size", "32,32",
           "--M", "1", "--N", "2", "--num_workers", "0", "--max_epochs", "1", "--cuda", "false", *extra]
    start = time.monotonic()
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return run, run.stdout + run.stderr, time.monotonic() - start


@pytest.mark.slow
def test_an_image_only_rank_1_reads_is_reported_by_rank_1_and_rank_0_points_to_it(cs, tmp_path):
    with open(f"{cs}/cityscapes_val_list.txt") as f:
        second = os.path.join(cs, f.read().split("\n")[1].split()[0])  # validation gives rank 1 images 1, 3, ...
    with open(second, "rb") as f:
        data = f.read()
    try:
        with open(second, "wb") as f:
            f.write(data[:len(data) // 2])  # its header still reads, so the list check passes
        run, out, seconds = torchrun(cs, tmp_path, "--batch_size", "4")
    finally:
        with open(second, "wb") as f:
            f.write(data)
    assert run.returncode != 0
    assert f"[rank 1] error: image {second} cannot be read; re-download or remove it from the list." in out, out
    pointers = [line for line in out.splitlines() if line.startswith("[rank 0] ")]
    assert pointers == ["[rank 0] stopped: rank 1 stopped on the error it printed (the line "
                        "'[rank 1] error: ...')."], out
    assert "engine/" not in out and "Connection closed" not in out, out
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)", out.split("Root Cause")[1]), out  # torchrun blames rank 1
    assert seconds < 300, f"{seconds:.0f} s: the ranks did not stop promptly"  # a hang waits 60 minutes


@pytest.mark.slow
def test_an_error_of_every_rank_is_said_once_without_a_rank(cs, tmp_path):
    run, out, _ = torchrun(cs, tmp_path, "--batch_size", "3")  # 3 does not split over 2 processes
    assert run.returncode != 0
    errors = [line for line in out.splitlines() if "error: " in line and "--batch_size 3" in line]
    assert errors == ["error: --batch_size 3 is the total over 2 processes and must divide evenly among them."], out
