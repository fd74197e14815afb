"""One distributed helper: torchrun's environment -> a process group; a plain single process otherwise."""
import os

import torch.distributed as dist


def init_distributed(device):
    """Join the process group torchrun described (RANK, WORLD_SIZE, ...); return (rank, world_size)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def local_rank():
    return int(os.environ.get("LOCAL_RANK", 0))


def is_distributed():
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(tensor):
    if is_distributed():
        dist.all_reduce(tensor)
    return tensor


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
