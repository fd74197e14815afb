"""Where to compute: the device from --cuda/--gpus, its per-process settings, and the CPU allocator setting."""
import ctypes
import ctypes.util
import os
import sys

import torch

from utils.errors import UserError


def select_device(args, log=print):
    """The GPU named first in --gpus when --cuda is on and one is visible; otherwise the CPU.

    A process started by a launcher (torchrun, SLURM) that sees exactly one GPU uses it as cuda:0, whatever
    --gpus says: such launchers (srun --gpus-per-task=1) show each process its own GPU and nothing else.
    """
    ids_text = args.gpus.strip()
    if not args.cuda or not ids_text:
        return torch.device("cpu"), []
    try:
        ids = [int(x) for x in ids_text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--gpus {args.gpus!r} is not a list of GPU ids; use e.g. --gpus 0 or --gpus 0,1 "
                        f"(or --gpus '' for the CPU).") from None
    twice = [i for i in ids if ids.count(i) > 1]
    if twice:
        raise UserError(f"--gpus {args.gpus} names GPU {twice[0]} twice; list each GPU once "
                        f"(e.g. --gpus 0,1), one process runs per listed GPU.")
    if not torch.cuda.is_available():
        log("notice: no GPU is visible; running on the CPU.")
        return torch.device("cpu"), []
    count = torch.cuda.device_count()
    if count == 1 and "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return torch.device("cuda:0"), [0]
    missing = [i for i in ids if not 0 <= i < count]
    if missing:
        raise UserError(f"--gpus {args.gpus} names GPU {missing[0]}, but only {count} GPU(s) are visible "
                        f"(ids 0..{count - 1}); give ids from that range, or --cuda false for the CPU.")
    return torch.device(f"cuda:{ids[0]}"), ids


def use_device(device):
    """Per-process settings for computing on `device`.

    Subnormal floats count as zero (flush-to-zero and denormals-are-zero, on x86 and ARM): trained CGNets are
    full of them (half the weights of the authors' CamVid model, and activations), and Intel CPUs compute with
    them about a hundred times slower; numbers below 1.2e-38 change no prediction. Threads inherit the setting
    when they start, so the scripts call this before their first torch operation starts torch's thread pool.

    set_device: helper threads (pinned-memory copies of the DataLoader) otherwise open a CUDA context on
    GPU 0 whatever GPU the model runs on. cudnn.benchmark: training crops and evaluation images have a
    fixed size, so timing the convolution algorithms once pays off, as in the original.
    """
    torch.set_flush_denormal(True)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True


@torch.no_grad()
def flush_subnormals(model):
    """Zero the weights too small for a normal float; returns `model`. Weight decay leaves many (the authors'
    CamVid model: 256,385 of its 494,258) and Intel CPUs multiply by them about a hundred times slower; they change
    no logit. Done also where use_device has the CPU treat them as zero: that changes the arithmetic, not the
    weights an export writes. Inference only: training keeps its weights bit for bit."""
    for t in [*model.parameters(), *model.buffers()]:
        if t.is_floating_point():
            t.masked_fill_(t.abs() < torch.finfo(t.dtype).tiny, 0)
    return model


M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_cpu_memory():
    """Make glibc malloc keep freed memory instead of returning it to the kernel (process-wide).

    By default glibc serves large blocks (CGNet's activations at 1024x2048 are 24-150 MB) with
    fresh mmap()s, and every page of each one faults on first touch; on some machines that costs
    more than the computation. Returns False where libc is not glibc. Memory is not given back
    until the process ends; the same effect without code: MALLOC_MMAP_MAX_=0
    MALLOC_TRIM_THRESHOLD_=<big> in the environment, or LD_PRELOAD of jemalloc / tcmalloc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))


def cpu_info():
    """(model name, set of instruction-set flags) of this CPU from /proc/cpuinfo, the one place it is read; None for
    what it does not say (no /proc/cpuinfo: not Linux)."""
    name = flags = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name is None:
                    name = value.strip()
                elif key.strip() == "flags" and flags is None:
                    flags = set(value.split())
    except OSError:
        pass
    return name, flags


def native_bf16():
    """Whether this CPU computes bf16 natively (AVX512_BF16 or AMX-BF16), for torch's autocast and OpenVINO alike:
    elsewhere bf16 is emulated, which measured about 13x slower than fp32 in torch on an AVX2 host. None where it
    cannot be told."""
    flags = cpu_info()[1]
    return None if flags is None else bool({"avx512_bf16", "amx_bf16"} & flags)


def amp_notice(device, amp):
    """One line for a --amp choice that is slower than fp32 on this CPU, else None."""
    if device.type != "cpu":
        return None
    if amp == "fp16":
        return ("notice: --amp fp16 is several times slower than fp32 on most CPUs (they lack fp16 arithmetic); "
                "--amp none is faster there.")
    if amp == "bf16" and native_bf16() is False:
        return ("notice: this CPU has no native bf16 instructions (avx512_bf16/amx_bf16), so --amp bf16 is emulated "
                "and several times slower than fp32; --amp none is faster here.")
    return None
