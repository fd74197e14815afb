"""Printing in a run of one or many processes: rank 0 alone speaks, so a message appears once."""
import os

import torch.distributed as dist


def rank():
    """This process's rank: the process group's once joined, torchrun's RANK before that, else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0))


def log(*args):
    """Rank 0 alone prints."""
    if rank() == 0:
        print(*args, flush=True)


def notice(text):
    """A note or warning that does not stop the run: "notice: " and the sentence, from rank 0 alone, so that every
    script's notes read alike (and a test or a user can grep them)."""
    log(f"notice: {text}")
