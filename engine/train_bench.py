"""benchmark.py --train: one iteration of the training recipe (forward, weighted cross-entropy, backward, Adam)
in each training mode, side by side in one process, then the same with the data loading of an epoch.

The step rows run in interleaved rounds (every mode once per round, in a shuffled order), so a load that comes
and goes falls on all of them alike. A row with data loading times consecutive iterations of one loader (its
workers prefetch while the step computes, as in training), over synthetic street scenes of CamVid's size.
"""
import os
import statistics
import tempfile
import time
from dataclasses import dataclass

import torch

from dataset.datasets import TrainDataset, make_loader, read_list
from dataset.synthetic import make_camvid
from engine.train_step import TrainMode, TrainStep
from model import build_model
from utils.device import keep_cpu_memory, use_device
from utils.files import check_writable_file
from utils.optim import build_optimizer
from utils.report import add_section, cpu
from utils.timing import machine_info, time_rounds

# name: (compile, amp, channels-last); the first is the baseline (the original's eager fp32). bf16 as training runs
# it: NCHW eagerly, channels-last compiled (engine.train_step.choose_mode says why).
MODES = {"eager": (False, "none", False), "channels-last": (False, "none", True), "bf16": (False, "bf16", False),
         "compile": (True, "none", True), "compile+bf16": (True, "bf16", True)}
# With data loading: (the step's mode, decoded images in memory, loader workers).
DATA_ROWS = {"eager + data from disk, 2 workers": ("eager", False, 2),
             "compile + data in memory, 0 workers": ("compile", True, 0),
             "compile + data in memory, 1 worker": ("compile", True, 1),
             "compile + data in memory, 2 workers": ("compile", True, 2)}
SCENE_SIZE, CAMVID_CLASSES = (360, 480), 11  # CamVid's images and classes (the synthetic scenes' too)


@dataclass(frozen=True)
class TrainBench:
    """What benchmark.py --train measures."""
    model: str = "CGNet"
    M: int = 3
    N: int = 21
    classes: int = 11
    batch_size: int = 8
    input_size: tuple = (360, 360)
    warmup: int = 1
    runs: int = 5
    data: bool = True
    seed: int = 0
    threads: int = None
    report: str = ""


def make_step(bench, mode_name, device):
    compile_, amp, channels_last = MODES[mode_name]
    torch.manual_seed(bench.seed)  # every mode starts from the same weights
    model = build_model(bench.model, bench.classes, M=bench.M, N=bench.N).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    weight = torch.rand(bench.classes, generator=torch.Generator().manual_seed(bench.seed)) * 9 + 1  # like CamVid's
    criterion = torch.nn.CrossEntropyLoss(weight=weight.to(device), ignore_index=bench.classes)
    mode = TrainMode(compile_, amp, channels_last, False, 0)
    return TrainStep(model, criterion, build_optimizer(model, 1e-3), torch.amp.GradScaler(device.type, enabled=False),
                     mode, bench.classes, device)


def batch(bench, device):
    g = torch.Generator().manual_seed(bench.seed)
    images = torch.randn(bench.batch_size, 3, *bench.input_size, generator=g) * 60
    labels = torch.randint(0, bench.classes + 1, (bench.batch_size, *bench.input_size), generator=g)
    return images.to(device), labels.to(device)


def time_steps(bench, device):
    """{mode: row} of the step alone, and the steps themselves (reused by the data rows)."""
    images, labels = batch(bench, device)
    steps, rows = {}, {}
    for name in MODES:
        steps[name] = make_step(bench, name, device)
        start = time.perf_counter()
        steps[name](images, labels, 1e-3)  # the compiling call
        rows[name] = {"first_call_s": time.perf_counter() - start, "times_s": []}
        for _ in range(bench.warmup):
            steps[name](images, labels, 1e-3)
    calls = {name: (lambda s=steps[name]: s(images, labels, 1e-3)[0].item()) for name in MODES}
    time_rounds(calls, rows, device, time.perf_counter, bench.runs)
    return rows, steps


