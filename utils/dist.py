"""One distributed helper: torchrun's environment -> a process group; a plain single process otherwise.

Launched plainly with several GPUs in --gpus, training starts one process per GPU itself (spawn()),
each with the environment torchrun would give it, so the same code path serves both launchers.
"""
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import ProcessException

from utils.errors import UserError


def launched_by_torchrun():
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def spawn_count(device, gpu_ids):
    """How many processes to start for a plain launch: one per listed GPU when there are several."""
    if device.type != "cuda" or len(gpu_ids) < 2 or launched_by_torchrun():
        return 0
    return len(gpu_ids)


def process_device(device, gpu_ids):
    """This process's device: under torchrun the GPU of its local rank, from --gpus when it lists one
    per local process, else from all visible GPUs (torchrun's usual cuda:LOCAL_RANK)."""
    if device.type != "cuda":
        return device
    if launched_by_torchrun():
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
        ids = gpu_ids if len(gpu_ids) >= per_node else list(range(torch.cuda.device_count()))
        if local_rank() >= len(ids):
            raise UserError(f"torchrun started {per_node} processes per node but only {len(ids)} GPU(s) are "
                            f"visible; start at most one process per GPU (--nproc_per_node).")
        device = torch.device(f"cuda:{ids[local_rank()]}")
    torch.cuda.set_device(device)
    return device


def init_distributed(device):
    """Join the process group torchrun (or spawn) described; return (rank, world_size), (0, 1) if none."""
    if not launched_by_torchrun():
        return 0, 1
    if not dist.is_initialized():
        if device.type == "cuda":
            dist.init_process_group(backend="nccl", device_id=device)
        else:
            dist.init_process_group(backend="gloo")
    return dist.get_rank(), dist.get_world_size()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, results, fn, fn_args):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    try:
        out = fn(*fn_args)
    except UserError as e:
        results.put(("error", str(e)))
        raise SystemExit(2) from None  # a non-zero exit makes spawn stop the other processes
    if rank == 0:
        results.put(("ok", out))


def spawn(fn, nprocs, *fn_args):
    """Run fn(*fn_args) in `nprocs` new processes on this machine, as torchrun --nproc_per_node would
    (a free port, RANK = LOCAL_RANK = 0..nprocs-1); return rank 0's result."""
    results = mp.get_context("spawn").SimpleQueue()
    try:
        mp.spawn(_worker, args=(nprocs, free_port(), results, fn, fn_args), nprocs=nprocs, join=True)
    except ProcessException:
        while not results.empty():  # a UserError's one sentence rather than a child's traceback
            status, message = results.get()
            if status == "error":
                raise UserError(message) from None
        raise
    status, out = results.get()
    return out


def log(*args):
    """Rank 0 alone prints."""
    if rank() == 0:
        print(*args, flush=True)


def rank():
    if is_distributed():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0))


def local_rank():
    return int(os.environ.get("LOCAL_RANK", 0))


def is_distributed():
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(tensor):
    if is_distributed():
        dist.all_reduce(tensor)
    return tensor


def all_reduce_min(tensor):
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return tensor


def broadcast_object(obj):
    """Rank 0's `obj` on every rank (e.g. a checkpoint only rank 0 read from its disk)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_buffers(module):
    """Give every rank rank 0's buffers (BatchNorm running statistics differ per rank after training
    steps; the checkpoint holds rank 0's, and validation must score what is saved)."""
    if is_distributed():
        for b in module.buffers():
            dist.broadcast(b, 0)


def barrier():
    if is_distributed():
        dist.barrier()


def cleanup():
    if is_distributed():
        dist.destroy_process_group()


def unwrap(model):
    """The bare model inside DistributedDataParallel / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)
