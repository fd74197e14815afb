"""One distributed helper: torchrun's environment -> a process group; a plain single process otherwise.

Launched plainly with several GPUs in --gpus, training starts one process per GPU itself (spawn()),
each with the environment torchrun would give it, so the same code path serves both launchers.
"""
import os
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import ProcessException

from utils.errors import STOP_AFTER_S, UserError, watch_for_stops

# The ranks wait in init_process_group while rank 0 computes the dataset statistics of a first run (minutes
# for Cityscapes trainval, see engine/train.py); the same timeout then bounds a collective that hangs.
INIT_TIMEOUT = timedelta(minutes=60)


def launched_by_torchrun():
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def spawn_count(device, gpu_ids):
    """How many processes to start for a plain launch: one per listed GPU when there are several."""
    if device.type != "cuda" or len(gpu_ids) < 2 or launched_by_torchrun():
        return 0
    return len(gpu_ids)


def process_device(device, gpu_ids):
    """This process's device: under torchrun the GPU of its local rank, from --gpus when it lists one
    per local process, else from all visible GPUs (torchrun's usual cuda:LOCAL_RANK); cuda:0 where the
    launcher shows each process its own single GPU (srun --gpus-per-task=1)."""
    if device.type != "cuda":
        return device
    if launched_by_torchrun():
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
        visible = torch.cuda.device_count()
        ids = gpu_ids if len(gpu_ids) >= per_node else list(range(visible))
        if visible == 1:
            ids = [0] * per_node
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
            dist.init_process_group(backend="nccl", device_id=device, timeout=INIT_TIMEOUT)
        else:
            dist.init_process_group(backend="gloo", timeout=INIT_TIMEOUT)
        if dist.get_world_size() > 1:
            watch_for_stops()
    return dist.get_rank(), dist.get_world_size()


def host_store(world):
    """The key-value store spawn()'s processes meet through, hosted here as torchrun's agent hosts its own:
    on the user's MASTER_PORT (a busy one is tried once more a second later, when a run that just ended may
    have freed it), else on a port the system picks while binding it (no other program can take it first)."""
    port = os.environ.get("MASTER_PORT", "0")
    if not port.isdigit() or int(port) > 65535:
        raise UserError(f"MASTER_PORT={port} is not a port number; set a free port (1024-65535) or unset it.")
    for attempt in (1, 2):
        try:
            return dist.TCPStore("127.0.0.1", int(port), world, is_master=True, wait_for_workers=False)
        except dist.DistNetworkError:
            if attempt == 2:
                raise UserError(f"MASTER_PORT={port} is in use by another program; set a free port or unset "
                                f"MASTER_PORT (a free one is then picked).") from None
            time.sleep(1)


def _worker(rank, world, port, results, fn, fn_args):
    # TORCHELASTIC_USE_AGENT_STORE: what torchrun tells its workers; env:// then connects every rank as a
    # client of the store spawn() hosts, instead of rank 0 binding MASTER_PORT itself.
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world), TORCHELASTIC_USE_AGENT_STORE="True")
    try:
        out = fn(*fn_args)
    except UserError as e:
        results.put(("error", rank, str(e)))
        raise SystemExit(2) from None  # a non-zero exit makes spawn stop the other processes
    if rank == 0:
        results.put(("ok", rank, out))


def spawn(fn, nprocs, *fn_args):
    """Run fn(*fn_args) in `nprocs` new processes on this machine, as torchrun --nproc_per_node would
    (RANK = LOCAL_RANK = 0..nprocs-1, MASTER_PORT honoured); return rank 0's result.

    When one fails, or on Ctrl-C, the others are terminated and killed STOP_AFTER_S later: a process
    blocked in a collective would otherwise wait for NCCL's watchdog (10 minutes)."""
    store = host_store(nprocs)
    results = mp.get_context("spawn").SimpleQueue()
    context = mp.spawn(_worker, args=(nprocs, store.port, results, fn, fn_args), nprocs=nprocs, join=False)
    try:
        while not context.join(grace_period=STOP_AFTER_S):
            pass
    except ProcessException:
        errors = [item for item in _drain(results) if item[0] == "error"]
        if errors:  # a UserError's one sentence rather than a child's traceback
            _, rank, message = errors[0]
            shared = len(errors) == nprocs and len({m for _, _, m in errors}) == 1
            raise UserError(message, rank=None if shared else rank) from None
        raise
    except BaseException:  # Ctrl-C above all
        stop(context.processes)
        raise
    finally:
        del store  # frees the port now, not when a traceback that holds this frame goes away
    return [out for status, rank, out in _drain(results) if status == "ok"][0]


def _drain(queue):
    items = []
    while not queue.empty():
        items.append(queue.get())
    return items


def stop(processes, after_s=STOP_AFTER_S):
    """Terminate `processes`, and kill those still alive `after_s` seconds later (one stuck in C++ code,
    such as a NCCL wait, never runs Python's signal handling)."""
    for p in processes:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + after_s
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in processes:
        if p.is_alive():
            p.kill()
            p.join()


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
