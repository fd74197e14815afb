"""How a training run computes: the mode it chose (torch.compile, precision, memory format, data in memory,
loader workers) and the step itself (forward, weighted cross-entropy, backward, optimizer step).

On the CPU the default is the fast mode: the forward and the loss compiled once per process (Inductor fuses the
PReLU backward, the largest row of eager's profile), bf16 autocast where the CPU computes bf16 natively
(avx512_bf16 or AMX), channels-last, the decoded images kept in memory and augmented in the training process,
freed memory kept for reuse. `--plain true` is the original's eager fp32.
"""
import contextlib
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from utils import dist as du
from utils.device import native_bf16
from utils.optim import set_lr

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CACHE_BUDGET = 4 * 2 ** 30  # decoded training images kept in memory up to this (CamVid train+val: ~330 MB)


@dataclass(frozen=True)
class TrainMode:
    """What a run chose; resolved once from the flags (which stay as given: they are saved in the checkpoint)."""
    compile: bool
    amp: str
    channels_last: bool
    in_memory: bool
    workers: int
    keep_memory: bool = False  # glibc keeps freed memory (utils.device.keep_cpu_memory)

    def describe(self, cached_mb=None):
        """The one line a run prints about how it computes."""
        data = (f"decoded images in memory ({cached_mb:,.0f} MB)" if self.in_memory and cached_mb is not None
                else "images decoded every epoch")
        return (f"training mode: torch.compile {'on' if self.compile else 'off'}, "
                f"{'fp32' if self.amp == 'none' else self.amp + ' autocast'}, "
                f"{'channels-last' if self.channels_last else 'NCHW'}, {data}, "
                + (f"{self.workers} loader worker{'s' if self.workers != 1 else ''}" if self.workers
                   else "augmented in the training process (no loader workers)")
                + (", freed memory kept for reuse" if self.keep_memory else ""))


def choose_mode(args, device, decoded_bytes):
    """The mode of the flags; None means 'choose': on the CPU compile, bf16 autocast where the CPU computes bf16
    natively (avx512_bf16 or AMX) and the step is compiled, channels-last, the data in memory when it fits
    CACHE_BUDGET, and then no loader worker (augmenting a cached image takes milliseconds; a worker takes a core from
    the step: `benchmark.py --train` measured 0 workers fastest, docs/speed.md), and freed memory kept: glibc hands
    blocks over 32 MB (a batch's largest activations and gradients) back to the kernel when they are freed, and
    their pages fault anew on every step (epochs 4-10 % longer on real CamVid, 2-core AMD EPYC). `--plain true` is
    the original's eager fp32 with its loader and allocator."""
    cpu = device.type == "cpu"
    default_workers = min(4, os.cpu_count() or 1)
    if getattr(args, "plain", False):
        workers = default_workers if args.num_workers is None else args.num_workers
        return TrainMode(False, "none", False, False, workers)
    compile_ = cpu if args.compile is None else args.compile
    amp = args.amp if args.amp is not None else "bf16" if cpu and compile_ and native_bf16() else "none"
    # Eager bf16 trains NCHW: oneDNN's channels-last bf16 weight gradient of dilated depthwise convolutions is wrong
    # (torch 2.14); the compiled step computes those gradients itself (DilatedDepthwiseConv).
    channels_last = cpu and (compile_ or amp != "bf16") if args.channels_last is None else args.channels_last
    in_memory = cpu and decoded_bytes <= CACHE_BUDGET
    workers = args.num_workers if args.num_workers is not None else (0 if in_memory else default_workers)
    return TrainMode(compile_, amp, channels_last, in_memory, workers, keep_memory=cpu)


def compiled_graphs():
    """Graphs Dynamo has compiled in this process so far: a count that grows after the first step is a recompile."""
    from torch._dynamo.utils import counters
    return counters["stats"]["unique_graphs"]


