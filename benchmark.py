"""Parameters, FLOPs, latency, throughput and peak memory of CGNet in each inference mode.

    python benchmark.py --all                              # every mode at 1x3x1024x2048
    python benchmark.py --mode exact compile --json bench.json
    python benchmark.py --device cuda --all --input_size 1024,2048
    python benchmark.py --all --checkpoint checkpoint/cityscapes/model_cityscapes_train_on_trainset.pth \
        --image data/cityscapes/leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png
    python benchmark.py --all --keep_cpu_memory          # glibc keeps freed memory: no page faults
    python benchmark.py --mode exact --scripts_default   # + what the eval scripts run on CPUs (in --all)
    python benchmark.py --all --clock cpu --threads 1    # on a CPU shared with other jobs
    python benchmark.py --mode exact onnxruntime         # ONNX Runtime (CPU) on the exported network
    python benchmark.py --mode openvino openvino_int8 onnxruntime_int8 --input_size 360,640   # CPU runtimes
    python benchmark.py --checkpoint cgnet_int8.xml --input_size 360,640   # an exported file (.onnx, .xml)

Modes run in rounds (every mode once per round, in a shuffled order), so a load that comes and goes
falls on all of them alike; the speed-up is the median over rounds of eager's time / the mode's time.
With random weights the argmax agreement says little (such a network flips pixels when only its
input is rounded to bf16, and the output says how many): give trained weights and a real image.
"""
import argparse
import os
import platform
import random
import statistics
import tempfile
import threading
import time
import warnings

import cv2
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from dataset.datasets import load_image, normalize, to_tensor
from dataset.specs import CITYSCAPES
from engine.checkpoint import build_for_inference, input_mean, network_of
from engine.exported import compile_openvino, is_exported, load_exported, onnxruntime_session
from model import MODELS, build_model, count_parameters
from model.inference import MODES, Predictor, fold_bn, is_exact, parse_mode
from utils.device import keep_cpu_memory
from utils.args import non_negative_int, positive_int, size_pair
from utils.errors import UserError, run_cli
from utils.files import check_writable_file, save_json
from dataset.synthetic import street_scene

NOTE = "Latency is wall-clock per forward pass (input to logits at the input's size, no argmax)."
SYNC_NOTE = ("On CUDA every timed call ends with torch.cuda.synchronize(): without it a timing measures only "
             "kernel launches (the original README's 20 ms per 1024x2048 image, against 56.8 ms synchronised).")
ORT_MEMORY_NOTE = ("onnxruntime's peak MB reads 0: ONNX Runtime allocates its memory in its own arena when the "
                   "session is created, outside what this column measures during the call.")


def notes(device):
    """The latency note, with the synchronisation sentence on CUDA runs only."""
    return f"{NOTE} {SYNC_NOTE}" if device.type == "cuda" else NOTE
FLOPS_NOTE = ("FLOPs as torch.utils.flop_counter.FlopCounterMode counts them: convolutions and linear layers "
              "only, one multiply-add = 2 FLOPs (GMACs = GFLOPs / 2); BN, PReLU, pooling and the upsampling "
              "are not counted.")
TF32_NOTE = ("TF32: off in the exact modes, eager included (full fp32 convolutions); "
             "the bf16/fp16 modes run with torch's setting (cudnn.allow_tf32={}); 'tf32' per mode in --json.")
PAPER_FLOPS_SIZE = (360, 640)  # the paper's 3x640x360 (W x H): 6.0 G


