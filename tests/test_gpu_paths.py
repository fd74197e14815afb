"""The GPU and multi-process paths, checked on a CPU: device selection with patched torch.cuda, the
statistics computed once before the process group, the confusion matrix's fixed shapes, TF32 in the
exact modes, spawn()'s port, errors and Ctrl-C."""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import camvid_test
import cityscapes_eval
import cityscapes_test
import cityscapes_train
from conftest import ctrl_c_heard, free_port
import engine.backend as backend
import engine.train as engine
from model.inference import Predictor
from utils import dist as du
from utils.device import select_device, use_device
from utils.errors import UserError
from utils.metric import ConfusionMatrix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def gpus(monkeypatch):
    """n visible 'GPUs' (set_device records instead of touching CUDA), outside any launcher."""
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", calls.append)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)

    def visible(n):
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        return calls
    return visible


def launched(monkeypatch, rank, world, local_world):
    for k, v in dict(RANK=rank, WORLD_SIZE=world, LOCAL_RANK=rank % local_world, LOCAL_WORLD_SIZE=local_world).items():
        monkeypatch.setenv(k, str(v))


# ------------------------------------------------------------------------------------------ devices

def test_the_same_gpu_twice_is_refused(gpus):
    gpus(2)
    with pytest.raises(UserError, match=r"^--gpus 0,0 names GPU 0 twice; list each GPU once"):
        select_device(SimpleNamespace(cuda=True, gpus="0,0"))


def test_a_launcher_showing_each_process_one_gpu_gets_cuda_0(gpus, monkeypatch):
    gpus(1)  # srun --gpus-per-task=1: every process sees its own GPU as the only one
    launched(monkeypatch, rank=3, world=4, local_world=4)
    device, ids = select_device(SimpleNamespace(cuda=True, gpus="0,1"))  # the training script's default
    assert (str(device), ids) == ("cuda:0", [0])
    assert str(du.process_device(device, ids)) == "cuda:0"


def test_a_plain_run_naming_a_gpu_that_is_not_there_still_fails(gpus):
    gpus(1)
    with pytest.raises(UserError, match="names GPU 1, but only 1 GPU"):
        select_device(SimpleNamespace(cuda=True, gpus="0,1"))


def test_more_processes_per_node_than_gpus_is_refused(gpus, monkeypatch):
    gpus(2)
    launched(monkeypatch, rank=2, world=3, local_world=3)
    with pytest.raises(UserError, match="started 3 processes per node but only 2 GPU"):
        du.process_device(torch.device("cuda:0"), [0])


def test_use_device_makes_the_gpu_current_and_lets_cudnn_pick_kernels(gpus, monkeypatch):
    calls = gpus(2)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    use_device(torch.device("cpu"))
    assert calls == [] and torch.backends.cudnn.benchmark is False
    use_device(torch.device("cuda:1"))
    assert calls == [torch.device("cuda:1")] and torch.backends.cudnn.benchmark is True


@pytest.mark.parametrize("script", [cityscapes_eval, cityscapes_test, camvid_test])
def test_eval_and_test_default_to_one_gpu(script):
    assert script.get_args_parser().parse_args([]).gpus == "0"
    assert cityscapes_train.get_args_parser().parse_args([]).gpus == "0,1"  # the original's 2-GPU recipe


@pytest.mark.parametrize("device, mode", [("cpu", "fold_bn+channels_last"), ("cuda:0", "fold_bn"),
                                          ("cuda:0", "fold_bn+compile+bf16")])
def test_evaluation_uses_channels_last_only_where_it_was_measured_faster(monkeypatch, device, mode):
    monkeypatch.setattr(backend, "keep_cpu_memory", lambda: True)
    chosen = backend.inference_mode("compile" if "compile" in mode else "fast", "bf16" if "bf16" in mode else "none",
                                    torch.device(device))
    assert chosen == mode


# ------------------------------------------------------------------ statistics before the process group

