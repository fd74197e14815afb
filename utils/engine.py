"""Training (and the validation it runs), shared by the Cityscapes and CamVid scripts.

Each dataset script passes its DatasetSpec (dataset/specs.py); nothing here depends on the dataset.
"""
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn

from dataset.datasets import EvalDataset, TrainDataset, read_list
from dataset.inform import get_inform
from model import build_model, count_parameters, run_name
from utils import dist as du
from utils.checkpoint import load_weights, read_checkpoint, save_checkpoint
from utils.cli import check_writable_dir, select_device
from utils.errors import UserError
from utils.metric import ConfusionMatrix
from utils.optim import build_optimizer, poly_lr, set_lr
from utils.progress import Progress


def log(*args):
    """Rank 0 alone prints."""
    if not du.is_distributed() or du.dist.get_rank() == 0:
        print(*args, flush=True)


def loader_for(dataset, batch_size, num_workers, device, sampler=None, shuffle=False, drop_last=False):
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, shuffle=shuffle if sampler is None else False,
        num_workers=num_workers, pin_memory=device.type == "cuda", drop_last=drop_last)


def build_and_load(args, device, path=None, ckpt=None):
    try:
        model = build_model(args.model, args.classes, M=args.M, N=args.N)
    except ValueError as e:
        raise UserError(f"--model/--M/--N: {e}.") from None
    ckpt = load_weights(model, path, "--resume", ckpt) if path else {}
    return model.to(device), ckpt


# ----------------------------------------------------------------------------------------- inference

@torch.inference_mode()
def predict_batches(model, loader, device):
    """Yield (pred (B, H, W) int64 on the device, label batch on the device, indices) per batch."""
    model.eval()
    for images, labels, indices in loader:
        images = images.to(device, non_blocking=True)
        pred = model(images).argmax(1)
        yield pred, labels.to(device, non_blocking=True), indices


def validate(model, samples, mean, args, device, rank=0, world=1):
    """mIoU over `samples` (batch 1, full resolution); ranks split the list, the confusion matrix is summed."""
    dataset = EvalDataset(samples, mean, args.classes, args.ignore_label)
    subset = torch.utils.data.Subset(dataset, list(range(rank, len(dataset), world)))
    loader = loader_for(subset, 1, args.num_workers, device)
    conf = ConfusionMatrix(args.classes, args.ignore_label, device)
    bar = Progress(len(subset), "validation")
    for i, (pred, label, _) in enumerate(predict_batches(model, loader, device), 1):
        conf.update(pred, label)
        if rank == 0:
            bar.update(i)
    conf.all_reduce()
    return conf.compute()


# ------------------------------------------------------------------------------------------ training

def train_one_epoch(model, loader, criterion, optimizer, device, epoch, args, it0, max_it, ignore_label):
    """One epoch; returns (mean loss, train confusion matrix, last lr). Syncs with the host only to log."""
    model.train()
    conf = ConfusionMatrix(args.classes, ignore_label, device)
    loss_sum = torch.zeros((), device=device)
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    bar = Progress(len(loader), f"epoch {epoch + 1}/{args.max_epochs}")
    is_main = not du.is_distributed() or du.dist.get_rank() == 0
    lr = args.lr
    for i, (images, labels) in enumerate(loader):
        it = it0 + i
        lr = poly_lr(args.lr, it, max_it)
        set_lr(optimizer, lr)
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        out = model(images)
        aux = None
        if isinstance(out, tuple):  # models with auxiliary heads return (logits, aux) in training
            out, aux = out
        loss = criterion(out, labels)
        if aux is not None:
            loss = loss + du.unwrap(model).aux_loss(aux, labels, ignore_label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            loss = loss.detach()
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), torch.full_like(first_bad, i), first_bad)
            loss_sum += loss
            conf.update(out.argmax(1), labels)
        if (i + 1) % 10 == 0 or i + 1 == len(loader):
            check_finite(first_bad, epoch)
            if is_main:
                bar.update(i + 1, f"loss {loss_sum.item() / (i + 1):.4f} lr {lr:.2e}")
    check_finite(first_bad, epoch)
    total = du.all_reduce_sum(torch.stack([loss_sum, torch.tensor(float(len(loader)), device=device)]))
    conf.all_reduce()
    return (total[0] / total[1]).item(), conf, lr


def check_finite(first_bad, epoch):
    bad = first_bad.item()
    if bad >= 0:
        raise UserError(f"the training loss became NaN/inf at epoch {epoch + 1}, iteration {bad + 1}; training "
                        f"stopped and the last complete checkpoint was kept (try a lower --lr, check the labels).")


def resolve_resume(resume, run_dir):
    if resume != "auto":
        return resume
    path = os.path.join(run_dir, "checkpoint.pth")
    return path if os.path.exists(path) else None


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def train(args, spec):
    """The original training recipe; returns a summary dict (run folder, last mIoU values)."""
    device, gpu_ids = select_device(args)
    rank, world = du.init_distributed(device)
    try:
        return _train(args, spec, device, gpu_ids, rank, world)
    finally:
        du.cleanup()


