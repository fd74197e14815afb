"""Timing and memory of calls, for the benchmark scripts: interleaved rounds, percentiles, peak memory, the machine."""
import os
import platform
import random
import statistics
import threading
import time

import torch

from utils.device import cpu_info


class MemoryPeak:
    """Peak memory of the calls made inside `with`, above what was in use when it began.

    CUDA: torch.cuda.max_memory_allocated. CPU: bytes malloc'ed and not yet freed (glibc
    mallinfo2, which also sees oneDNN's and compiled kernels' buffers), sampled every millisecond
    by a thread; elsewhere the resident set size, sampled the same way.
    """

    def __init__(self, device):
        self.device = device
        self.kind, self._read = self._reader(device)
        self.peak_mb = None

    @staticmethod
    def _reader(device):
        if device.type == "cuda":
            return "cuda max_memory_allocated", torch.cuda.memory_allocated
        try:
            import ctypes

            class MallInfo2(ctypes.Structure):
                _fields_ = [(n, ctypes.c_size_t) for n in
                            ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                             "uordblks", "fordblks", "keepcost")]

            mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
            mallinfo2.restype = MallInfo2

            def malloced():
                info = mallinfo2()
                return info.uordblks + info.hblkhd
            return "cpu malloc in use (glibc mallinfo2, sampled)", malloced
        except (OSError, AttributeError):
            pass
        if os.path.exists("/proc/self/statm"):
            page = os.sysconf("SC_PAGE_SIZE")

            def rss():
                with open("/proc/self/statm") as f:
                    return int(f.read().split()[1]) * page
            return "cpu resident set size (sampled)", rss
        return "unavailable", None

    def __enter__(self):
        if self._read is None:
            return self
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        self._base = self._peak = self._read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.001):
            self._peak = max(self._peak, self._read())

    def __exit__(self, *exc):
        if self._read is None:
            return False
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, self._read())
        self.peak_mb = (peak - self._base) / 2 ** 20
        return False


def machine_info(device, keep_cpu_memory=False):
    cpu = cpu_info()[0] or platform.processor() or platform.machine()
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        "keep_cpu_memory": keep_cpu_memory,
    }
    if hasattr(os, "getloadavg"):
        info["load_average_start"] = os.getloadavg()[0]
    return info


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(call, device, clock=time.perf_counter):
    sync(device)
    start = clock()
    out = call()
    sync(device)
    return clock() - start, out


def measure(call, device, warmup):
    """Prepare a timing row: the first (compiling) call, `warmup` untimed calls, and the peak memory of one
    more call. Returns (row, output of the first call)."""
    first, out = timed(call, device)
    for _ in range(warmup):
        call()
    with MemoryPeak(device) as mem:
        call()
    return {"first_call_s": first, "peak_memory_mb": mem.peak_mb, "times_s": []}, out


def time_rounds(calls, rows, device, clock, runs):
    """`runs` timed rounds, every call once per round in a shuffled order: a load that comes and goes
    falls on all of them alike."""
    for _ in range(runs):
        for name in random.sample(list(calls), len(calls)):
            rows[name]["times_s"].append(timed(calls[name], device, clock)[0])


def spread(times, batch_size, clock):
    """Median, p10, p90, min and max in ms, and frames per second (wall clock only)."""
    return {"median_ms": statistics.median(times) * 1e3, "p10_ms": percentile(times, 0.1) * 1e3,
            "p90_ms": percentile(times, 0.9) * 1e3, "min_ms": min(times) * 1e3, "max_ms": max(times) * 1e3,
            "fps": batch_size / statistics.median(times) if clock == "wall" else None}


def percentile(values, q):
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)