def time_with_data(bench, steps, device, folder):
    """{row name: row}: consecutive iterations of a loader over synthetic CamVid scenes, the step included."""
    n = bench.batch_size * (bench.runs + bench.warmup + 1)
    make_camvid(folder, n_train=n, n_val=0, n_test=0, size=SCENE_SIZE, seed=bench.seed)
    samples = read_list(os.path.join(folder, "camvid_train_list.txt"), folder, True, "--train_data_list")
    rows = {}
    for name, (mode_name, in_memory, workers) in DATA_ROWS.items():
        dataset = TrainDataset(samples, (72.4, 82.9, 73.2), bench.input_size, bench.classes, bench.classes,
                               seed=bench.seed)
        if in_memory:
            dataset.keep_in_memory()
        loader = iter(make_loader(dataset, bench.batch_size, workers, device, drop_last=True))
        step = steps[mode_name]
        for _ in range(bench.warmup + 1):  # the workers' start, and the loader's first batches
            step(*next(loader), 1e-3)
        times = []
        for _ in range(bench.runs):
            start = time.perf_counter()
            step(*next(loader), 1e-3)[0].item()
            times.append(time.perf_counter() - start)
        rows[name] = {"times_s": times}
        del loader
    return rows


def run(bench, device=torch.device("cpu")):
    """Measure, print the table and the machine, and add a section to bench.report; returns the rows."""
    if bench.report:
        check_writable_file(bench.report, "--report")  # before minutes of measuring, not after
    if bench.threads:
        torch.set_num_threads(bench.threads)
    use_device(device)  # as training: subnormals flushed, before any thread starts
    # Freed memory kept, as the fast training mode keeps it, for every row: the rows compare the computation, and
    # steps of five modes in turn would otherwise map fresh pages (page faults) on each round.
    keep_cpu_memory()
    info = machine_info(device)
    name, flags = cpu()
    print(f"machine: {name}, {os.cpu_count()} CPUs, flags {', '.join(flags) or 'none'}; torch {info['torch']}, "
          f"{torch.get_num_threads()} threads; load average {info.get('load_average_start', '?')}")
    print(f"training step: {bench.model} M{bench.M}N{bench.N}, {bench.classes} classes, batch {bench.batch_size} at "
          f"{bench.input_size[0]}x{bench.input_size[1]}: forward, weighted cross-entropy, backward, Adam; "
          f"median of {bench.runs} interleaved rounds after {bench.warmup} warm-up")
    rows, steps = time_steps(bench, device)
    if bench.data and bench.classes != CAMVID_CLASSES:
        print(f"note: no rows with data loading: the synthetic CamVid scenes have {CAMVID_CLASSES} classes")
    elif bench.data:
        with tempfile.TemporaryDirectory(prefix="cgnet-train-bench-") as folder:
            rows.update(time_with_data(bench, steps, device, folder))
    base = statistics.median(rows["eager"]["times_s"])
    table = []
    for name, row in rows.items():
        median = statistics.median(row["times_s"])
        table.append({"configuration": name, "median ms": median * 1e3, "x eager": base / median,
                      "first call s": row.get("first_call_s")})
    print(f"{'mode':<40} {'median ms':>10} {'x eager':>8} {'first call s':>13}")
    for r in table:
        first = f"{r['first call s']:.1f}" if r["first call s"] is not None else ""
        print(f"{r['configuration']:<40} {r['median ms']:>10.0f} {r['x eager']:>7.2f}x {first:>13}")
    if bench.report:
        add_section(bench.report, f"training step: {bench.model} M{bench.M}N{bench.N} batch {bench.batch_size} at "
                    f"{bench.input_size[0]}x{bench.input_size[1]}", table,
                    note=f"median of {bench.runs} rounds; rows with data: consecutive iterations of one loader")
    return table
