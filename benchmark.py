"""Parameters, FLOPs, latency, throughput and peak memory of CGNet in each inference mode.

    python benchmark.py --all                              # every mode at 1x3x1024x2048
    python benchmark.py --all --skip_unavailable           # a mode this machine cannot run: a failed row, exit 0
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
    python benchmark.py --train --report docs/speed/train   # the training step per mode (engine/train_bench.py)

A runtime mode times the exported graph (engine.export) as the scripts run it (engine.backend): uint8 BGR in,
the preprocessing and the argmax inside. Modes run in rounds (every mode once per round, in a shuffled order),
so a load that comes and goes
falls on all of them alike; the speed-up is the median over rounds of eager's time / the mode's time.
With random weights the argmax agreement says little (such a network flips pixels when only its
input is rounded to bf16, and the output says how many): give trained weights and a real image.
"""
import argparse
import os
import statistics
import tempfile
import time

import cv2
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from dataset.datasets import load_image, normalize, to_tensor
from dataset.specs import CITYSCAPES
from engine import export, train_bench
from engine.backend import TorchBackend, load
from engine.checkpoint import Weights, network_of
from model import MODELS, build_model, count_parameters
from model.inference import MODES, Predictor, is_exact, parse_mode
from utils.device import keep_cpu_memory, use_device
from utils.args import non_negative_int, positive_int, size_pair
from utils.errors import UserError, run_cli
from utils.progress import plural
from utils.files import check_writable_file, save_json
from utils.log import notice
from utils.report import add_section
from utils.timing import MemoryPeak, machine_info, measure, spread, time_rounds
from dataset.synthetic import street_scene

NOTE = "Latency is wall-clock per forward pass (input to logits at the input's size, no argmax)."
SYNC_NOTE = ("On CUDA every timed call ends with torch.cuda.synchronize(): without it a timing measures only "
             "kernel launches (the original README's 20 ms per 1024x2048 image, against 56.8 ms synchronised).")
ORT_MEMORY_NOTE = ("onnxruntime's peak MB reads 0: ONNX Runtime allocates its memory in its own arena when the "
                   "session is created, outside what this column measures during the call.")
FLOPS_NOTE = ("FLOPs as torch.utils.flop_counter.FlopCounterMode counts them: convolutions and linear layers "
              "only, one multiply-add = 2 FLOPs (GMACs = GFLOPs / 2); BN, PReLU, pooling and the upsampling "
              "are not counted.")
TF32_NOTE = ("TF32: off in the exact modes, eager included (full fp32 convolutions); "
             "the bf16/fp16 modes run with torch's setting (cudnn.allow_tf32={}); 'tf32' per mode in --json.")
PAPER_FLOPS_SIZE = (360, 640)  # the paper's 3x640x360 (W x H): 6.0 G
SCRIPTS_DEFAULT = "default (eval)"
ONNXRUNTIME = "onnxruntime"
# Not torch modes: the network exported (engine.export format) and run on the CPU with this --amp (engine.backend).
RUNTIMES = {ONNXRUNTIME: ("onnx", "none"), "onnxruntime_int8": ("onnx_int8", "none"),
            "openvino": ("openvino", "none"), "openvino_bf16": ("openvino", "bf16"),
            "openvino_int8": ("openvino_int8", "none"), "openvino_int8_bf16": ("openvino_int8", "bf16")}
EXACT_RUNTIMES = (ONNXRUNTIME, "openvino")
CALIBRATION_SCENES = 8  # synthetic street scenes the int8 modes are calibrated on, at the input size
FILE, FILE_BF16 = "file", "file_bf16"  # --checkpoint of an exported file: as it runs in the scripts, and --amp bf16


def notes(device):
    """The latency note, with the synchronisation sentence on CUDA runs only."""
    return f"{NOTE} {SYNC_NOTE}" if device.type == "cuda" else NOTE