@pytest.mark.parametrize("rank", [0, 1])
def test_statistics_come_from_rank_0_before_the_group_exists(monkeypatch, tmp_path, rank):
    """Rank 0 reads (or computes) the statistics before init_process_group; other ranks, perhaps on a
    machine without the file, never look for it and train with what rank 0 broadcasts."""
    launched(monkeypatch, rank=rank, world=2, local_world=2)
    events, rank0_stats = [], {"mean": np.ones(3, np.float32)}
    monkeypatch.setattr(engine, "read_samples", lambda args: ([], []))
    monkeypatch.setattr(engine, "get_inform", lambda *a: events.append("statistics") or rank0_stats)
    monkeypatch.setattr(du, "init_distributed", lambda device: events.append("init") or (rank, 2))
    monkeypatch.setattr(du, "broadcast_object", lambda obj: rank0_stats)
    monkeypatch.setattr(du, "cleanup", lambda: events.append("cleanup"))
    monkeypatch.setattr(engine, "_train", lambda args, spec, device, r, world, samples, inform:
                        events.append(("train", inform is rank0_stats)))
    args = cityscapes_train.get_args_parser().parse_args(["--cuda", "false", "--inform_data_file",
                                                          str(tmp_path / "absent.pkl")])
    cityscapes_train.main(args)
    expected = ["statistics"] if rank == 0 else []
    assert events == expected + ["init", ("train", True), "cleanup"]


