"""The fast CPU training mode (engine/train_step.py): what a run chooses, the data kept in memory, the compiled
step against eager, and a compiled run's checkpoint in the original's layout."""
import contextlib
import os
import subprocess
import sys
from argparse import Namespace

import cv2
import numpy as np
import pytest
import torch

import benchmark
import cityscapes_train
import engine.train
from conftest import ROOT, train_argv
from dataset.datasets import TrainDataset, normalize, read_list
import engine.train_step
from engine.train_step import (CACHE_BUDGET, DilatedDepthwiseConv, StepKernels, TrainMode, TrainStep, choose_mode,
                               compiled_graphs)
from model import build_model
from tools import run_report
from utils.device import native_bf16
from utils.optim import build_optimizer

CPU = torch.device("cpu")


def flags(**given):
    return Namespace(**{"plain": False, "compile": None, "channels_last": None, "amp": None, "num_workers": None,
                        **given})


@pytest.mark.parametrize("bf16", [False, True])
def test_the_cpu_default_is_the_fast_mode_and_plain_is_the_original(monkeypatch, bf16):
    monkeypatch.setattr(engine.train_step, "native_bf16", lambda: bf16)  # whether the CPU computes bf16 natively
    amp = "bf16" if bf16 else "none"
    assert choose_mode(flags(), CPU, 300 * 2 ** 20) == TrainMode(True, amp, True, True, 0, True)
    assert choose_mode(flags(), CPU, CACHE_BUDGET + 1) == TrainMode(True, amp, True, False, min(4, os.cpu_count()),
                                                                   True)
    assert choose_mode(flags(amp="none"), CPU, 0) == TrainMode(True, "none", True, True, 0, True)
    plain = choose_mode(flags(plain=True, amp="bf16", compile=True), CPU, 0)
    assert plain == TrainMode(False, "none", False, False, min(4, os.cpu_count()))
    # Uncompiled, bf16 is neither chosen nor channels-last (oneDNN's dilated depthwise weight gradient, see below).
    assert choose_mode(flags(compile=False, num_workers=0), CPU, 0) == TrainMode(False, "none", True, True, 0, True)
    assert choose_mode(flags(compile=False, amp="bf16", num_workers=0), CPU, 0) == TrainMode(False, "bf16", False,
                                                                                               True, 0, True)
    assert choose_mode(flags(), torch.device("cuda", 0), 0) == TrainMode(False, "none", False, False,
                                                                          min(4, os.cpu_count()))
    line = choose_mode(flags(), CPU, 0).describe(308.2)
    assert line == (f"training mode: torch.compile on, {'bf16 autocast' if bf16 else 'fp32'}, channels-last, decoded "
                    "images in memory (308 MB), augmented in the training process (no loader workers), freed memory "
                    "kept for reuse")


def test_images_kept_in_memory_give_the_samples_read_from_disk(cs):
    samples = read_list(f"{cs}/cityscapes_train_list.txt", cs, True, "--train_data_list")
    disk, memory = (TrainDataset(samples, (70.0, 80.0, 75.0), (32, 32), 19, 255, seed=4) for _ in range(2))
    assert memory.keep_in_memory() == sum(48 * 96 * 4 for _ in samples)
    for epoch in (0, 3):
        disk.set_epoch(epoch), memory.set_epoch(epoch)
        for i in range(len(samples)):
            (a, la), (b, lb) = disk[i], memory[i]
            assert torch.equal(a, b) and torch.equal(la, lb)


def the_originals_sample(dataset, index):
    """TrainDataset's sample as the original computes it: normalize the scaled image, pad it bottom/right up to
    the crop, then crop at a random offset of the padded image."""
    image, label = dataset.decoded[index]
    rng = np.random.default_rng([dataset.seed, dataset.epoch, index])
    f = 0.5 + rng.integers(0, 16) / 10.0
    image = normalize(cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_LINEAR), dataset.mean)
    label = cv2.resize(label, None, fx=f, fy=f, interpolation=cv2.INTER_NEAREST)
    pad = ((0, max(dataset.crop_h - label.shape[0], 0)), (0, max(dataset.crop_w - label.shape[1], 0)))
    image, label = np.pad(image, (*pad, (0, 0))), np.pad(label, pad, constant_values=dataset.ignore_label)
    h, w = rng.integers(0, label.shape[0] - dataset.crop_h + 1), rng.integers(0, label.shape[1] - dataset.crop_w + 1)
    image, label = image[h:h + dataset.crop_h, w:w + dataset.crop_w], label[h:h + dataset.crop_h, w:w + dataset.crop_w]
    if rng.integers(0, 2):
        image, label = image[:, ::-1], label[:, ::-1]
    return torch.from_numpy(image.transpose(2, 0, 1).copy()), torch.from_numpy(label.copy()).long()