def mode_name(text):
    if text in RUNTIMES:
        return text
    try:
        parse_mode(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


SCRIPTS_DEFAULT = "default (eval)"
ONNXRUNTIME = "onnxruntime"
# Not torch modes: the network exported and run by ONNX Runtime or OpenVINO on the CPU (RuntimePredictor).
RUNTIMES = (ONNXRUNTIME, "onnxruntime_int8", "openvino", "openvino_bf16", "openvino_int8", "openvino_int8_bf16")
CALIBRATION_SCENES = 8  # synthetic street scenes the int8 modes are calibrated on, at the input size
FILE, FILE_BF16 = "file", "file_bf16"  # --checkpoint of an exported file: as it runs in the scripts, and --amp bf16


class RuntimePredictor:
    """A mode of RUNTIMES: the BN-folded network exported to ONNX (as tools/export_onnx.py does, but without its
    uint8 preprocessing and argmax, so that every mode gets the same float input) and run on the CPU by ONNX
    Runtime (int8: quantize_static, QDQ) or OpenVINO (f32 pinned, or bf16; int8: NNCF post-training
    quantization), with torch's thread count; int8 calibrated on `calibration` (float (1, 3, H, W) inputs).
    float (B, 3, H, W) -> logits, like Predictor."""

    def __init__(self, model, device, mode, calibration):
        if device.type != "cpu":
            raise RuntimeError(f"the {mode} mode runs on the CPU only")
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter
            path = os.path.join(tmp, "model.onnx")
            torch.onnx.export(fold_bn(model), (torch.zeros(1, 3, 64, 128),), path, input_names=["x"],
                              output_names=["logits"], dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}},
                              opset_version=17, dynamo=False)
            samples = [{"x": c.numpy()} for c in calibration]
            if mode == "onnxruntime_int8":
                from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

                class Reader(CalibrationDataReader):
                    def __init__(self):
                        self.items = iter(samples)

                    def get_next(self):
                        return next(self.items, None)
                quantize_static(path, os.path.join(tmp, "int8.onnx"), Reader(), quant_format=QuantFormat.QDQ)
                path = os.path.join(tmp, "int8.onnx")
            if mode.startswith(ONNXRUNTIME):
                session = onnxruntime_session(path, "--mode")
                self.run = lambda x: session.run(None, {"x": x})[0]
                return
            import openvino
            ir = openvino.convert_model(path)
            if "int8" in mode:
                import nncf
                ir = nncf.quantize(ir, nncf.Dataset(samples, lambda item: item["x"]), subset_size=len(samples))
            request = compile_openvino(ir, "bf16" if mode.endswith("bf16") else "none").create_infer_request()
            self.run = lambda x: request.infer({0: x})[0].copy()

    def __call__(self, x):
        return torch.from_numpy(self.run(np.ascontiguousarray(x.cpu().numpy())))


def calibration_scenes(h, w, mean, seed):
    """CALIBRATION_SCENES synthetic street scenes at H x W, preprocessed as the scripts do."""
    rng = np.random.default_rng(seed)
    mean = np.asarray(mean, np.float32)
    return [to_tensor(normalize(np.ascontiguousarray(street_scene(rng, h, w)[0][:, :, ::-1]), mean))[None]
            for _ in range(CALIBRATION_SCENES)]


def get_args_parser():
    parser = argparse.ArgumentParser(description="Benchmark CGNet inference modes (see utils/inference.py).")
    parser.add_argument("--model", choices=MODELS, default="CGNet", help="network to measure")
    parser.add_argument("--input_size", type=size_pair, default=(1024, 2048), help="H,W (default 1024,2048)")
    parser.add_argument("--batch_size", type=positive_int, default=1, help="images per forward pass")
    parser.add_argument("--classes", type=positive_int, default=19, help="output classes (Cityscapes: 19)")
    parser.add_argument("--M", type=positive_int, default=3, help="CG blocks at 1/4 resolution (stage 2)")
    parser.add_argument("--N", type=positive_int, default=21, help="CG blocks at 1/8 resolution (stage 3)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu",
                        help="where to run (default: cuda when a GPU is visible, else cpu)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--mode", type=mode_name, nargs="+", default=None,
                       help=f"presets ({', '.join(MODES)}), features joined by '+', or a CPU runtime "
                            f"({', '.join(RUNTIMES)}; int8 calibrated on {CALIBRATION_SCENES} synthetic street "
                            "scenes); eager is always run as the baseline (default: eager and exact)")
    which.add_argument("--compare", action="store_true",
                       help="the paper's Tables 9/10 on this machine: every --model choice in eager fp32 "
                            "(parameters, GFLOPs at 3x640x360, latency, fps, peak memory), one run")
    which.add_argument("--all", action="store_true",
                       help="every preset (fp16 is left out on the CPU, where it is emulated and very slow)")
    parser.add_argument("--warmup", type=non_negative_int, default=None,
                        help="untimed calls per mode after the first (compiling) one (default: cpu 1, cuda 10)")
    parser.add_argument("--runs", type=positive_int, default=None, help="timed rounds (default: cpu 5, cuda 50)")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: latency; cpu: this process's CPU time per call (user + sys, all threads), "
                             "which other processes on a shared machine hardly change; with --threads 1 it "
                             "is the latency of an idle machine")
    parser.add_argument("--scripts_default", action="store_true",
                        help=f"on the CPU, also measure '{'default (eval)'}': what the eval/test scripts run there "
                             "(exact + glibc keeping freed memory), last, after the other modes (on with --all)")
    parser.add_argument("--keep_cpu_memory", action="store_true",
                        help="keep freed memory in the process (glibc mallopt): no page faults on fresh "
                             "activations; see utils.device.keep_cpu_memory")
    parser.add_argument("--checkpoint", default="",
                        help="weights to load (default: random initialisation); an exported .onnx/.xml is timed as "
                             "the scripts run it (and, for .xml, with bf16), with the first as the baseline")
    parser.add_argument("--image", default="",
                        help="measure on this image (resized to --input_size, Cityscapes mean subtracted) instead "
                             "of a smooth random one; with trained weights the argmax agreement means something")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and synthetic input")
    parser.add_argument("--json", default="", help="write every figure to this JSON file")
    return parser


