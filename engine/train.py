"""Training, shared by the Cityscapes and CamVid scripts: train() (lists, statistics) -> train_process()
per process (device, process group) -> _train(): restore(), open_log(), then per epoch train_one_epoch(),
validate() and save().

Each dataset script passes its DatasetSpec (dataset/specs.py); nothing here depends on the dataset.
"""
import contextlib
import os
import random
import re
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from dataset.datasets import EvalDataset, TrainDataset, decoded_bytes, make_loader, read_list
from dataset.inform import get_inform
from engine.checkpoint import build_and_load, load_pretrained, network_of, read_weights, self_contained
from engine.published import PUBLISHED, fetch
from engine.train_step import TrainStep, choose_mode, compiled_graphs
from model import count_parameters
from utils import dist as du
from utils.checkpoint import read_checkpoint, save_checkpoint
from utils.device import amp_notice, keep_cpu_memory, select_device, use_device
from utils.log import log, notice, rank as process_rank  # `rank`: the local name of a process's rank below
from utils.errors import UserError
from utils.files import atomic_write, check_writable_dir, remove_stale
from utils.metric import ConfusionMatrix
from utils.optim import build_optimizer, poly_lr
from utils.progress import bar, plural


# ------------------------------------------------------------------------------------------ training

NEVER = torch.iinfo(torch.long).max  # "no bad iteration yet"



@torch.inference_mode()
def validate(model, samples, mean, args, device, rank=0, world=1, workers=0):
    """mIoU over `samples` (batch 1, full resolution); ranks split the list, the confusion matrix is summed.
    The training loop's own eager forward: training loads no inference or deployment module."""
    model.eval()
    dataset = EvalDataset(samples, mean, args.classes, args.ignore_label)
    subset = torch.utils.data.Subset(dataset, list(range(rank, len(dataset), world)))
    loader = make_loader(subset, 1, workers, device)
    conf = ConfusionMatrix(args.classes, args.ignore_label, device)
    with bar(len(subset), "validation", "images") if rank == 0 else contextlib.nullcontext() as progress:
        for images, labels, _ in loader:
            pred = model(images.to(device, non_blocking=True)).argmax(1)
            conf.update(pred, labels.to(device, non_blocking=True))
            if progress is not None:
                progress.update()
    conf.all_reduce()
    return conf.compute()


@dataclass(frozen=True)
class Schedule:
    """The poly learning rate over the whole run, per iteration."""
    lr: float
    per_epoch: int
    epochs: int

    def lr_at(self, epoch, i):
        return poly_lr(self.lr, epoch * self.per_epoch + i, self.epochs * self.per_epoch)


def train_one_epoch(step, loader, epoch, schedule, classes, ignore_label):
    """One epoch of `step` (a TrainStep); returns (mean loss, train confusion matrix, last lr).
    Syncs with the host only to log."""
    step.model.train()
    device = step.device
    conf = ConfusionMatrix(classes, ignore_label, device)
    loss_sum = torch.zeros((), device=device)
    first_bad = torch.full((), NEVER, dtype=torch.long, device=device)
    progress = bar(len(loader), f"epoch {epoch + 1}/{schedule.epochs}") if process_rank() == 0 else None
    shown, lr = 0, schedule.lr
    for i, (images, labels) in enumerate(loader):
        lr = schedule.lr_at(epoch, i)
        loss, preds, labels = step(images, labels, lr)
        with torch.no_grad():
            loss = loss.float()
            first_bad = torch.minimum(first_bad, torch.where(torch.isfinite(loss), NEVER, i))
            loss_sum += loss
            conf.update(preds, labels)
        if (i + 1) % 10 == 0 or i + 1 == len(loader):
            check_finite(first_bad, epoch)
            if progress is not None:  # the epoch's ETA; the run's is in the line logged after each epoch
                progress.set_postfix_str(f"loss {loss_sum.item() / (i + 1):.4f} lr {lr:.2e}", refresh=False)
                progress.update(i + 1 - shown)
                shown = i + 1
    if progress is not None:
        progress.close()
    check_finite(first_bad, epoch)
    total = du.all_reduce_sum(torch.stack([loss_sum, torch.tensor(float(len(loader)), device=device)]))
    conf.all_reduce()
    return (total[0] / total[1]).item(), conf, lr


