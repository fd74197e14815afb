"""Distributed training on the CPU (gloo): torchrun, the plain `--gpus 0,1` launch, and what rank 0 saves."""
import os
import subprocess
import sys
from unittest import mock

import pytest
import torch

import cityscapes_train
from dataset.datasets import read_list
from dataset.inform import read_inform
from model import build_model
from conftest import ROOT, train_argv as tiny_train_argv
from utils import dist as du
import engine.train as engine
from engine.checkpoint import load_weights
from utils.errors import UserError

@pytest.fixture(scope="module")
def cs(synthetic):
    return synthetic(n_train=8, n_val=3, n_test=1)


def train_argv(root, out, *extra):
    return tiny_train_argv(root, out, "--seed", "5", *extra)


@pytest.mark.slow
def test_torchrun_two_processes_save_once_and_validate_like_one_process(cs, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "cityscapes_train.py", *train_argv(cs, tmp_path, "--batch_size", "4", "--max_epochs", "2", "--cuda", "false")]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    run_dir = tmp_path / "ckpt" / "cityscapes" / "CGNet_M1N2bs4cpu_ontrain"  # batch 4 in total, 2 each
    assert sorted(os.listdir(run_dir)) == ["checkpoint.pth", "log.txt", "model_1.pth", "model_2.pth"]
    assert run.stdout.count("epoch 2/2:") == 1 and "x 2 processes" in run.stdout  # rank 0 alone prints
    rows = [line.split() for line in (run_dir / "log.txt").read_text().splitlines()[2:]]
    assert [r[0] for r in rows] == ["1", "2"]
    ckpt = torch.load(run_dir / "checkpoint.pth", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["iteration"] == 2 * 2  # 8 images, 2 per process and step
    assert not any(k.startswith("module.") for k in ckpt["model"])

    # The mIoU logged by 2 processes (confusion matrices summed) is what one process measures on model_2.pth.
    args = cityscapes_train.get_args_parser().parse_args(train_argv(cs, tmp_path, "--cuda", "false"))
    model = build_model("CGNet", 19, M=1, N=2)
    load_weights(model, str(run_dir / "model_2.pth"))
    model = model.to(memory_format=torch.channels_last)  # as trained (the CPU default): the same conv kernels
    samples = read_list(args.val_data_list, cs, True, "--val_data_list")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in torchrun's workers (OMP_NUM_THREADS=1): the same float rounding
    try:
        miou = engine.validate(model, samples, read_inform(args.inform_data_file)["mean"], args,
                               torch.device("cpu"))["mIoU"]
    finally:
        torch.set_num_threads(threads)
    assert rows[1][3] == f"{miou:.4f}"


@pytest.fixture
def two_fake_gpus(monkeypatch):
    """Two visible 'GPUs'; spawn runs the ranks one after another in this process, and _train records."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(du, "init_distributed",
                        lambda device: (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    calls = {"spawn": [], "train": []}

    def spawn(fn, args, nprocs, join):
        calls["spawn"].append(nprocs)
        for rank in range(nprocs):
            with mock.patch.dict(os.environ):
                fn(rank, *args)
        return mock.Mock(join=lambda grace_period: True)  # the processes have ended

    def _train(args, spec, device, rank, world, samples, inform):
        env = {k: os.environ.get(k) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
        calls["train"].append((str(device), rank, world, env))
        return {"rank": rank, "run_dir": engine.run_folder(args, device, world)}

    monkeypatch.setattr(du.mp, "spawn", spawn)
    monkeypatch.setattr(engine, "_train", _train)
    monkeypatch.setattr(engine, "read_samples", lambda args: ([], []))  # the default lists need no data here
    monkeypatch.setattr(engine, "read_statistics", lambda args: {})
    return calls


def test_plain_gpus_0_1_starts_one_process_per_gpu(two_fake_gpus):
    args = cityscapes_train.get_args_parser().parse_args(["--gpus", "0,1"])  # the original command line
    summary = cityscapes_train.main(args)
    assert two_fake_gpus["spawn"] == [2]
    (dev0, rank0, world0, env0), (dev1, rank1, world1, env1) = two_fake_gpus["train"]
    assert (dev0, rank0, world0, dev1, rank1, world1) == ("cuda:0", 0, 2, "cuda:1", 1, 2)
    assert (env0["RANK"], env0["LOCAL_RANK"], env1["RANK"], env1["LOCAL_RANK"]) == ("0", "0", "1", "1")
    assert env0["WORLD_SIZE"] == env1["WORLD_SIZE"] == "2" and env0["MASTER_PORT"] == env1["MASTER_PORT"]
    assert summary["rank"] == 0 and summary["run_dir"].endswith("CGNet_M3N21bs16gpu2_ontrainval")
    assert "RANK" not in os.environ  # the launching process itself stays a plain process


@pytest.mark.parametrize("argv", [["--gpus", "0"], ["--gpus", "0,1", "--cuda", "false"]])
def test_one_gpu_or_the_cpu_runs_a_single_process(two_fake_gpus, argv):
    cityscapes_train.main(cityscapes_train.get_args_parser().parse_args(argv))
    assert two_fake_gpus["spawn"] == []
    [(device, rank, world, env)] = two_fake_gpus["train"]
    assert (rank, world) == (0, 1) and device == ("cuda:0" if "0,1" not in argv else "cpu")


def test_a_batch_that_does_not_split_over_the_gpus_stops_before_spawning(two_fake_gpus):
    with pytest.raises(UserError, match="--batch_size 15 is the total over 2 processes"):
        cityscapes_train.main(cityscapes_train.get_args_parser().parse_args(["--gpus", "0,1", "--batch_size", "15"]))
    assert two_fake_gpus["spawn"] == []


@pytest.mark.parametrize("gpus, visible, local_rank, expected", [
    ("0,1", 2, 1, "cuda:1"), ("2,3", 4, 1, "cuda:3"), ("0", 2, 1, "cuda:1"), ("0", 1, 1, "cuda:0")])
def test_torchrun_gives_each_local_rank_its_gpu(monkeypatch, gpus, visible, local_rank, expected):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    for k, v in dict(RANK=local_rank, WORLD_SIZE=2, LOCAL_RANK=local_rank, LOCAL_WORLD_SIZE=2).items():
        monkeypatch.setenv(k, str(v))
    ids = [int(i) for i in gpus.split(",")]
    assert du.spawn_count(torch.device(f"cuda:{ids[0]}"), ids) == 0  # torchrun started the processes
    if expected is None:
        with pytest.raises(UserError, match="one process per GPU"):
            du.process_device(torch.device("cuda:0"), ids)
    else:
        assert str(du.process_device(torch.device(f"cuda:{ids[0]}"), ids)) == expected


def _sum_of_ranks(fail_on_rank):
    """Run in spawned processes: join the gloo group from the environment spawn() set, all-reduce."""
    rank, world = du.init_distributed(torch.device("cpu"))
    try:
        if rank == fail_on_rank:
            raise UserError(f"rank {rank} failed on purpose")
        total = du.all_reduce_sum(torch.tensor([rank + 1]))
        return {"world": world, "sum": int(total), "local_rank": du.local_rank()}
    finally:
        du.cleanup()


@pytest.mark.slow
def test_spawn_starts_a_working_process_group_and_reports_errors():
    assert du.spawn(_sum_of_ranks, 2, -1) == {"world": 2, "sum": 3, "local_rank": 0}
    with pytest.raises(UserError, match="rank 1 failed on purpose"):
        du.spawn(_sum_of_ranks, 2, 1)


@pytest.mark.parametrize("amp, channels_last, resolved", [
    ("none", None, True), ("bf16", None, False), ("fp16", "false", False), ("bf16", "true", True)])
@pytest.mark.slow
def test_amp_and_channels_last_train_and_save_what_they_used(cs, tmp_path, capsys, amp, channels_last, resolved):
    extra = ["--amp", amp, "--max_epochs", "1", "--batch_size", "4", "--cuda", "false", "--sync_bn", "true"]
    if channels_last is not None:
        extra += ["--channels_last", channels_last]
    summary = cityscapes_train.main(cityscapes_train.get_args_parser().parse_args(train_argv(cs, tmp_path, *extra)))
    assert torch.isfinite(torch.tensor(summary["loss"]))
    ckpt = torch.load(os.path.join(summary["run_dir"], "checkpoint.pth"), weights_only=True)
    # The flags are saved as given (a resumed run chooses again); the run's line says what it chose.
    assert ckpt["args"]["channels_last"] == (None if channels_last is None else channels_last == "true")
    assert ckpt["args"]["amp"] == amp
    out = capsys.readouterr().out
    assert ("channels-last," if resolved else "NCHW,") in out and ("fp32," if amp == "none" else f"{amp} autocast") in out
    assert ("scaler" in ckpt) == (amp == "fp16")  # the fp16 loss scale resumes where it was
    assert all(v.dtype != torch.bfloat16 for v in ckpt["model"].values())  # weights stay fp32
    assert "--sync_bn ignored" in out  # SyncBatchNorm needs GPUs
