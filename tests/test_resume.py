"""Surviving faults: a run killed with SIGKILL (mid-epoch, or while writing its checkpoint) and resumed with
--resume auto ends bitwise where an uninterrupted run ends; a NaN loss stops the run and keeps the last checkpoint."""
import glob
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import cityscapes_train
from model import build_model
from conftest import ROOT, train_argv
from engine.checkpoint import load_weights
from utils.errors import UserError

pytestmark = pytest.mark.slow  # every test trains through the script
EPOCHS, PER_EPOCH = 3, 3  # 6 images, batch 2

# Runs the training script; HOOK makes it stop (and touch MARKER) at a chosen moment, so that the test
# can SIGKILL it there: "iteration:N" before global iteration N, "save:E" half-way through writing
# checkpoint.pth after epoch E (the temporary file holds half of the bytes).
WRAPPER = """
import os, sys, time
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(1)  # every run does its float sums in the same order
import cityscapes_train
import engine.train as engine
from utils.errors import run_cli

hook, marker = os.environ.get("HOOK", ""), os.environ.get("MARKER", "")

def stop_here():
    open(marker, "w").close()
    while True:
        time.sleep(1)

if hook.startswith("iteration:"):
    target, poly_lr = int(hook.split(":")[1]), engine.poly_lr
    def hooked_poly_lr(base_lr, it, max_it):
        if it == target:
            stop_here()
        return poly_lr(base_lr, it, max_it)
    engine.poly_lr = hooked_poly_lr
elif hook.startswith("save:"):
    target, save_checkpoint = int(hook.split(":")[1]), engine.save_checkpoint
    def hooked_save(obj, path):
        if path.endswith("checkpoint.pth") and obj["epoch"] == target:
            def write(tmp):
                torch.save(obj, tmp)
                with open(tmp, "r+b") as f:
                    f.truncate(os.path.getsize(tmp) // 2)
                stop_here()
            engine.atomic_write(path, write)
        save_checkpoint(obj, path)
    engine.save_checkpoint = hooked_save
run_cli(cityscapes_train.main, cityscapes_train.get_args_parser())
"""


@pytest.fixture(scope="module")
def wrapper(tmp_path_factory):
    path = tmp_path_factory.mktemp("wrapper") / "train.py"
    path.write_text(WRAPPER.format(root=ROOT))
    return str(path)


def argv(root, out, *extra):
    return train_argv(root, out, "--inform_data_file", f"{root}/inform.pkl", "--seed", "11",
                      "--max_epochs", str(EPOCHS), "--resume", "auto", *extra)


def run_dir(out):
    return os.path.join(out, "ckpt", "cityscapes", "CGNet_M1N2bs2cpu_ontrain")


def start(wrapper, root, out, hook="", extra=()):
    env = dict(os.environ, HOOK=hook, MARKER=os.path.join(out, "stopped"))
    return subprocess.Popen([sys.executable, wrapper, *argv(root, out, *extra)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc):
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out


def kill_when_stopped(proc, out):
    marker = os.path.join(out, "stopped")
    deadline = time.monotonic() + 300
    while not os.path.exists(marker):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the hook was never reached"
        time.sleep(0.1)
    os.remove(marker)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def uninterrupted(cs, wrapper, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("uninterrupted"))
    log = finish(start(wrapper, cs, out))
    assert "found no" in log  # --resume auto in a new run folder starts from scratch
    return run_dir(out)


def assert_same_run(resumed, reference):
    assert sorted(os.listdir(resumed)) == sorted(os.listdir(reference))  # no temporary file left
    a = torch.load(os.path.join(resumed, "checkpoint.pth"), weights_only=True)
    b = torch.load(os.path.join(reference, "checkpoint.pth"), weights_only=True)
    assert a["epoch"] == EPOCHS and a["iteration"] == EPOCHS * PER_EPOCH
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])  # bitwise
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sb)
    # One row per epoch, none lost or repeated, the same losses and learning rates as without the kill.
    assert open(os.path.join(resumed, "log.txt")).read() == open(os.path.join(reference, "log.txt")).read()
    load_weights(build_model("CGNet", 19, M=1, N=2), os.path.join(resumed, f"model_{EPOCHS}.pth"))


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_auto_ends_like_an_uninterrupted_run(cs, wrapper, uninterrupted, tmp_path):
    out = str(tmp_path)
    proc = start(wrapper, cs, out, hook=f"iteration:{PER_EPOCH + 1}")  # epoch 2, second iteration
    kill_when_stopped(proc, out)
    ckpt = torch.load(os.path.join(run_dir(out), "checkpoint.pth"), weights_only=True)
    assert ckpt["epoch"] == 1
    log = finish(start(wrapper, cs, out))
    assert "at epoch 1" in log and "epoch 2/3:" in log and "epoch 1/3:" not in log
    assert_same_run(run_dir(out), uninterrupted)