def smooth_image(batch, h, w, seed):
    """A fixed smooth random image in the range of mean-subtracted pixels: regions, not per-pixel noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, max(2, h // 32), max(2, w // 32), generator=g) * 200 - 100
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)


@torch.no_grad()
def calibrate_bn(model, images):
    """Set every BN's running statistics to those of `images`, as training would have.

    With random weights and the default statistics (mean 0, variance 1) activations grow from block to
    block and the logits are so ill-conditioned that bf16 rounding flips the argmax of most pixels;
    a trained network is normalised, and this makes a random one normalised too.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one pass gives the statistics of this batch
    model.train()
    model(images)
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    return model.eval()


def real_image(path, batch, h, w, mean):
    image = cv2.resize(load_image(path), (w, h), interpolation=cv2.INTER_LINEAR)
    return to_tensor(normalize(image, np.asarray(mean, np.float32))).expand(batch, 3, h, w)


def count_gflops(model, h, w):
    """GFLOPs of one forward at 1x3xHxW, counted on the meta device (nothing is computed)."""
    import copy
    meta = copy.deepcopy(model).to("meta").eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(torch.empty(1, 3, h, w, device="meta"))
    return counter.get_total_flops() / 1e9


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


def machine_info(device, args):
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        "keep_cpu_memory": args.keep_cpu_memory,
    }
    if hasattr(os, "getloadavg"):
        info["load_average_start"] = os.getloadavg()[0]
    return info


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(predict, x, device, clock=time.perf_counter):
    sync(device)
    start = clock()
    out = predict(x)
    sync(device)
    return clock() - start, out


def measure(predict, x, device, warmup):
    """Prepare a timing row: the first (compiling) call, `warmup` untimed calls, and the peak memory of one
    more call. Returns (row, output of the first call)."""
    first, out = timed(predict, x, device)
    for _ in range(warmup):
        predict(x)
    with MemoryPeak(device) as mem:
        predict(x)
    return {"first_call_s": first, "peak_memory_mb": mem.peak_mb, "times_s": []}, out


def time_rounds(predictors, rows, x, device, clock, runs):
    """`runs` timed rounds, every predictor once per round in a shuffled order: a load that comes and goes
    falls on all of them alike."""
    for _ in range(runs):
        for name in random.sample(list(predictors), len(predictors)):
            rows[name]["times_s"].append(timed(predictors[name], x, device, clock)[0])


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


def select_modes(args, device):
    if args.all:
        modes = [m for m in MODES if not (device.type == "cpu" and m == "fp16")]
    else:
        modes = args.mode or ["eager", "exact"]
    modes = ["eager"] + [m for m in dict.fromkeys(modes) if m != "eager"]
    return modes