def run_eta(start, done, left):
    """'; run ETA 1:02:03' from the mean time of the epochs done in this process ('' after the last)."""
    if not left:
        return ""
    seconds = round((time.perf_counter() - start) / done * left)
    return f"; run ETA {seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def check_finite(first_bad, epoch):
    """Stop every process at once when any of them saw a NaN/inf loss (none may wait on the others)."""
    bad = du.all_reduce_min(first_bad.clone()).item()
    if bad != NEVER:
        raise UserError(f"the training loss became NaN/inf at epoch {epoch + 1}, iteration {bad + 1}; training "
                        f"stopped and the last complete checkpoint was kept (try a lower --lr, check the labels).")


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def epoch_seed(seed, epoch, rank):
    """Every epoch of every process reseeds from (seed, epoch, rank): a resumed run draws what an
    uninterrupted one would, with no generator state to carry across processes or machines."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def check_batch_size(batch_size, world):
    if batch_size % world:
        raise UserError(f"--batch_size {batch_size} is the total over {world} processes and must divide "
                        f"evenly among them.")


def run_name(args, hardware):
    """Checkpoint folder name of the original, e.g. CGNet_M3N21bs16gpu2_ontrain (hardware: 'gpu2' or 'cpu')."""
    if args.model == "CGNet":
        return f"CGNet_M{args.M}N{args.N}bs{args.batch_size}{hardware}_{args.train_type}"
    return f"{args.model}_bs{args.batch_size}{hardware}_{args.train_type}"


def run_folder(args, device, world):
    """SAVEDIR/DATASET/CGNet_M3N21bs16gpu2_ontrain: the batch size in total, the real GPU count (or 'cpu')."""
    hardware = f"gpu{world}" if device.type == "cuda" else "cpu"
    return os.path.join(args.savedir, args.dataset, run_name(args, hardware))


def resolve_resume(resume, run_dir):
    """--resume PATH, or for 'auto' the run folder's checkpoint.pth (None when there is none yet)."""
    if resume != "auto":
        return resume
    path = os.path.join(run_dir, "checkpoint.pth")
    if os.path.exists(path):
        return path
    notice(f"--resume auto found no {path}; training starts from scratch.")
    return None


def read_resume(path, auto, run_dir):
    """The checkpoint to continue from. Under --resume auto a damaged file is the run's own last save, not a
    download: say so, and name the run's model_N.pth files (weights without optimizer state) to continue from."""
    try:
        return read_checkpoint(path)
    except UserError:
        if not auto:
            raise
    saved = sorted((int(m.group(1)), m.group(0)) for m in
                   (re.fullmatch(r"model_(\d+)\.pth", name) for name in os.listdir(run_dir)) if m)
    if saved:
        latest = os.path.join(run_dir, saved[-1][1])
        others = ", ".join(name for _, name in reversed(saved[:-1][-3:]))
        hint = (f"continue from an earlier save with --resume {latest}" + (f" (or {others})" if others else "")
                + f" (Adam restarts there), start a new run from its weights with --weights {latest}, or move it "
                  f"away to start the run again")
    else:
        hint = f"no model_N.pth was saved in {run_dir} either, so move it away to start the run again"
    raise UserError(f"--resume auto: {path}, the last save of this run, is damaged (empty, truncated or not a "
                    f"checkpoint); {hint}.")


def saved_files(run_dir):
    """The checkpoints of a run in its folder: checkpoint.pth and model_N.pth."""
    if not os.path.isdir(run_dir):
        return []
    return sorted(n for n in os.listdir(run_dir) if n == "checkpoint.pth" or re.fullmatch(r"model_\d+\.pth", n))


def check_earlier_run(args, run_dir):
    """Before any work: a new run never replaces an earlier run's checkpoints unless --overwrite asks for it
    (a mistyped command must not cost a 300-epoch run). Continuing the run in its own folder is not new."""
    saved = saved_files(run_dir)
    own = args.resume and os.path.dirname(os.path.abspath(args.resume)) == os.path.abspath(run_dir)
    if not saved or args.overwrite or args.resume == "auto" or own:
        return
    shown = ", ".join(saved[:3]) + (f" and {len(saved) - 3} more" if len(saved) > 3 else "")
    raise UserError(f"{run_dir} holds an earlier run ({shown}); continue it with --resume auto, replace it with "
                    f"--overwrite, or start this run in another folder with another --savedir or --train_type.")


def log_header(params):
    return [f"Parameters: {params}", "Epoch\t\tLoss(Tr)\t\tmIOU (tr)\t\tmIOU (val)\t\tlr"]