FAST = ("--compile", "true")  # the CPU default (the tests' TINY flags turn compiling off)


@pytest.fixture(scope="module")
def uninterrupted_fast(cs, wrapper, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("uninterrupted_fast"))
    log = finish(start(wrapper, cs, out, extra=FAST))
    assert "torch.compile on" in log
    return run_dir(out)


@pytest.mark.slow
def test_sigkill_mid_epoch_in_the_fast_mode_then_resume_auto_ends_like_an_uninterrupted_run(
        cs, wrapper, uninterrupted_fast, tmp_path):
    out = str(tmp_path)
    kill_when_stopped(start(wrapper, cs, out, hook=f"iteration:{PER_EPOCH + 1}", extra=FAST), out)
    log = finish(start(wrapper, cs, out, extra=FAST))
    assert "at epoch 1" in log and "epoch 2/3:" in log and "compiled again" not in log
    assert_same_run(run_dir(out), uninterrupted_fast)


@pytest.mark.slow
def test_sigkill_while_writing_the_checkpoint_keeps_the_last_complete_one(cs, wrapper, uninterrupted, tmp_path):
    out = str(tmp_path)
    proc = start(wrapper, cs, out, hook="save:2")
    kill_when_stopped(proc, out)
    [partial] = glob.glob(os.path.join(run_dir(out), ".cgnet-tmp-*"))  # half a file, never under the real name
    assert partial.endswith("checkpoint.pth")
    assert torch.load(os.path.join(run_dir(out), "checkpoint.pth"), weights_only=True)["epoch"] == 1
    log = finish(start(wrapper, cs, out))
    assert "removed" in log and "at epoch 1" in log
    assert_same_run(run_dir(out), uninterrupted)


def test_resume_rewrites_the_log_from_the_checkpoint(cs, tmp_path):
    """A log row without its checkpoint (killed in between) is dropped; a row the checkpoint has is restored."""
    parser = cityscapes_train.get_args_parser()
    summary = cityscapes_train.main(parser.parse_args(argv(cs, tmp_path, "--max_epochs", "2")))
    path = os.path.join(summary["run_dir"], "log.txt")
    lines = open(path).read().splitlines()
    with open(path, "w") as f:
        f.write("\n".join(lines[:3] + ["3\t\t9.9999\t\t0.0000\t\t0.0000000", "4\t\t"]) + "\n")
    cityscapes_train.main(parser.parse_args(argv(cs, tmp_path, "--max_epochs", "3")))
    after = open(path).read().splitlines()
    assert after[:4] == lines[:4]
    assert [line.split()[0] for line in after[2:]] == ["1", "2", "3"] and "9.9999" not in after[4]


def test_a_nan_loss_stops_the_run_naming_epoch_and_iteration_and_keeps_the_checkpoint(cs, tmp_path, monkeypatch):
    parser = cityscapes_train.get_args_parser()
    summary = cityscapes_train.main(parser.parse_args(argv(cs, tmp_path, "--max_epochs", "1")))
    forward, calls = torch.nn.CrossEntropyLoss.forward, []

    def nan_at_second_iteration(self, out, labels):
        calls.append(1)
        loss = forward(self, out, labels)
        return loss * float("nan") if len(calls) == 2 else loss
    monkeypatch.setattr(torch.nn.CrossEntropyLoss, "forward", nan_at_second_iteration)
    with pytest.raises(UserError, match="NaN/inf at epoch 2, iteration 2; .*last complete checkpoint was kept"):
        cityscapes_train.main(parser.parse_args(argv(cs, tmp_path, "--max_epochs", "3")))
    ckpt = torch.load(os.path.join(summary["run_dir"], "checkpoint.pth"), weights_only=True)
    assert ckpt["epoch"] == 1
    assert len(open(os.path.join(summary["run_dir"], "log.txt")).read().splitlines()) == 3  # header + 1 row


def test_a_diverging_learning_rate_is_stopped(cs, tmp_path):
    args = cityscapes_train.get_args_parser().parse_args(argv(cs, tmp_path, "--max_epochs", "1", "--lr", "1e30"))
    with pytest.raises(UserError, match=r"NaN/inf at epoch 1, iteration \d+"):
        cityscapes_train.main(args)
    assert not os.path.exists(os.path.join(run_dir(str(tmp_path)), "checkpoint.pth"))