def main(args):
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu.")
    if device.type == "cuda" and args.clock == "cpu":
        raise UserError("--clock cpu measures CPU work, not GPU kernels: use --clock wall with --device cuda.")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.json:
        check_writable_file(args.json, "--json")  # before minutes of measuring, not after
    if args.threads:
        torch.set_num_threads(args.threads)
    kept = keep_cpu_memory() if args.keep_cpu_memory else False
    if args.keep_cpu_memory and not kept:
        print("note: --keep_cpu_memory needs glibc; running with the default allocator.")
    warmup = args.warmup if args.warmup is not None else (10 if device.type == "cuda" else 1)
    runs = args.runs if args.runs is not None else (50 if device.type == "cuda" else 5)
    h, w = args.input_size
    model = weights = None
    exported = is_exported(args.checkpoint)
    if exported:  # timed as the scripts run it: the file's own runtime, on the CPU
        if device.type != "cpu" or args.compare or args.all or args.mode:
            raise UserError(f"--checkpoint {args.checkpoint} is an exported file: it is timed as it is (and with bf16 "
                            f"for an .xml) on the CPU; leave out --mode/--all/--compare and use --device cpu, or "
                            f"give a .pth checkpoint.")
        weights = load_exported(args.checkpoint, "--checkpoint")[1]
        network = weights.network
        args.model, args.classes = network["name"], network["classes"]
        args.M, args.N = network.get("M", args.M), network.get("N", args.N)
    elif args.checkpoint:  # the network the file records (ours, mmsegmentation's) or its CGNet state_dict tells
        model, weights = build_for_inference(args.checkpoint, "--checkpoint", fallback=network_of(args))
        network = weights.network or network_of(args)
        args.model, args.classes = network["name"], network["classes"]
        args.M, args.N = network.get("M", args.M), network.get("N", args.N)
    if args.image:
        if not os.path.isfile(args.image):
            raise UserError(f"--image {args.image} not found; give an image file or leave --image out.")
        mean = input_mean(weights, args.checkpoint, flag="--checkpoint") if weights else CITYSCAPES.release_mean
        x = real_image(args.image, args.batch_size, h, w, mean).contiguous()
    else:
        x = smooth_image(args.batch_size, h, w, args.seed)
    x = x.to(device)  # once: a timed call measures the network, not a host-to-device copy of its input
    if args.compare:
        return compare(args, device, x, clock, warmup, runs)
    torch.manual_seed(args.seed)
    if model is None and not exported:
        try:
            model = build_model(args.model, args.classes, args.M, args.N)
        except ValueError as e:
            raise UserError(str(e)) from None
        calibrate_bn(model, smooth_image(2, min(h, 256), min(w, 512), args.seed + 1))
    if model is not None:
        model.eval()

    modes = select_modes(args, device) if not exported else [FILE] + [FILE_BF16] * args.checkpoint.endswith(".xml")
    baseline = modes[0]
    mean = weights.mean if weights is not None and weights.mean is not None else CITYSCAPES.release_mean
    calibration = []

    def build(mode):
        if mode in (FILE, FILE_BF16):
            return load_exported(args.checkpoint, "--checkpoint", "bf16" if mode == FILE_BF16 else "none")[0]
        if mode in RUNTIMES:
            if "int8" in mode and not calibration:
                calibration.extend(calibration_scenes(h, w, mean, args.seed + 2))
            return RuntimePredictor(model, device, mode, calibration)
        return Predictor(model, mode, device)
    info = machine_info(device, args)
    summary = {
        "model": args.model, "M": args.M, "N": args.N, "classes": args.classes,
        "input_size": [args.batch_size, 3, h, w],
        "input": args.image or "smooth random image (seeded), mean-subtracted range",
        "weights": args.checkpoint or f"random initialisation (seed {args.seed}), BN statistics from smooth images",
        "parameters": count_parameters(model) if model else None,
        "gflops_paper_size": count_gflops(model, *PAPER_FLOPS_SIZE) if model else None,
        "paper_size": [3, *PAPER_FLOPS_SIZE],
        "gflops_input_size": count_gflops(model, h, w) * args.batch_size if model else None,
        "flops_counting": FLOPS_NOTE, "warmup": warmup, "runs": runs, "clock": args.clock,
        "memory_kind": MemoryPeak(device).kind,
    }

    print(notes(device))
    if model is not None:
        print(f"{args.model} M={args.M} N={args.N}, {args.classes} classes: {summary['parameters']:,} parameters; "
              f"{summary['gflops_paper_size']:.2f} GFLOPs at 3x{PAPER_FLOPS_SIZE[1]}x{PAPER_FLOPS_SIZE[0]} "
              f"(paper: 6.0), {summary['gflops_input_size']:.2f} GFLOPs at {args.batch_size}x3x{h}x{w}")
        print(FLOPS_NOTE)
    else:
        print(f"{args.checkpoint}: {args.model}, {args.classes} classes, {weights.ckpt.get('precision')} "
              f"({FILE}: as the scripts run it, f32 pinned; {FILE_BF16}: with --amp bf16); baseline: {FILE}")
    print(f"device: {info['device_name']} ({device}), torch {info['torch']}, {info['threads']} threads, "
          f"malloc {'kept' if kept else 'default'}; input: {summary['input']}; weights: {summary['weights']}")

    results, predictors, outputs = {}, {}, {}
    for mode in modes:
        runtime = mode in RUNTIMES or mode in (FILE, FILE_BF16)
        row = {"mode": mode, "features": [mode] if runtime else sorted(parse_mode(mode)),
               "exact": mode in (ONNXRUNTIME, "openvino", FILE) if runtime else is_exact(mode)}
        results[mode] = row
        try:
            predict = build(mode)
            timing, out = measure(predict, x, device, warmup)
        except Exception as e:  # a mode the machine cannot run (no compiler for inductor, ...) is reported
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            if mode == baseline:
                raise
            continue
        row.update(timing, tf32=getattr(predict, "tf32", False))
        predictors[mode], outputs[mode] = predict, out.cpu()
    time_rounds(predictors, results, x, device, clock, runs)

    if device.type == "cpu" and not kept and (args.all or args.scripts_default):
        # The eval/test scripts' CPU path is `exact` with glibc told to keep freed memory. That setting is
        # process-wide and cannot be taken back, so it is measured last, after every other mode's rounds.
        keep_cpu_memory()
        name = SCRIPTS_DEFAULT
        predict = Predictor(model, "exact", device)
        timing, out = measure(predict, x, device, warmup)
        results[name] = {"mode": name, "features": sorted(parse_mode("exact")) + ["keep_cpu_memory"], "exact": True,
                         "tf32": predict.tf32, **timing}
        predictors[name], outputs[name] = predict, out.cpu()
        time_rounds({name: predict}, results, x, device, clock, runs)

    # How chaotic the network is: rounding only the input to bf16 (a change far below one grey level)
    # already moves this many argmaxes. bf16 modes cannot be judged more finely than this on these weights.
    summary["argmax_agreement_bf16_rounded_input"] = (
        predictors[baseline](x.bfloat16().float()).cpu().argmax(1) == outputs[baseline].argmax(1)).double().mean().item()

    base_times = results[baseline]["times_s"]
    ref = outputs[baseline]
    ref_pred, scale = ref.argmax(1), ref.abs().max().clamp_min(1e-12)
    for mode, row in results.items():
        if "error" in row:
            continue
        t = row["times_s"]
        row.update(spread(t, args.batch_size, args.clock))
        row.update({
            "speedup_vs_eager": statistics.median(b / m for b, m in zip(base_times, t)),
            "speedup_vs_eager_min": min(base_times) / min(t),
            "argmax_agreement": (outputs[mode].argmax(1) == ref_pred).double().mean().item(),
            "max_abs_diff": (outputs[mode] - ref).abs().max().item(),
            "max_rel_diff": ((outputs[mode] - ref).abs().max() / scale).item(),
        })
        # "exact" is what was measured, not what the mode promises: an exact mode that disagrees with the
        # baseline on a single pixel is not reported as exact.
        row["exact"] = row["exact"] and (mode == baseline or row["argmax_agreement"] == 1.0)
    if hasattr(os, "getloadavg"):
        info["load_average_end"] = os.getloadavg()[0]

    print_table(results, summary["memory_kind"], args.clock, baseline)
    if ONNXRUNTIME in results and "error" not in results[ONNXRUNTIME]:
        print(ORT_MEMORY_NOTE)
    if device.type == "cuda":
        print(TF32_NOTE.format(torch.backends.cudnn.allow_tf32))
    print(f"sensitivity of these weights: {baseline} on the input rounded to bf16 agrees with {baseline} on "
          f"{100 * summary['argmax_agreement_bf16_rounded_input']:.3f}% of pixels.")
    if "load_average_start" in info:
        print(f"load average (1 min) at the start {info['load_average_start']:.2f}, at the end "
              f"{info['load_average_end']:.2f}, on {info['cpu_count']} CPUs: other processes slow some rounds.")
    if args.json:
        report = {"summary": summary, "machine": info, "note": notes(device), "modes": list(results.values())}
        write_json(args.json, report)
    return results