def log_lines_up_to(path, epoch):
    """The lines of an existing log up to `epoch` (for checkpoints that do not carry their log)."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        lines = f.read().splitlines()
    return [line for line in lines if not line.split() or not line.split()[0].isdigit()
            or int(line.split()[0]) <= epoch]


def write_log(path, lines):
    def write(tmp):
        with open(tmp, "w") as f:
            f.writelines(line + "\n" for line in lines)
    atomic_write(path, write)


def train(args, spec):
    """The original training recipe; returns a summary dict (run folder, last mIoU values).

    Launched plainly with several GPUs in --gpus it starts one process per GPU; under torchrun each
    process trains its share; either way the processes run _train with DistributedDataParallel.
    """
    device, gpu_ids = select_device(args, log)
    nprocs = du.spawn_count(device, gpu_ids)
    if nprocs:
        check_batch_size(args.batch_size, nprocs)
    samples = read_samples(args)
    # The statistics are read, or computed on a first run (minutes for Cityscapes trainval), by one process
    # before any process group exists: the spawning process, or torchrun's rank 0 while the other ranks wait
    # in init_process_group (its timeout covers this). Rank 0 then broadcasts them: with several machines
    # the others may have no copy of the file, and must not compute their own.
    inform = read_statistics(args) if process_rank() == 0 else None
    if args.weights in PUBLISHED and not os.path.isfile(args.weights):  # a published NAME: its default path
        args.weights = fetch(args.weights, log=log) if process_rank() == 0 else PUBLISHED[args.weights].out
    if args.weights and process_rank() == 0:
        inform = pretrained_mean(inform, args.weights)
    if nprocs:
        log(f"starting {nprocs} processes, one per GPU of --gpus {args.gpus} (DistributedDataParallel)")
        return du.spawn(train_process, nprocs, args, spec, device, gpu_ids, samples, inform)
    return train_process(args, spec, device, gpu_ids, samples, inform)


def train_process(args, spec, device, gpu_ids, samples, inform):
    """One process of the run (the only one without torchrun or spawn)."""
    device = du.process_device(device, gpu_ids)
    use_device(device)
    rank, world = du.init_distributed(device)
    result = _train(args, spec, device, rank, world, samples, du.broadcast_object(inform))
    # Torn down only after success: a Ctrl-C may come during a collective, which the teardown would then
    # wait for; after a UserError run_cli tears it down once the error has been reported to the others.
    du.cleanup()
    return result


def read_samples(args):
    """(training samples, validation samples or []), their files checked before any long work."""
    train_samples = read_list(args.train_data_list, args.data_dir, True, "--train_data_list")
    val_samples = read_list(args.val_data_list, args.data_dir, True, "--val_data_list") if args.val_data_list else []
    return train_samples, val_samples


def pretrained_mean(inform, path):
    """The statistics with the input mean of the --weights model, where its file records or implies one: its
    layers were trained on inputs minus that mean, so fine-tuning starts from its accuracy rather than from inputs
    shifted by the difference (the class weights stay this dataset's)."""
    mean = read_weights(path, "--weights").mean
    if mean is None:
        return inform
    shown = ", ".join(f"{v:.1f}" for v in mean)
    notice(f"the input mean of --weights {path} ({shown}) is used rather than this dataset's "
           f"({', '.join(f'{v:.1f}' for v in inform['mean'])}): its layers were trained with it.")
    return {**inform, "mean": np.asarray(mean, np.float32)}


def read_statistics(args):
    return get_inform(args.inform_data_file, args.data_dir, args.dataset_list, args.classes, args.ignore_label, log)


def _train(args, spec, device, rank, world, samples, inform):
    check_batch_size(args.batch_size, world)
    run_dir = run_folder(args, device, world)
    if rank == 0:
        check_writable_dir(run_dir, "--savedir")
        check_earlier_run(args, run_dir)
    train_samples, val_samples = samples
    mode = choose_mode(args, device, decoded_bytes(train_samples))
    if mode.keep_memory:
        keep_cpu_memory()  # before the dataset is decoded into memory
    if amp_notice(device, mode.amp):
        log(amp_notice(device, mode.amp))
    sync_bn = args.sync_bn and world > 1 and device.type == "cuda"
    if args.sync_bn and not sync_bn:
        notice("--sync_bn ignored: SyncBatchNorm needs more than one GPU process (NCCL); each process "
               "keeps its own BatchNorm statistics.")

    run = restore(args, device, rank, run_dir, sync_bn, mode)
    model = run.model
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    dataset = TrainDataset(train_samples, inform["mean"], args.input_size, args.classes, args.ignore_label,
                           scale=args.random_scale, mirror=args.random_mirror, seed=run.seed)
    cached_mb = None
    if mode.in_memory:
        with bar(len(dataset), "decoding into memory", "images") if rank == 0 else contextlib.nullcontext() as p:
            cached_mb = dataset.keep_in_memory(p) / 2 ** 20
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                                  seed=run.seed)
    loader = make_loader(dataset, args.batch_size // world, mode.workers, device, sampler=sampler, drop_last=True)
    if len(loader) == 0:
        raise UserError(f"--train_data_list {args.train_data_list} has {plural(len(dataset), 'image')}, fewer than "
                        f"--batch_size {args.batch_size}; lower --batch_size.")
    per_iter = len(loader)
    weight = torch.from_numpy(inform["classWeights"]).to(device)
    criterion = nn.CrossEntropyLoss(weight=weight, ignore_index=args.ignore_label)  # NLL of log_softmax
    step = TrainStep(model, criterion, run.optimizer, run.scaler, mode, args.ignore_label, device)  # compiled once
    schedule = Schedule(args.lr, per_iter, args.max_epochs)

    log_lines = open_log(args, run, run_dir, count_parameters(model)) if rank == 0 else None
    if rank == 0:
        log(f"run folder {run_dir}; {count_parameters(model):,} parameters; seed {run.seed}; device {device}"
            f"{f' x {world} processes' if world > 1 else ''}; {plural(len(dataset), 'training image')}, "
            f"{plural(per_iter, 'iteration')} per epoch")
        log(mode.describe(cached_mb))

    summary = {"run_dir": run_dir, "seed": run.seed, "epochs": run.start_epoch, "world_size": world}
    run_start, step_graphs = time.perf_counter(), 0
    for epoch in range(run.start_epoch, args.max_epochs):
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        seed_everything(epoch_seed(run.seed, epoch, rank))
        start = time.perf_counter()
        loss, conf, lr = train_one_epoch(step, loader, epoch, schedule, args.classes, args.ignore_label)
        if mode.compile:
            graphs = compiled_graphs()
            if epoch > run.start_epoch and graphs > step_graphs:
                notice(f"the training step was compiled again ({graphs - step_graphs} more graphs); "
                       f"each recompilation costs time (please report it).")
            step_graphs = graphs
        train_miou = conf.compute()["mIoU"]
        val_miou = None
        if val_samples and (epoch % args.val_interval == 0 or epoch == args.max_epochs - 1):
            du.broadcast_buffers(du.unwrap(model))
            val_miou = validate(du.unwrap(model), val_samples, inform["mean"], args, device, rank, world,
                                mode.workers)["mIoU"]
        if rank == 0:
            row = f"{epoch + 1}\t\t{loss:.4f}\t\t{train_miou:.4f}\t\t"
            log_lines.append(row + (f"{val_miou:.4f}\t\t" if val_miou is not None else "") + f"{lr:.7f}")
            save(args, spec, run, du.unwrap(model), epoch, per_iter, run_dir, log_lines, inform["mean"])
            log(f"epoch {epoch + 1}/{args.max_epochs}: loss {loss:.4f}, train mIoU {train_miou:.4f}"
                + (f", val mIoU {val_miou:.4f}" if val_miou is not None else "")
                + f", lr {lr:.2e}, {time.perf_counter() - start:.1f} s"
                + run_eta(run_start, epoch + 1 - run.start_epoch, args.max_epochs - epoch - 1))
        summary.update(epochs=epoch + 1, loss=loss, train_mIoU=train_miou)
        if val_miou is not None:
            summary["val_mIoU"] = val_miou
    du.barrier()  # every process returns once rank 0 has saved
    return summary


@dataclass
class Run:
    """What a run continues from: the model, optimizer and scaler (restored when resuming), and where."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    seed: int
    resume: str = None
    start_epoch: int = 0
    log_lines: list = None


def restore(args, device, rank, run_dir, sync_bn, mode):
    """Build the model, optimizer and scaler; with --resume, load their state from the checkpoint;
    with --weights, only the weights (a new run: epoch 0, fresh optimizer and LR schedule).

    Rank 0 alone touches the run folder; the others get what it read (no shared disk needed)."""
    resume, ckpt, seed, pretrained = None, {}, args.seed, None
    if rank == 0:
        resume = resolve_resume(args.resume, run_dir) if args.resume else None
        ckpt = read_resume(resume, args.resume == "auto", run_dir) if resume else {}
        if seed is None and isinstance(ckpt, dict) and isinstance(ckpt.get("seed"), int):
            seed = ckpt["seed"]
        if seed is None:
            seed = random.SystemRandom().randrange(2 ** 31)
        pretrained = read_checkpoint(args.weights, "--weights") if args.weights else None
    resume, ckpt, seed, pretrained = du.broadcast_object((resume, ckpt, seed, pretrained))

    seed_everything(seed)  # before building the model: the same initial weights whatever the process count
    model, weights = build_and_load(args, device, resume, ckpt)
    if args.weights:
        load_pretrained(model, args.weights, args.classes, pretrained, args.model)
        log(f"starting a new run from the weights of {args.weights}")
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if mode.channels_last:
        model = model.to(memory_format=torch.channels_last)
    run = Run(model, build_optimizer(model, args.lr), torch.amp.GradScaler(device.type, enabled=mode.amp == "fp16"),
              seed, resume)
    if not resume:
        return run
    ckpt = weights.ckpt
    run.start_epoch = int(ckpt.get("epoch", 0))
    if run.start_epoch >= args.max_epochs:  # checked on every rank, before anything is written
        raise UserError(f"--resume {resume} has already trained {plural(run.start_epoch, 'epoch')}, which reaches "
                        f"--max_epochs {args.max_epochs}; give a higher --max_epochs to train on, or --weights "
                        f"{resume} to start a new run (fine-tuning) from its weights.")
    if "optimizer" in ckpt:
        try:
            run.optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, TypeError, RuntimeError):
            raise UserError(f"--resume {resume} holds optimizer state that does not fit this model; resume "
                            f"from the checkpoint.pth of this run, or start from its weights alone "
                            f"(a model_N.pth file).") from None
    else:
        notice(f"{resume} holds no optimizer state (an original-release checkpoint?); Adam restarts.")
    if run.scaler.is_enabled() and "scaler" in ckpt:
        run.scaler.load_state_dict(ckpt["scaler"])
    run.log_lines = ckpt.get("log")
    log(f"resumed from {resume} at epoch {run.start_epoch}")
    return run


def open_log(args, run, run_dir, params):
    """The log's lines so far (rank 0): the checkpoint's copy when resuming, else a new header."""
    log_path = os.path.join(run_dir, args.logFile)
    if os.path.isdir(run_dir):
        remove_stale(run_dir, log)  # a process killed while saving leaves atomic_write's temporary file
    if args.overwrite and not run.resume and saved_files(run_dir):
        for name in saved_files(run_dir) + ([args.logFile] if os.path.exists(log_path) else []):
            os.remove(os.path.join(run_dir, name))
        notice(f"--overwrite: removed the earlier run's checkpoints and log from {run_dir}.")
    lines = run.log_lines
    if lines is None and run.resume:
        lines = log_lines_up_to(log_path, run.start_epoch)
    # The log is rewritten from what the checkpoint knew: rows of epochs trained after it was saved
    # (by a run killed before its next save) are dropped, and come back when those epochs are redone.
    lines = lines or log_header(params)
    if run.resume:  # a new run's log (and folder) appear with its first complete epoch
        write_log(log_path, lines)
    return lines


def save(args, spec, run, model, epoch, per_iter, run_dir, log_lines, mean):
    """Rank 0 after each epoch: model_N.pth on the original's schedule, checkpoint.pth, log.txt.
    Both checkpoints are self-contained: the network, dataset and input mean travel with the weights."""
    weights = self_contained(model.state_dict(), network_of(args), args.dataset, mean, epoch + 1,  # no `module.`
                             spec.class_names, spec.palette)
    # Order matters for a kill between two writes: model_N.pth before checkpoint.pth (a resume redoes
    # epoch N and rewrites it), log.txt after (a resume rewrites it from the checkpoint's copy).
    if epoch % 20 == 0 or epoch > args.max_epochs - 10:  # the original's save policy, {"epoch", "model"} kept
        save_checkpoint(weights, os.path.join(run_dir, f"model_{epoch + 1}.pth"))
    state = {**weights, "optimizer": run.optimizer.state_dict(),
             "iteration": (epoch + 1) * per_iter, "seed": run.seed, "args": vars(args), "log": log_lines}
    if run.scaler.is_enabled():
        state["scaler"] = run.scaler.state_dict()
    save_checkpoint(state, os.path.join(run_dir, "checkpoint.pth"))
    write_log(os.path.join(run_dir, args.logFile), log_lines)