@pytest.mark.parametrize("crop", [(32, 32), (40, 72)])
def test_a_training_sample_is_the_originals_pad_then_crop(cs, crop):
    """Cropping before normalizing (only the crop's pixels are converted) must give the original's samples,
    padding included: the 48x96 images scaled by 0.5..2.0 are at times smaller than the crop."""
    samples = read_list(f"{cs}/cityscapes_train_list.txt", cs, True, "--train_data_list")
    dataset = TrainDataset(samples, (70.0, 80.0, 75.0), crop, 19, 255, seed=2)
    dataset.keep_in_memory()
    padded = 0
    for epoch in range(4):
        dataset.set_epoch(epoch)
        for i in range(len(samples)):
            (image, label), (want_image, want_label) = dataset[i], the_originals_sample(dataset, i)
            assert torch.equal(image, want_image) and torch.equal(label, want_label)
            padded += bool((label == 255).all(1).any() or (label == 255).all(0).any())
    assert padded  # the padding path was taken


def test_the_train_benchmark_takes_the_recipe_sizes_unless_given(monkeypatch):
    asked = []
    monkeypatch.setattr(benchmark.train_bench, "run", asked.append)
    parser = benchmark.get_args_parser()
    benchmark.main(parser.parse_args(["--train"]))
    benchmark.main(parser.parse_args(["--train", "--batch_size", "2", "--input_size", "64,96"]))
    assert [(b.input_size, b.batch_size, b.classes) for b in asked] == [((360, 360), 8, 11), ((64, 96), 2, 11)]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("align_corners", [False, True])
def test_the_compiled_steps_bilinear_upsampling_is_f_interpolates(channels_last, align_corners):
    """StepKernels, which the compiled step runs the model under: the same values, gradient and layout."""
    x = torch.randn(2, 5, 6, 7, generator=torch.Generator().manual_seed(0))
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    outs = []
    for mode in (contextlib.nullcontext(), StepKernels()):
        leaf = x.clone().requires_grad_()
        with mode:
            y = torch.nn.functional.interpolate(leaf, (24, 21), mode="bilinear", align_corners=align_corners)
            nearest = torch.nn.functional.interpolate(leaf, scale_factor=2)  # any other call is passed on
        (y * torch.arange(y.numel()).view_as(y).sin()).sum().backward()
        outs.append((y.detach(), y.stride(), leaf.grad, leaf.grad.stride(), nearest.detach()))
    (y0, s0, g0, gs0, n0), (y1, s1, g1, gs1, n1) = outs
    torch.testing.assert_close(y1, y0), torch.testing.assert_close(g1, g0), torch.testing.assert_close(n1, n0)
    assert (s1, gs1) == (s0, gs0)