def compare(args, device, x, clock, warmup, runs):
    """Every network of --model in eager fp32 on the same input, timed in interleaved rounds."""
    info = machine_info(device, args)
    rows, predictors = {}, {}
    for name in MODELS:
        torch.manual_seed(args.seed)
        model = build_model(name, args.classes, args.M, args.N).eval()
        predict = Predictor(model, "eager", device)
        timing, _ = measure(predict, x, device, warmup)
        rows[name] = {"model": name, "parameters": count_parameters(model), "tf32": predict.tf32,
                      "gflops_paper_size": count_gflops(model, *PAPER_FLOPS_SIZE), **timing}
        predictors[name] = predict
        print(f"{name}: ready", flush=True)
    time_rounds(predictors, rows, x, device, clock, runs)
    h, w = args.input_size
    print(f"\n{notes(device)}\ndevice: {info['device_name']} ({device}), torch {info['torch']}, {info['threads']} threads; "
          f"input {args.batch_size}x3x{h}x{w}; eager fp32{' (TF32 off)' if device.type == 'cuda' else ''}; "
          f"{runs} timed rounds; {FLOPS_NOTE}")
    print(f"{'model':<8}{'params (M)':>11}{'GFLOPs 640x360':>16}{'median ms':>11}{'p10-p90 ms':>17}{'fps':>8}{'peak MB':>9}")
    for row in rows.values():
        row.update(spread(row["times_s"], args.batch_size, args.clock))
        fps = f"{row['fps']:.2f}" if row["fps"] is not None else "-"
        print(f"{row['model']:<8}{row['parameters'] / 1e6:>11.3f}{row['gflops_paper_size']:>16.2f}"
              f"{row['median_ms']:>11.1f}{row['p10_ms']:>8.1f}-{row['p90_ms']:<8.1f}{fps:>8}"
              f"{row['peak_memory_mb'] if row['peak_memory_mb'] is not None else float('nan'):>9.0f}")
    if args.json:
        report = {"machine": info, "note": NOTE, "flops_counting": FLOPS_NOTE, "input_size": [args.batch_size, 3, h, w],
                  "models": list(rows.values())}
        write_json(args.json, report)
    return rows


