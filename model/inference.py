"""Fast inference: BatchNorm folding, channels_last, torch.compile, autocast; multi-scale + flip testing;
the deployable network (preprocessing and argmax inside) that the ONNX and OpenVINO exports write.

A network is prepared once for a mode (engine.backend.TorchBackend wraps it) and called per batch:

    predictor = Predictor(model, "fold_bn+channels_last", device)
    logits = predictor(images)                   # (B, classes, H, W), float32
    probs = multiscale_probs(predictor, images, scales=(0.75, 1.0, 1.25), flip=True, classes=19)

A mode is a preset name from MODES or features joined by '+', from FEATURES. On the CPU, also call
utils.device.keep_cpu_memory() once per process (see its docstring).

Exact modes (fold_bn, channels_last, compile) change only float rounding; bf16/fp16 trade accuracy for
speed, and fp16 on a CPU without native fp16 is several times slower than eager. `python benchmark.py
--all` measures every mode on the machine at hand; the tables of docs/speed.md come from it (--report).

torch.compile specialises on the input shape: each new shape (every scale of multi-scale testing)
compiles once more (20-60 s on a small CPU, cached on disk afterwards) and after 8 shapes torch falls
back to eager.
"""
import copy
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.device import flush_subnormals

FEATURES = ("fold_bn", "channels_last", "compile", "bf16", "fp16")

# Presets. Exact modes stay in float32 and change only the rounding; bf16/fp16 trade accuracy for speed.
MODES = {
    "eager": (),                                           # what the original ran: fp32, NCHW
    "channels_last": ("channels_last",),
    "fold_bn": ("fold_bn",),
    "exact": ("fold_bn", "channels_last"),                 # the fastest exact eager variant
    "compile": ("fold_bn", "channels_last", "compile"),    # torch.compile on top of `exact`
    "bf16": ("fold_bn", "channels_last", "bf16"),
    "fp16": ("fold_bn", "channels_last", "fp16"),
    "fast": ("fold_bn", "channels_last", "compile", "bf16"),
}


def parse_mode(mode):
    """The feature set of a preset name or a '+'-joined feature list; ValueError names the choices."""
    if mode in MODES:
        return frozenset(MODES[mode])
    feats = [f for f in mode.split("+") if f]
    bad = [f for f in feats if f not in FEATURES]
    if not feats or bad:
        raise ValueError(f"unknown inference mode {mode!r}; choose a preset ({', '.join(MODES)}) "
                         f"or features joined by '+' ({', '.join(FEATURES)})")
    if "bf16" in feats and "fp16" in feats:
        raise ValueError(f"inference mode {mode!r} asks for both bf16 and fp16; choose one")
    return frozenset(feats)


def is_exact(mode):
    return not parse_mode(mode) & {"bf16", "fp16"}


@torch.no_grad()
def _fold_into_conv(conv, weight, bias, mean, var, eps):
    """conv followed by the affine BN(weight, bias, mean, var) becomes one conv; computed in float64."""
    scale = weight.double() / torch.sqrt(var.double() + eps)
    b = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    dtype = conv.weight.dtype
    conv.weight = nn.Parameter((conv.weight.double() * scale.view(-1, 1, 1, 1)).to(dtype), requires_grad=False)
    conv.bias = nn.Parameter(((b - mean.double()) * scale + bias.double()).to(dtype), requires_grad=False)


def _bn_params(bn, channels=slice(None)):
    weight = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    bias = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    return weight[channels], bias[channels], bn.running_mean[channels], bn.running_var[channels], bn.eps


def _foldable(conv, bn):
    return (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
            and bn.track_running_stats and bn.running_mean is not None
            and conv.out_channels == bn.num_features)


def fold_bn(model):
    """An eval-mode copy of `model` with BatchNorm2d layers folded into the convolutions before them.

    Folded: modules with `conv` (Conv2d) and `bn` (BatchNorm2d) attributes, applied as bn(conv(x))
    (ConvBNPReLU); adjacent Conv2d, BatchNorm2d pairs in an nn.Sequential; and a BN over a
    concatenation of conv outputs, which a network declares with a `joint_bn()` method returning
    (module owning `.bn`, [convs in channel order]) (CGNet's blocks: cat([F_loc(x), F_sur(x)])).
    The BNs after the other concatenations (b1, bn_prelu_2, bn_prelu_3) stay: what precedes them
    is a PReLU, a pooling or a residual sum, not a conv. Folded BNs become nn.Identity; the
    state_dict changes (convs gain a bias), so load checkpoints before folding.
    """
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        if _foldable(getattr(module, "conv", None), getattr(module, "bn", None)):
            _fold_into_conv(module.conv, *_bn_params(module.bn))
            module.bn = nn.Identity()
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                if _foldable(module._modules[a], module._modules[b]):
                    _fold_into_conv(module._modules[a], *_bn_params(module._modules[b]))
                    module._modules[b] = nn.Identity()
        if hasattr(module, "joint_bn"):  # a BN over the concatenated outputs of several convs
            owner, convs = module.joint_bn()
            start = 0
            for conv in convs:
                n = conv.out_channels
                _fold_into_conv(conv, *_bn_params(owner.bn, slice(start, start + n)))
                start += n
            owner.bn = nn.Identity()
    return model