def conv_grads(conv, x, weight, grad):
    x, weight = x.clone().requires_grad_(), weight.clone().requires_grad_()
    y = conv(x, weight)
    y.backward(grad)
    return y.detach().float(), x.grad.float(), weight.grad.float()


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("k, dilation", [(3, 2), (3, 4), (5, 2)])
def test_dilated_depthwise_convolutions_have_f_conv2ds_value_and_gradients(channels_last, k, dilation):
    g = torch.Generator().manual_seed(k + dilation)
    x, weight, grad = torch.randn(2, 6, 11, 13, generator=g), torch.randn(6, 1, k, k, generator=g), \
        torch.randn(2, 6, 11, 13, generator=g)
    if channels_last:
        x, weight, grad = (t.to(memory_format=torch.channels_last) for t in (x, weight, grad))
    pad = dilation * (k // 2)
    want = conv_grads(lambda a, w: torch.nn.functional.conv2d(a, w, None, 1, pad, dilation, 6), x, weight, grad)
    got = conv_grads(lambda a, w: DilatedDepthwiseConv.apply(a, w, dilation), x, weight, grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_the_step_kernels_take_the_dilated_depthwise_convolutions_and_pass_on_the_rest():
    """In a CG block under StepKernels, F_sur (dilated) runs DilatedDepthwiseConv, F_loc (dilation 1) does not."""
    block = build_model("CGNet", 5, M=1, N=2).level3[0]
    x = torch.randn(1, 128, 12, 12)
    with StepKernels():
        sur, loc = block.F_sur(x[:, :64]), block.F_loc(x[:, :64])
    assert type(sur.grad_fn).__name__ == "DilatedDepthwiseConvBackward"
    assert type(loc.grad_fn).__name__ == "ConvolutionBackward0"


def test_channels_last_bf16_weight_gradients_of_dilated_depthwise_convolutions_are_right():
    """oneDNN's own (torch 2.14, x86) is wrong by more than its own size at this shape: relative error 1.3 measured
    on an AMD EPYC with avx512_bf16 (the reason bf16 runs stopped on a NaN loss); DilatedDepthwiseConv's is right."""
    g = torch.Generator().manual_seed(0)
    x, weight, grad = (torch.randn(*shape, generator=g).to(memory_format=torch.channels_last)
                       for shape in ((1, 32, 32, 32), (32, 1, 3, 3), (1, 32, 32, 32)))
    want = conv_grads(lambda a, w: torch.nn.functional.conv2d(a, w, None, 1, 2, 2, 32), x, weight, grad)[2]
    for _ in range(2):  # the same on every call
        got = conv_grads(lambda a, w: DilatedDepthwiseConv.apply(a, w, 2), x.bfloat16(), weight.bfloat16(),
                         grad.bfloat16())[2]
        assert (got - want).abs().max() <= 0.02 * want.abs().max()


def tiny_step(mode):
    torch.manual_seed(0)
    model = build_model("CGNet", 5, M=1, N=1).to(memory_format=torch.channels_last)
    criterion = torch.nn.CrossEntropyLoss(weight=torch.linspace(0.5, 2, 5), ignore_index=255)
    return TrainStep(model, criterion, build_optimizer(model, 1e-3), torch.amp.GradScaler("cpu", enabled=False),
                     mode, 255, CPU)


@pytest.mark.slow
def test_the_compiled_step_gives_eager_losses_and_never_recompiles():
    g = torch.Generator().manual_seed(1)
    images, labels = torch.randn(2, 3, 32, 32, generator=g) * 50, torch.randint(0, 5, (2, 32, 32), generator=g)
    runs = {}
    for compiled in (False, True):
        step, losses, preds = tiny_step(TrainMode(compiled, "none", True, False, 0)), [], []
        for i in range(4):
            step.model.train()
            loss, pred, _ = step(images, labels, 1e-3 * (1 - i / 4))
            losses.append(loss.item()), preds.append(pred)
            if i == 0:
                graphs = compiled_graphs()
            step.model.eval()  # validation runs the uncompiled module in eval mode between epochs
            with torch.no_grad():
                step.model(images)
        assert compiled_graphs() == graphs  # nothing compiled after the first step
        runs[compiled] = losses, step.model.state_dict(), torch.stack(preds)
    torch.testing.assert_close(runs[True][0], runs[False][0], rtol=1e-4, atol=1e-5)
    # The classes the training mIoU counts (the argmax is inside the compiled graph): the same up to near-ties.
    assert runs[True][2].shape == (4, 2, 32, 32) and (runs[True][2] == runs[False][2]).float().mean() > 0.999
    assert list(runs[True][1]) == list(runs[False][1])  # no `_orig_mod.` in the names
    # The gradients (StepKernels' backwards among them) moved the weights alike.
    torch.testing.assert_close(runs[True][1], runs[False][1], rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_a_compiled_run_saves_the_original_layout_and_the_flags_as_given(cs, tmp_path, capsys, monkeypatch):
    kept = []  # the allocator setting is process-wide: recorded here, not applied to the test process
    monkeypatch.setattr(engine.train, "keep_cpu_memory", lambda: kept.append(True))
    argv = train_argv(cs, tmp_path, "--max_epochs", "2", "--val_interval", "1", "--compile", "true")
    summary = cityscapes_train.main(cityscapes_train.get_args_parser().parse_args(argv))
    out = capsys.readouterr().out
    precision = "bf16 autocast" if native_bf16() else "fp32"  # the default's, on this CPU
    assert f"training mode: torch.compile on, {precision}, channels-last" in out and "compiled again" not in out
    assert kept == [True] and "freed memory kept for reuse" in out
    # tools/run_report.py reads the epoch times of the pages from exactly these lines.
    assert [e for e, _, _ in run_report.EPOCH_LINE.findall(out)] == ["1", "2"]
    ckpt = torch.load(os.path.join(summary["run_dir"], "model_1.pth"), weights_only=True)
    model = build_model("CGNet", 19, M=1, N=2)
    assert list(ckpt["model"]) == list(model.state_dict())
    model.load_state_dict(ckpt["model"])  # the original's loader: strict, the names as released
    state = torch.load(os.path.join(summary["run_dir"], "checkpoint.pth"), weights_only=True)
    assert state["args"]["compile"] is True and state["args"]["channels_last"] is None  # not rewritten


@pytest.mark.slow
def test_torchrun_trains_in_the_fast_mode(cs, tmp_path):
    """DDP over gloo with the compiled step: each process compiles once, rank 0 saves the names as released."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "cityscapes_train.py",
           *train_argv(cs, tmp_path, "--batch_size", "4", "--max_epochs", "2", "--compile", "true")]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "torch.compile on" in run.stdout and "compiled again" not in run.stdout and "epoch 2/2:" in run.stdout
    assert "recompile" not in run.stdout + run.stderr  # Dynamo compiles no frame again and again (StepKernels)
    ckpt = torch.load(tmp_path / "ckpt" / "cityscapes" / "CGNet_M1N2bs4cpu_ontrain" / "model_2.pth", weights_only=True)
    assert list(ckpt["model"]) == list(build_model("CGNet", 19, M=1, N=2).state_dict())


@pytest.mark.slow
def test_the_train_benchmark_times_every_mode_and_writes_its_report(tmp_path, capsys):
    from engine import train_bench
    rows = train_bench.run(train_bench.TrainBench(M=1, N=1, classes=11, batch_size=2, input_size=(32, 32), warmup=0,
                                                  runs=1, report=str(tmp_path / "train")))
    assert [r["configuration"] for r in rows] == [*train_bench.MODES, *train_bench.DATA_ROWS]
    assert rows[0]["x eager"] == 1.0 and all(r["median ms"] > 0 for r in rows)
    assert capsys.readouterr().out.startswith("machine: ")  # the fingerprint first
    assert "training step" in (tmp_path / "train.md").read_text()