def write_json(path, report):
    try:
        save_json(path, report)
    except OSError as e:
        raise UserError(f"cannot write --json {path}: {e.strerror}; choose a writable path.") from None
    print(f"wrote {path}")


def print_table(results, memory_kind, clock="wall", baseline="eager"):
    head = (f"{'mode':<16}{'exact':>6}{'median ms':>11}{'p10-p90 ms':>17}{'min-max ms':>17}{'fps':>8}"
            f"{'speed-up med/min':>18}{'argmax agree':>14}{'max rel diff':>14}{'peak MB':>9}{'1st call s':>11}")
    print(head)
    print("-" * len(head))
    for row in results.values():
        exact = "yes" if row["exact"] else "no"
        if "error" in row:
            print(f"{row['mode']:<16}{exact:>6}  failed: {row['error']}")
            continue
        spread = f"{row['p10_ms']:.1f}-{row['p90_ms']:.1f}", f"{row['min_ms']:.1f}-{row['max_ms']:.1f}"
        speedup = f"{row['speedup_vs_eager']:.2f}x/{row['speedup_vs_eager_min']:.2f}x"
        agree = "baseline" if row["mode"] == baseline else f"{100 * row['argmax_agreement']:.3f}%"
        fps = f"{row['fps']:.2f}" if row["fps"] is not None else "-"
        print(f"{row['mode']:<16}{exact:>6}{row['median_ms']:>11.1f}{spread[0]:>17}{spread[1]:>17}{fps:>8}"
              f"{speedup:>18}{agree:>14}{row['max_rel_diff']:>14.1e}{row['peak_memory_mb']:>9.0f}"
              f"{row['first_call_s']:>11.1f}")
    if clock == "cpu":
        print("times are this process's CPU time per call (all threads), not latency.")
    print(f"speed-up: median over rounds of {baseline}'s time / the mode's, and {baseline}'s fastest / the mode's "
          f"fastest; argmax agreement and max |diff| / max |logit|: against {baseline} on the same input; exact: "
          f"an exact mode that agreed with {baseline} on 100 % of the pixels; "
          f"peak MB: {memory_kind}, above the level before the call.")


if __name__ == "__main__":
    run_cli(main, get_args_parser())