# Inductor rewrites bilinear upsampling as gathers, whose backward becomes one serial scatter-add: on CGNet's logits
# (8x11x45x45 to 360x360) that kernel took 123 ms of a 890 ms compiled step (2-core AMD EPYC). Inside the compiled
# step the upsampling is an opaque op that runs ATen's own kernels forward and backward (17 + 16 ms there).
# Inductor's caches know these ops by name, not by their Python code: renamed whenever that code changes.
@torch.library.custom_op("cgnet::upsample_bilinear", mutates_args=())
def upsample_bilinear(x: torch.Tensor, size: list[int], align_corners: bool) -> torch.Tensor:
    return torch.ops.aten.upsample_bilinear2d(x, size, align_corners)


def _layout(t):
    """The memory format ATen's upsampling kernels give their output: that of their input (suggest_memory_format)."""
    return torch.channels_last if not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last) \
        else torch.contiguous_format


@upsample_bilinear.register_fake
def _(x, size, align_corners):
    return torch.empty((*x.shape[:2], *size), dtype=x.dtype, device=x.device, memory_format=_layout(x))


@torch.library.custom_op("cgnet::upsample_bilinear_backward", mutates_args=())
def upsample_bilinear_backward(grad: torch.Tensor, input_size: list[int], align_corners: bool) -> torch.Tensor:
    return torch.ops.aten.upsample_bilinear2d_backward(grad, grad.shape[2:], input_size, align_corners)


@upsample_bilinear_backward.register_fake
def _(grad, input_size, align_corners):
    return torch.empty(input_size, dtype=grad.dtype, device=grad.device, memory_format=_layout(grad))


def _setup(ctx, inputs, output):
    ctx.input_size, ctx.align_corners = list(inputs[0].shape), inputs[2]


upsample_bilinear.register_autograd(
    lambda ctx, grad: (upsample_bilinear_backward(grad, ctx.input_size, ctx.align_corners), None, None),
    setup_context=_setup)


def _interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                 antialias=False):
    if mode == "bilinear" and size is not None and not antialias and input.dim() == 4:
        size = [size, size] if isinstance(size, int) else [int(s) for s in size]
        return upsample_bilinear(input, size, bool(align_corners))
    return F.interpolate(input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)