def mode_name(text):
    if text in RUNTIMES:
        return text
    try:
        parse_mode(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def get_args_parser():
    parser = argparse.ArgumentParser(description="Benchmark CGNet inference modes (see model/inference.py).")
    parser.add_argument("--model", choices=MODELS, default="CGNet", help="network to measure")
    parser.add_argument("--input_size", type=size_pair, help="H,W (default 1024,2048; --train: 360,360)")
    parser.add_argument("--batch_size", type=positive_int, help="images per forward pass (default 1; --train: 8)")
    parser.add_argument("--classes", type=positive_int, help="output classes (default 19; --train: 11, CamVid's)")
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
    which.add_argument("--train", action="store_true",
                       help="time the training recipe's iteration (CamVid: batch 8 at 360x360, 11 classes, unless "
                            "given) per training mode, with and without data loading, on the CPU")
    which.add_argument("--all", action="store_true",
                       help="every preset (fp16 is left out on the CPU, where it is emulated and very slow) and, on "
                            "the CPU, every runtime whose packages import")
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
    parser.add_argument("--skip_unavailable", action="store_true",
                        help="a mode this machine cannot run (no compiler for torch.compile, a runtime that fails) is "
                             "reported as a failed row and the others are written; without it such a mode is an "
                             "error (exit status 2) after the table, and no --json/--report is written")
    parser.add_argument("--json", default="", help="write every figure to this JSON file")
    parser.add_argument("--report", default="", metavar="FILE",
                        help="add these figures, the machine, its CPU flags, the versions and this command to a report "
                             "(FILE.json and FILE.md; tools/bench_segment.py --report adds end-to-end figures)")
    return parser


def smooth_image(batch, h, w, seed, mean=CITYSCAPES.release_mean):
    """A fixed smooth random image (regions, not per-pixel noise) of whole grey levels, preprocessed as the scripts
    do: every mode, exported graphs included, sees exactly the same pixels."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, max(2, h // 32), max(2, w // 32), generator=g) * 255
    rgb = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    return rgb.round().clamp(0, 255) - torch.as_tensor(np.asarray(mean, np.float32)).view(1, 3, 1, 1)


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


def calibration_scenes(h, w, seed):
    """CALIBRATION_SCENES synthetic street scenes at H x W, (1, H, W, 3) uint8 BGR as the exported graphs take."""
    rng = np.random.default_rng(seed)
    return [np.ascontiguousarray(street_scene(rng, h, w)[0][None, :, :, ::-1]) for _ in range(CALIBRATION_SCENES)]


def count_gflops(model, h, w):
    """GFLOPs of one forward at 1x3xHxW, counted on the meta device (nothing is computed)."""
    import copy
    meta = copy.deepcopy(model).to("meta").eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(torch.empty(1, 3, h, w, device="meta"))
    return counter.get_total_flops() / 1e9


def select_modes(args, device):
    """Eager first (the baseline), then --mode, or with --all every preset and every runtime the machine runs."""
    if args.all:
        modes = [m for m in MODES if not (device.type == "cpu" and m == "fp16")]
        modes += [m for m, (fmt, _) in RUNTIMES.items() if device.type == "cpu" and export.available(fmt)]
    else:
        modes = args.mode or ["eager", "exact"]
    return ["eager"] + [m for m in dict.fromkeys(modes) if m != "eager"]


def load_source(args, device):
    """The backend of --checkpoint (its network replaces --model/--classes/--M/--N), or a random --model network
    whose BN statistics are set from smooth images."""
    if args.checkpoint:
        source = load(args.checkpoint, device=device, network=network_of(args), fits=False,
                      mean=CITYSCAPES.release_mean, flag="--checkpoint")
        network = source.network
        args.model, args.classes = network["name"], network["classes"]
        args.M, args.N = network.get("M", args.M), network.get("N", args.N)
        if source.model is None and (device.type != "cpu" or args.compare or args.all or args.mode):
            raise UserError(f"--checkpoint {args.checkpoint} is an exported file: it is timed as it is (and with "
                            f"bf16 for an .xml) on the CPU; leave out --mode/--all/--compare and use --device cpu, "
                            f"or give a .pth checkpoint.")
        return source
    torch.manual_seed(args.seed)
    try:
        model = build_model(args.model, args.classes, args.M, args.N)
    except ValueError as e:
        raise UserError(str(e)) from None
    h, w = args.input_size
    calibrate_bn(model, smooth_image(2, min(h, 256), min(w, 512), args.seed + 1))
    weights = Weights({}, "random", network=network_of(args), mean=np.asarray(CITYSCAPES.release_mean, np.float32))
    return TorchBackend("", weights, model.eval().to(device), "eager", device)


class Modes:
    """Builds the backend of each mode from the source: torch modes in its network, runtime modes from its export
    (each format exported once, into a temporary folder), the exported --checkpoint as it is."""

    def __init__(self, args, source, device, folder):
        self.args, self.source, self.device, self.folder = args, source, device, folder
        self.files, self.calibration = {}, []  # format -> exported file; the int8 formats' images

    def __call__(self, mode):
        source, args = self.source, self.args
        if mode in (FILE, FILE_BF16):
            return load(args.checkpoint, amp="bf16" if mode == FILE_BF16 else "none", flag="--checkpoint")
        if mode in RUNTIMES:
            if self.device.type != "cpu":
                raise RuntimeError(f"the {mode} mode runs on the CPU only")
            fmt, amp = RUNTIMES[mode]
            if fmt not in self.files:
                if "int8" in fmt and not self.calibration:
                    self.calibration += calibration_scenes(*args.input_size, args.seed + 2)
                self.files[fmt] = os.path.join(self.folder, f"{fmt}{export.FORMATS[fmt].suffix}")
                export.export(fmt, source, self.files[fmt], calibration=self.calibration)
            return load(self.files[fmt], amp=amp, flag="--mode")
        return TorchBackend(source.path, source.weights, source.model, mode, self.device)


def row_of(mode):
    runtime = mode in RUNTIMES or mode in (FILE, FILE_BF16)
    return {"mode": mode, "features": [mode] if runtime else sorted(parse_mode(mode)),
            "exact": mode in EXACT_RUNTIMES + (FILE,) if runtime else is_exact(mode)}


def run_modes(args, modes, source, x, device, clock, warmup, runs, kept):
    """Build and measure every mode, then time them in interleaved rounds; ({mode: row}, {mode: its logits}, the
    baseline's logits of the input rounded to bf16)."""
    results, calls, outputs = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="cgnet-benchmark-") as folder:
        build = Modes(args, source, device, folder)
        for mode in modes:
            row = results[mode] = row_of(mode)
            try:
                backend = build(mode)
                batch = backend.input(x)  # once: a timed call measures the network, not a conversion or a copy
                call = (lambda b, xb: lambda: b.logits(xb))(backend, batch)
                timing, out = measure(call, device, warmup)
            except Exception as e:  # a mode the machine cannot run (no compiler for inductor, ...): see main()
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                if mode == modes[0]:
                    raise
                continue
            row.update(timing, tf32=getattr(getattr(backend, "predictor", None), "tf32", False))
            calls[mode], outputs[mode] = call, out.cpu()
            if mode == modes[0]:
                calls["bf16 input"] = lambda b=backend: b.logits(b.input(x.bfloat16().float()))
        sensitivity = calls.pop("bf16 input")()
        time_rounds(calls, results, device, clock, runs)
    if device.type == "cpu" and not kept and source.model is not None and (args.all or args.scripts_default):
        # The eval/test scripts' CPU path is `exact` with glibc told to keep freed memory. That setting is
        # process-wide and cannot be taken back, so it is measured last, after every other mode's rounds.
        keep_cpu_memory()
        backend = TorchBackend(source.path, source.weights, source.model, "exact", device)
        call = lambda: backend.logits(x)  # noqa: E731
        timing, out = measure(call, device, warmup)
        results[SCRIPTS_DEFAULT] = {"mode": SCRIPTS_DEFAULT, "exact": True, "tf32": backend.predictor.tf32,
                                    "features": sorted(parse_mode("exact")) + ["keep_cpu_memory"], **timing}
        calls[SCRIPTS_DEFAULT], outputs[SCRIPTS_DEFAULT] = call, out.cpu()
        time_rounds({SCRIPTS_DEFAULT: call}, results, device, clock, runs)
    return results, outputs, sensitivity.cpu()


def summarize(results, outputs, baseline, batch_size, clock):
    """Each row's spread, speed-up over the baseline and agreement with it, on the same input."""
    base_times, ref = results[baseline]["times_s"], outputs[baseline]
    ref_pred, scale = ref.argmax(1), ref.abs().max().clamp_min(1e-12)
    for mode, row in results.items():
        if "error" in row:
            continue
        t = row["times_s"]
        row.update(spread(t, batch_size, clock))
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


def main(args):
    if args.train:  # engine/train_bench.py, at the CamVid recipe's sizes unless given
        return train_bench.run(train_bench.TrainBench(
            args.model, args.M, args.N, args.classes or 11, args.batch_size or 8, tuple(args.input_size or (360, 360)),
            1 if args.warmup is None else args.warmup, args.runs or 5, seed=args.seed, threads=args.threads,
            report=args.report))
    args = argparse.Namespace(**{**vars(args), "input_size": args.input_size or (1024, 2048),
                                 "batch_size": args.batch_size or 1, "classes": args.classes or 19})
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu.")
    if device.type == "cuda" and args.clock == "cpu":
        raise UserError("--clock cpu measures CPU work, not GPU kernels: use --clock wall with --device cuda.")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    use_device(device)  # as the scripts: subnormals flushed, before any thread starts
    if args.json:
        check_writable_file(args.json, "--json")  # before minutes of measuring, not after
    if args.report:
        check_writable_file(args.report, "--report")
    if args.threads:
        torch.set_num_threads(args.threads)
    kept = keep_cpu_memory() if args.keep_cpu_memory else False
    if args.keep_cpu_memory and not kept:
        notice("--keep_cpu_memory needs glibc; running with the default allocator.")
    warmup = args.warmup if args.warmup is not None else (10 if device.type == "cuda" else 1)
    runs = args.runs if args.runs is not None else (50 if device.type == "cuda" else 5)
    h, w = args.input_size
    if args.image and not os.path.isfile(args.image):
        raise UserError(f"--image {args.image} not found; give an image file or leave --image out.")
    source = load_source(args, device)
    x = (real_image(args.image, args.batch_size, h, w, source.mean).contiguous() if args.image
         else smooth_image(args.batch_size, h, w, args.seed, source.mean)).to(device)
    if args.compare:
        return compare(args, device, x, clock, warmup, runs)
    modes = select_modes(args, device) if source.model is not None else [FILE] + [FILE_BF16] * ("bf16" in source.amps)
    info, summary = machine_info(device, args.keep_cpu_memory), describe(args, source, warmup, runs, device)
    print(notes(device))
    print(summary.pop("line"))
    print(f"device: {info['device_name']} ({device}), torch {info['torch']}, {info['threads']} threads, "
          f"malloc {'kept' if kept else 'default'}; input: {summary['input']}; weights: {summary['weights']}")
    results, outputs, sensitivity = run_modes(args, modes, source, x, device, clock, warmup, runs, kept)
    # How chaotic the network is: rounding only the input to bf16 (a change far below one grey level)
    # already moves this many argmaxes. bf16 modes cannot be judged more finely than this on these weights.
    summary["argmax_agreement_bf16_rounded_input"] = (
        sensitivity.argmax(1) == outputs[modes[0]].argmax(1)).double().mean().item()
    summarize(results, outputs, modes[0], args.batch_size, args.clock)
    if hasattr(os, "getloadavg"):
        info["load_average_end"] = os.getloadavg()[0]
    print_table(results, summary["memory_kind"], args.clock, modes[0])
    report_notes(results, summary, info, device, modes[0])
    failed = [mode for mode, row in results.items() if "error" in row]
    if failed and not args.skip_unavailable:
        raise UserError(f"{plural(len(failed), 'mode')} failed ({', '.join(failed)}: see the table); fix what the "
                        f"error says, leave {'it' if len(failed) == 1 else 'them'} out of --mode, or pass "
                        f"--skip_unavailable to report failed modes as such.")
    if args.json:
        write_json(args.json, {"summary": summary, "machine": info, "note": notes(device),
                               "modes": list(results.values())})
    if args.report:
        add_section(args.report, f"network alone: {args.checkpoint or 'random weights'} at {h}x{w}",
                    report_rows(results, h, w, modes[0]), note=f"median of {runs} interleaved rounds; {NOTE}")
    return results


def report_rows(results, h, w, baseline):
    return [{"configuration": mode, "resolution": f"{h}x{w}", "median ms": row["median_ms"], "fps": row["fps"],
             f"x {baseline}": row["speedup_vs_eager"],
             "argmax agreement": f"{row['argmax_agreement'] * 100:.3f} %"}
            for mode, row in results.items() if "error" not in row]


def describe(args, source, warmup, runs, device):
    """The summary of what is measured, and its printed line ('line')."""
    h, w = args.input_size
    model = source.model
    summary = {
        "model": args.model, "M": args.M, "N": args.N, "classes": args.classes,
        "input_size": [args.batch_size, 3, h, w],
        "input": args.image or "smooth random image (seeded), whole grey levels",
        "weights": args.checkpoint or f"random initialisation (seed {args.seed}), BN statistics from smooth images",
        "parameters": count_parameters(model) if model else None,
        "gflops_paper_size": count_gflops(model, *PAPER_FLOPS_SIZE) if model else None,
        "paper_size": [3, *PAPER_FLOPS_SIZE],
        "gflops_input_size": count_gflops(model, h, w) * args.batch_size if model else None,
        "flops_counting": FLOPS_NOTE, "warmup": warmup, "runs": runs, "clock": args.clock,
        "memory_kind": MemoryPeak(device).kind,
    }
    if model is not None:
        line = (f"{args.model} M={args.M} N={args.N}, {args.classes} classes: {summary['parameters']:,} parameters; "
                f"{summary['gflops_paper_size']:.2f} GFLOPs at 3x{PAPER_FLOPS_SIZE[1]}x{PAPER_FLOPS_SIZE[0]} "
                f"(paper: 6.0), {summary['gflops_input_size']:.2f} GFLOPs at {args.batch_size}x3x{h}x{w}\n{FLOPS_NOTE}")
    else:
        line = (f"{args.checkpoint}: {args.model}, {args.classes} classes, {source.weights.ckpt.get('precision')} "
                f"({FILE}: as the scripts run it, f32 pinned; {FILE_BF16}: with --amp bf16); baseline: {FILE}")
    return dict(summary, line=line)


def report_notes(results, summary, info, device, baseline):
    if ONNXRUNTIME in results and "error" not in results[ONNXRUNTIME]:
        print(ORT_MEMORY_NOTE)
    if any(m in results for m in RUNTIMES):
        print("runtime modes: the exported graph as the scripts run it (uint8 BGR in, the preprocessing and the "
              "argmax inside); int8 calibrated on synthetic street scenes.")
    if device.type == "cuda":
        print(TF32_NOTE.format(torch.backends.cudnn.allow_tf32))
    print(f"sensitivity of these weights: {baseline} on the input rounded to bf16 agrees with {baseline} on "
          f"{100 * summary['argmax_agreement_bf16_rounded_input']:.3f}% of pixels.")
    if "load_average_start" in info:
        print(f"load average (1 min) at the start {info['load_average_start']:.2f}, at the end "
              f"{info['load_average_end']:.2f}, on {info['cpu_count']} CPUs: other processes slow some rounds.")


def compare(args, device, x, clock, warmup, runs):
    """Every network of --model in eager fp32 on the same input, timed in interleaved rounds."""
    info = machine_info(device, args.keep_cpu_memory)
    rows, calls = {}, {}
    for name in MODELS:
        torch.manual_seed(args.seed)
        model = build_model(name, args.classes, args.M, args.N).eval()
        predict = Predictor(model, "eager", device)
        calls[name] = lambda p=predict: p(x)
        timing, _ = measure(calls[name], device, warmup)
        rows[name] = {"model": name, "parameters": count_parameters(model), "tf32": predict.tf32,
                      "gflops_paper_size": count_gflops(model, *PAPER_FLOPS_SIZE), **timing}
        print(f"{name}: ready", flush=True)
    time_rounds(calls, rows, device, clock, runs)
    h, w = args.input_size
    print(f"\n{notes(device)}\ndevice: {info['device_name']} ({device}), torch {info['torch']}, "
          f"{info['threads']} threads; "
          f"input {args.batch_size}x3x{h}x{w}; eager fp32{' (TF32 off)' if device.type == 'cuda' else ''}; "
          f"{runs} timed rounds; {FLOPS_NOTE}")
    print(f"{'model':<8}{'params (M)':>11}{'GFLOPs 640x360':>16}{'median ms':>11}{'p10-p90 ms':>17}{'fps':>8}"
          f"{'peak MB':>9}")
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