def test_an_interrupted_process_leaves_its_group_alone(monkeypatch):
    """Ctrl-C may come during a collective: tearing the group down then would wait for it."""
    cleaned = []
    monkeypatch.setattr(du, "cleanup", lambda: cleaned.append(True))
    monkeypatch.setattr(du, "init_distributed", lambda device: (0, 1))

    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(engine, "_train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        engine.train_process(None, None, torch.device("cpu"), [], ([], []), {})
    assert cleaned == []


# ------------------------------------------------------------------------------------ confusion matrix

def test_confusion_matrix_matches_numpy_with_the_ignore_label_and_stray_values():
    rng = np.random.default_rng(1)
    classes, ignore = 6, 255
    target = rng.integers(0, classes, (3, 20, 30))
    target[rng.random(target.shape) < 0.2] = ignore
    target[0, 0, :5] = classes  # a value that is neither a class nor the ignore label: not counted either
    pred = rng.integers(0, classes, target.shape)
    cm = ConfusionMatrix(classes, ignore, "cpu")
    for p, t in zip(pred, target):
        cm.update(torch.from_numpy(p), torch.from_numpy(t))
    keep = target < classes
    ref = np.zeros((classes, classes), np.int64)
    np.add.at(ref, (target[keep], pred[keep]), 1)
    assert (cm.mat.numpy() == ref).all() and cm.mat.sum() == keep.sum()


def test_confusion_matrix_update_has_no_shape_that_depends_on_the_values():
    """On the meta device tensors have shapes but no values: a boolean mask or bincount (whose sizes
    come from the data, so that a GPU would wait for the host) cannot run there; update must."""
    cm = ConfusionMatrix(19, 255, "meta")
    cm.update(torch.empty(2, 8, 16, dtype=torch.long, device="meta"),
              torch.empty(2, 8, 16, dtype=torch.uint8, device="meta"))
    assert cm.mat.shape == (19, 19)
    with pytest.raises(NotImplementedError):  # what the old update did
        x = torch.empty(8, dtype=torch.long, device="meta")
        torch.bincount(x[x != 255])


# ----------------------------------------------------------------------------------------------- TF32

SEEN = []


class FlagRecorder(torch.nn.Module):
    def forward(self, x):
        SEEN.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
        return x


@pytest.mark.parametrize("mode, tf32_inside", [("eager", False), ("exact", False), ("bf16", True)])
def test_exact_modes_turn_tf32_off_during_their_calls(mode, tf32_inside):
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = True  # torch's default
    torch.backends.cuda.matmul.allow_tf32 = True  # as after torch.set_float32_matmul_precision("high")
    try:
        SEEN.clear()
        predict = Predictor(FlagRecorder(), mode, "cpu")
        predict(torch.zeros(1, 3, 4, 4))
        assert SEEN == [(tf32_inside, tf32_inside)]
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32  # restored after
        assert predict.tf32 is None  # not applicable on a CPU
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


# ------------------------------------------------------------------------------------------- spawn()

def _report(fail_on):
    """Run in spawned processes: join the group, fail on some ranks, else return the port used."""
    rank, world = du.init_distributed(torch.device("cpu"))
    if rank in fail_on:
        raise UserError("a problem only some ranks meet" if len(fail_on) < world else "a problem of all ranks")
    du.barrier()
    du.cleanup()
    return os.environ["MASTER_PORT"]


@pytest.mark.slow
def test_spawn_honours_master_port_and_prefixes_the_rank_that_failed_alone(monkeypatch):
    port = str(free_port())
    monkeypatch.setenv("MASTER_PORT", port)
    assert du.spawn(_report, 2, ()) == port
    with pytest.raises(UserError, match="a problem only some ranks meet") as alone:
        du.spawn(_report, 2, (1,))
    assert alone.value.rank == 1
    with pytest.raises(UserError, match="a problem of all ranks") as shared:
        du.spawn(_report, 2, (0, 1))
    assert shared.value.rank is None  # said once, as it is


@pytest.mark.slow
def test_a_busy_master_port_is_retried_once_then_refused(monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.setenv("MASTER_PORT", str(busy.getsockname()[1]))
        start = time.monotonic()
        with pytest.raises(UserError, match=rf"^MASTER_PORT={busy.getsockname()[1]} is in use by another program"):
            du.host_store(2)
        assert 1 <= time.monotonic() - start < 10  # one retry, a second later


def test_a_nonsense_master_port_is_refused(monkeypatch):
    monkeypatch.setenv("MASTER_PORT", "http")
    with pytest.raises(UserError, match="MASTER_PORT=http is not a port number"):
        du.host_store(2)


SPAWN_AND_HANG = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {root!r})
    from utils import dist as du

    def hang(pid_dir):
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # stuck in C++ code: no Python signal handling
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open(os.path.join(pid_dir, str(os.getpid())), "w").close()
        while True:
            time.sleep(1)

    if __name__ == "__main__":
        du.spawn(hang, 2, sys.argv[1])
""")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


@pytest.mark.slow
def test_ctrl_c_stops_spawned_processes_within_seconds(tmp_path):
    script = tmp_path / "spawn_and_hang.py"
    script.write_text(SPAWN_AND_HANG.format(root=ROOT))
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stderr=subprocess.PIPE, text=True,
                              preexec_fn=ctrl_c_heard)
    deadline = time.monotonic() + 120
    while len([p for p in os.listdir(tmp_path) if p.isdigit()]) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    children = [int(p) for p in os.listdir(tmp_path) if p.isdigit()]
    assert len(children) == 2, parent.stderr.read() if parent.poll() is not None else "children did not start"
    start = time.monotonic()
    parent.send_signal(signal.SIGINT)  # to the parent alone: the children ignore it anyway
    parent.wait(timeout=30)
    assert time.monotonic() - start < du.STOP_AFTER_S + 5
    assert not any(alive(pid) for pid in children)


def test_amp_notices_name_a_cpu_without_native_bf16(monkeypatch):
    import utils.device as device_mod
    cpu = torch.device("cpu")
    monkeypatch.setattr(device_mod, "native_bf16", lambda: False)
    assert "no native bf16" in device_mod.amp_notice(cpu, "bf16")
    assert "fp16 is several times slower" in device_mod.amp_notice(cpu, "fp16")
    monkeypatch.setattr(device_mod, "native_bf16", lambda: True)
    assert device_mod.amp_notice(cpu, "bf16") is None and device_mod.amp_notice(cpu, "none") is None
    assert device_mod.amp_notice(torch.device("cuda", 0), "bf16") is None