class DilatedDepthwiseConv(torch.autograd.Function):
    """A depthwise k x k convolution (k odd) with stride 1, 'same' padding and dilation > 1, without bias:
    oneDNN's forward, and a backward of its own. oneDNN's backward of these convolutions (CGNet's F_sur) is a slow
    generic path on the CPU, 2.6 ms where the forward takes 0.13 (8x64x45x45, dilation 4, channels-last fp32, 2-core
    AMD EPYC), and in channels-last bf16 its weight gradient is wrong and differs from call to call (at times 1e32
    or NaN). The input gradient is the same convolution with the kernel flipped, which runs on oneDNN's fast
    forward; the weight gradient is k*k sums of products over the batch, which Inductor fuses, accumulated in fp32."""

    @staticmethod
    def forward(ctx, x, weight, dilation):
        ctx.save_for_backward(x, weight)
        ctx.dilation = dilation
        return F.conv2d(x, weight, None, 1, dilation * (weight.shape[-1] // 2), dilation, x.shape[1])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        d, k = ctx.dilation, weight.shape[-1]
        pad = d * (k // 2)
        grad_x = F.conv2d(grad, weight.flip([2, 3]).to(grad.dtype), None, 1, pad, d, x.shape[1]).to(x.dtype)
        h, w = x.shape[2:]
        padded, grad = F.pad(x, (pad, pad, pad, pad)).float(), grad.float()
        grad_w = torch.stack([(padded[:, :, i * d:i * d + h, j * d:j * d + w] * grad).sum((0, 2, 3))
                              for i in range(k) for j in range(k)], 1)
        return grad_x, grad_w.view(weight.shape).to(weight.dtype), None


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    (d, dw), k = _pair(dilation), weight.shape[-1]
    if (input.dim() == 4 and bias is None and d == dw > 1 and _pair(stride) == (1, 1) and weight.shape[1:] == (1, k, k)
            and k % 2 and groups == input.shape[1] == weight.shape[0] and _pair(padding) == (d * (k // 2),) * 2):
        return DilatedDepthwiseConv.apply(input, weight, d)
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)


class StepKernels(TorchFunctionMode):
    """The model's calls inside the compiled step (and in an eager channels-last bf16 step): F.interpolate(
    mode="bilinear", size=...) of 4-D inputs as upsample_bilinear, dilated depthwise convolutions as
    DilatedDepthwiseConv; every other call as it is."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return (_interpolate if func is F.interpolate else _conv2d if func is F.conv2d else func)(
            *args, **(kwargs or {}))


# Traced inside a compiled frame, the handler is inlined. Where Dynamo runs code eagerly with the mode on (DDP's own
# forward, around the module it compiles as a frame of its own) each torch call enters the handler, which Dynamo
# would otherwise take as a new frame to compile, again for every call until its recompile limit.
# (torch.compiler.disable would instead break the graph at every call.)
torch._dynamo.eval_frame.skip_code(StepKernels.__torch_function__.__code__)


class TrainStep:
    """forward + weighted cross-entropy + the predicted classes (compiled in the fast mode), backward, optimizer step.

    What is compiled is this object's `_forward`, not the module: the module keeps its parameter names (a
    checkpoint has no `_orig_mod.` prefix) and validation runs it uncompiled in eval mode, which leaves the
    training graph as it is. Shapes are static (the loader drops the last partial batch), so nothing recompiles.
    The loss and the logits it is taken of are fp32 under autocast: the log-softmax of bf16 logits and a sum of
    weighted bf16 terms are where reduced precision hurts; the convolutions keep the speed.
    The argmax for the training mIoU is taken inside the compiled graph, where Inductor fuses it with the loss's
    log-softmax: taken eagerly after the step it cost 16 ms of a ~900 ms iteration (idle 2-core AMD EPYC).
    Compiled, the bilinear upsampling runs on ATen's kernels and the dilated depthwise convolutions on a
    backward of their own (StepKernels); eagerly the model runs as written, except for those convolutions in
    channels-last bf16.
    """

    def __init__(self, model, criterion, optimizer, scaler, mode, ignore_label, device):
        self.device = device
        self.model, self.criterion, self.optimizer, self.scaler = model, criterion, optimizer, scaler
        self.ignore_label = ignore_label
        self.amp_dtype = AMP_DTYPES[mode.amp]
        self.memory_format = torch.channels_last if mode.channels_last else torch.contiguous_format
        # StepKernels when compiled (speed), and in channels-last bf16 also eagerly (oneDNN's wrong weight gradient).
        self.kernels = mode.compile or (mode.amp == "bf16" and mode.channels_last)
        self.forward = torch.compile(self._forward, dynamic=False) if mode.compile else self._forward

    def _forward(self, images, labels):
        autocast = torch.autocast(images.device.type, dtype=self.amp_dtype) if self.amp_dtype \
            else contextlib.nullcontext()
        with autocast, StepKernels() if self.kernels else contextlib.nullcontext():
            out = self.model(images)
        aux = None
        if isinstance(out, tuple):  # models with auxiliary heads return (logits, aux) in training
            out, aux = out
        out = out.float()  # a no-op in fp32
        loss = self.criterion(out, labels)
        if aux is not None:
            loss = loss + du.unwrap(self.model).aux_loss(aux, labels, self.ignore_label)
        return loss, out.detach().argmax(1)

    def __call__(self, images, labels, lr):
        """One iteration at learning rate `lr`; returns the (detached) loss, the predicted class of each pixel,
        and the labels on the device (so the caller's metrics do not copy them there a second time)."""
        set_lr(self.optimizer, lr)
        images = images.to(self.device, non_blocking=True, memory_format=self.memory_format)
        labels = labels.to(self.device, non_blocking=True)
        loss, preds = self.forward(images, labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()  # without fp16 the scaler is off: plain backward() and step()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), preds, labels