def _train(args, spec, device, gpu_ids, rank, world):
    if device.type == "cuda":
        device = torch.device(f"cuda:{gpu_ids[du.local_rank()] if world > 1 else gpu_ids[0]}")
        torch.cuda.set_device(device)
        if world == 1 and len(gpu_ids) > 1:
            log(f"notice: --gpus {args.gpus} lists {len(gpu_ids)} GPUs; this single process trains on "
                f"GPU {gpu_ids[0]} (launch with torchrun to use all of them).")
    if args.batch_size % world:
        raise UserError(f"--batch_size {args.batch_size} is the total over {world} processes and must divide "
                        f"evenly among them.")
    hardware = f"gpu{max(world, 1)}" if device.type == "cuda" else "cpu"
    run_dir = os.path.join(args.savedir, args.dataset, run_name(args, hardware))
    if rank == 0:
        check_writable_dir(run_dir, "--savedir")

    train_samples = read_list(args.train_data_list, args.data_dir, True, "--train_data_list")
    val_samples = read_list(args.val_data_list, args.data_dir, True, "--val_data_list") if args.val_data_list else []
    if rank == 0:
        inform = get_inform(args.inform_data_file, args.data_dir, args.dataset_list, args.classes,
                            args.ignore_label, log)
    du.barrier()
    if rank != 0:
        inform = get_inform(args.inform_data_file, args.data_dir, args.dataset_list, args.classes,
                            args.ignore_label, log)

    resume = resolve_resume(args.resume, run_dir) if args.resume else None
    ckpt = read_checkpoint(resume) if resume else {}
    seed = args.seed if args.seed is not None else ckpt.get("seed") if isinstance(ckpt, dict) else None
    if seed is None:
        seed = int(torch.randint(0, 2 ** 31 - 1, ()).item())
    if world > 1:  # every rank needs the same seed for the same shuffling and augmentation
        seed = int(du.all_reduce_sum(torch.tensor([seed if rank == 0 else 0], device=device)).item())
    seed_everything(seed + rank)  # before building the model: its initialisation is part of the run
    model, ckpt = build_and_load(args, device, resume, ckpt)
    optimizer = build_optimizer(model, args.lr)
    start_epoch = 0
    if resume:
        start_epoch = int(ckpt.get("epoch", 0))
        if "optimizer" in ckpt:
            optimizer.load_state_dict(ckpt["optimizer"])
        else:
            log(f"notice: {resume} holds no optimizer state (an original-release checkpoint?); Adam restarts.")
        if "rng" in ckpt and world == 1:
            torch.set_rng_state(ckpt["rng"])
        log(f"resumed from {resume} at epoch {start_epoch}")

    if world > 1:
        ddp_kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
        model = nn.parallel.DistributedDataParallel(model, **ddp_kwargs)

    crop = args.input_size
    dataset = TrainDataset(train_samples, inform["mean"], crop, args.classes, args.ignore_label,
                           scale=args.random_scale, mirror=args.random_mirror, seed=seed)
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    loader = loader_for(dataset, args.batch_size // world, args.num_workers, device, sampler=sampler, drop_last=True)
    if len(loader) == 0:
        raise UserError(f"--train_data_list {args.train_data_list} has {len(dataset)} images, fewer than "
                        f"--batch_size {args.batch_size}; lower --batch_size.")
    per_iter = len(loader)
    max_it = args.max_epochs * per_iter
    weight = torch.from_numpy(inform["classWeights"]).to(device)
    criterion = nn.CrossEntropyLoss(weight=weight, ignore_index=args.ignore_label)  # NLL of log_softmax

    params = count_parameters(model)
    log_path = os.path.join(run_dir, args.logFile)
    if rank == 0:
        log(f"run folder {run_dir}; {params:,} parameters; seed {seed}; device {device}"
            f"{f' x {world} processes' if world > 1 else ''}; {len(dataset)} training images, "
            f"{per_iter} iterations per epoch")
        if not (resume and os.path.exists(log_path)):
            os.makedirs(run_dir, exist_ok=True)
            with open(log_path, "w") as f:
                f.write(f"Parameters: {params}\n")
                f.write("Epoch\t\tLoss(Tr)\t\tmIOU (tr)\t\tmIOU (val)\t\tlr\n")

    summary = {"run_dir": run_dir, "seed": seed, "epochs": start_epoch}
    for epoch in range(start_epoch, args.max_epochs):
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        start = time.perf_counter()
        loss, conf, lr = train_one_epoch(model, loader, criterion, optimizer, device, epoch, args,
                                         epoch * per_iter, max_it, args.ignore_label)
        train_miou = conf.compute()["mIoU"]
        val_miou = None
        if val_samples and (epoch % args.val_interval == 0 or epoch == args.max_epochs - 1):
            val_miou = validate(du.unwrap(model), val_samples, inform["mean"], args, device, rank, world)["mIoU"]
        if rank == 0:
            state = {"epoch": epoch + 1, "model": du.unwrap(model).state_dict(),
                     "optimizer": optimizer.state_dict(), "iteration": (epoch + 1) * per_iter,
                     "seed": seed, "args": vars(args), "rng": torch.get_rng_state()}
            save_checkpoint(state, os.path.join(run_dir, "checkpoint.pth"))
            if epoch % 20 == 0 or epoch > args.max_epochs - 10:  # the original's save policy and format
                save_checkpoint({"epoch": epoch + 1, "model": state["model"]},
                                os.path.join(run_dir, f"model_{epoch + 1}.pth"))
            row = f"{epoch + 1}\t\t{loss:.4f}\t\t{train_miou:.4f}\t\t"
            row += (f"{val_miou:.4f}\t\t" if val_miou is not None else "") + f"{lr:.7f}\n"
            with open(log_path, "a") as f:
                f.write(row)
            log(f"epoch {epoch + 1}/{args.max_epochs}: loss {loss:.4f}, train mIoU {train_miou:.4f}"
                + (f", val mIoU {val_miou:.4f}" if val_miou is not None else "")
                + f", lr {lr:.2e}, {time.perf_counter() - start:.1f} s")
        summary.update(epochs=epoch + 1, loss=loss, train_mIoU=train_miou)
        if val_miou is not None:
            summary["val_mIoU"] = val_miou
    return summary