@contextmanager
def no_tf32():
    """fp32 convolutions and matmuls in full fp32 on GPUs (no effect on CPUs), the previous setting restored after.

    torch lets cuDNN run fp32 convolutions in TF32 (a 10-bit mantissa) by default on Ampere and newer GPUs,
    so an "exact" mode would not be exact there."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class Predictor:
    """A network prepared for an inference mode: predictor(images) -> float32 logits (B, classes, H, W); images
    may sit on any device.

    Exact modes (eager included) compute in full fp32 on GPUs too: TF32 is off during their calls.
    `tf32` says whether the calls may use it: None on a CPU, False for exact modes, torch's setting else.
    """

    def __init__(self, model, mode="eager", device="cpu", compile_options=None):
        self.mode = mode
        self.features = parse_mode(mode)
        self.device = torch.device(device)
        # folding multiplies weights by BN scales: new subnormals can appear
        model = flush_subnormals(fold_bn(model) if "fold_bn" in self.features else copy.deepcopy(model).eval())
        model = model.to(self.device)
        self.memory_format = torch.channels_last if "channels_last" in self.features else torch.contiguous_format
        model = model.to(memory_format=self.memory_format)
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model
        self.dtype = torch.bfloat16 if "bf16" in self.features else torch.float16 if "fp16" in self.features else None
        self.tf32 = None if self.device.type != "cuda" else self.dtype is not None and torch.backends.cudnn.allow_tf32
        self.forward = model
        if "compile" in self.features:
            self.forward = torch.compile(model, dynamic=False, options=compile_options)

    def _precision(self):
        if self.dtype is None:
            return no_tf32()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @torch.inference_mode()
    def __call__(self, images):
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        with self._precision():
            out = self.forward(images)
        return out.float()


class Deployable(nn.Module):
    """The network with the original's preprocessing in front (dataset.datasets.normalize: BGR -> RGB, minus
    the mean) and the argmax behind: uint8 (N, H, W, 3) BGR, as cv2.imread returns it -> labels (N, H, W)
    int64, logits (N, C, H, W) float32. The graph both exports (ONNX, OpenVINO IR) hold."""

    def __init__(self, model, mean):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)).view(1, 3, 1, 1))

    def forward(self, image):
        x = image.flip(-1).permute(0, 3, 1, 2).float() - self.mean  # (N, 3, H, W), RGB, mean subtracted
        logits = self.model(x)
        return logits.argmax(1), logits


def multiscale_probs(logits_of, image, scales=(1.0,), flip=False, classes=None):
    """Average of softmax probabilities over scales (and horizontal flips), at the input's H, W.

    As mmsegmentation's test-time augmentation (MultiScaleFlipAug + EncoderDecoder.inference), which gave
    its published multi-scale + flip figures: per scale s the batch is resized to int(H*s + 0.5) x
    int(W*s + 0.5) (bilinear, align_corners=False), predicted, and with flip=True also predicted mirrored;
    each pass's LOGITS are resized to (H, W), then softmaxed, then mirrored back; all passes are averaged.
    mmsegmentation scales relative to 1024x2048 (its img_scale), which is the size of Cityscapes images,
    and resizes the 8-bit image with OpenCV, so its inputs are rounded to whole grey levels; here the
    normalised float image is resized. Returns (B, classes, H, W) float32.
    """
    if not scales:
        raise ValueError("multiscale_probs needs at least one scale")
    h, w = image.shape[-2:]
    total, passes = None, 0
    for s in scales:
        size = (max(1, int(h * s + 0.5)), max(1, int(w * s + 0.5)))  # mmcv's rescale_size rounding
        x = image if size == (h, w) else F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        views = [(x, False), (x.flip(-1), True)] if flip else [(x, False)]
        for view, flipped in views:
            logits = logits_of(view).float()
            if classes is not None and logits.shape[1] != classes:
                raise ValueError(f"the model predicts {logits.shape[1]} classes, expected {classes}")
            if logits.shape[-2:] != (h, w):
                logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            prob = torch.softmax(logits, dim=1)
            if flipped:
                prob = prob.flip(-1)
            total = prob if total is None else total + prob
            passes += 1
    return total / passes
