import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from model import CGNet
from model.inference import MODES, Predictor, fold_bn, is_exact, multiscale_probs, parse_mode


def randomize_bn(model, seed=0):
    """Non-trivial running stats and affine parameters, so that folding has something to fold."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


def cgnet(classes=5, M=2, N=3):
    torch.manual_seed(0)
    return randomize_bn(CGNet.Context_Guided_Network(classes, M=M, N=N))


def assert_close_logits(out, ref):
    # float32 rounding relative to the largest logit (random weights give logits in the thousands)
    assert out.shape == ref.shape and out.dtype == torch.float32
    scale = ref.abs().max()
    assert (out - ref).abs().max() <= 1e-4 * scale
    assert (out.argmax(1) == ref.argmax(1)).double().mean() > 0.999


@pytest.mark.parametrize("size", [(64, 96), (37, 53)])
def test_fold_bn_equals_the_eval_model(size):
    model = cgnet()
    x = torch.randn(2, 3, *size) * 50
    with torch.no_grad():
        ref = model(x)
        out = fold_bn(model)(x)
    assert_close_logits(out, ref)


def test_fold_bn_folds_conv_and_joint_bns_and_copies():
    model = cgnet(M=2, N=3)
    folded = fold_bn(model)
    remaining = [n for n, m in folded.named_modules() if isinstance(m, nn.BatchNorm2d)]
    # only the BNs after concatenations that do not end in convs are left
    assert remaining == ["b1.bn", "bn_prelu_2.bn", "bn_prelu_3.bn"]
    assert folded.level1_0.conv.bias is not None and folded.level3[0].F_sur.conv.bias is not None
    assert isinstance(model.level1_0.bn, nn.BatchNorm2d) and model.level1_0.conv.bias is None


def test_fold_bn_sequential_pairs_and_non_affine_bn():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 4, 1, bias=False), nn.BatchNorm2d(4, affine=False))
    randomize_bn(net)
    x = torch.randn(1, 3, 9, 11)
    folded = fold_bn(net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), rtol=1e-5, atol=1e-5)


EAGER_MODES = [m for m in MODES if "compile" not in parse_mode(m)]


@pytest.mark.parametrize("mode", EAGER_MODES + ["fold_bn+bf16", "channels_last+fold_bn"])
def test_every_eager_mode_runs_and_exact_modes_match(mode):
    model = cgnet()
    x = torch.randn(1, 3, 40, 56) * 50  # small: fp16 on a CPU without native fp16 is emulated and slow
    with torch.no_grad():
        ref = model(x)
    out = Predictor(model, mode, "cpu")(x)
    assert out.shape == ref.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
    if is_exact(mode):
        assert_close_logits(out, ref)
    else:
        assert (out - ref).abs().max() <= 0.1 * ref.abs().max()


@pytest.mark.slow
def test_compile_mode_matches_eager():
    # torch.compile takes a while on a small CPU: the smallest network and input
    model = cgnet(classes=3, M=1, N=1)
    x = torch.randn(1, 3, 32, 48) * 50
    with torch.no_grad():
        ref = model(x)
    assert_close_logits(Predictor(model, "compile", "cpu")(x), ref)


def test_predictor_leaves_the_model_alone():
    model = cgnet()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Predictor(model, "exact", "cpu")(torch.randn(1, 3, 32, 32))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("mode", ["nonsense", "fold_bn+nope", "", "bf16+fp16"])
def test_bad_modes_are_refused(mode):
    with pytest.raises(ValueError):
        parse_mode(mode)


def test_mode_presets_and_feature_lists():
    assert parse_mode("exact") == parse_mode("channels_last+fold_bn")
    assert is_exact("compile") and not is_exact("bf16") and not is_exact("fast")


def hand_multiscale(net, x, scales, flip):
    h, w = x.shape[-2:]
    probs = []
    for s in scales:
        xs = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear", align_corners=False)
        for flipped in ([False, True] if flip else [False]):
            inp = xs.flip(3) if flipped else xs
            logits = F.interpolate(net(inp), size=(h, w), mode="bilinear", align_corners=False)
            p = torch.softmax(logits, 1)  # after the resize to full resolution, as mmsegmentation does
            probs.append(p.flip(3) if flipped else p)
    return sum(probs) / len(probs)


def test_multiscale_flip_equals_hand_computed_average():
    torch.manual_seed(0)
    # an asymmetric kernel, so that the flip really changes the prediction
    net = nn.Conv2d(3, 4, 3, padding=1).eval()
    x = torch.randn(2, 3, 10, 14)
    with torch.no_grad():
        expected = hand_multiscale(net, x, (0.5, 1.0, 1.5), flip=True)
        got = multiscale_probs(net, x, scales=(0.5, 1.0, 1.5), flip=True, classes=4)
        single = multiscale_probs(net, x, classes=4)
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(single, torch.softmax(net(x), 1))
        assert not torch.allclose(got, single)


def test_multiscale_with_cgnet_keeps_the_input_size():
    predict = Predictor(cgnet(classes=5, M=1, N=1), "exact", "cpu")
    x = torch.randn(1, 3, 37, 53) * 50
    probs = multiscale_probs(predict, x, scales=(0.75, 1.25), flip=True, classes=5)
    assert probs.shape == (1, 5, 37, 53)
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 37, 53))


def test_multiscale_checks_classes_and_scales():
    net = nn.Conv2d(3, 4, 1)
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError):
        multiscale_probs(net, x, scales=(1.0,), classes=5)
    with pytest.raises(ValueError):
        multiscale_probs(net, x, scales=())


# Subnormal floats made and counted by their bits: a process that has run use_device (an earlier test) treats
# them as zero in arithmetic and comparisons.
SUBNORMAL_BITS = 0x00112233  # about 1.6e-39


def subnormal_weights(model, seed=0):
    """Half of every conv weight replaced by a subnormal float, as weight decay leaves them in trained models
    (the authors' CamVid model has 256,385)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                mask = torch.rand(m.weight.shape, generator=g) < 0.5
                m.weight.view(torch.int32)[mask] = SUBNORMAL_BITS
    return model


def count_subnormals(model):
    def count(t):
        bits = t.detach().float().view(torch.int32)
        return int(((bits & 0x7F800000) == 0).logical_and((bits & 0x007FFFFF) != 0).sum())
    return sum(count(t) for t in [*model.parameters(), *model.buffers()] if t.is_floating_point())


def test_inference_loads_zero_subnormal_weights_without_changing_a_logit(tmp_path):
    from engine.checkpoint import build_for_inference, self_contained
    model = subnormal_weights(cgnet(classes=11, M=2, N=3))
    assert count_subnormals(model) > 1000
    ckpt = tmp_path / "m.pth"
    torch.save(self_contained(model.state_dict(), {"name": "CGNet", "classes": 11, "M": 2, "N": 3}, "camvid",
                              [72.39, 82.91, 73.16]), ckpt)
    loaded, _ = build_for_inference(str(ckpt))
    assert count_subnormals(loaded) == 0
    x = torch.randn(1, 3, 48, 64) * 50
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))  # 1e-40 * a pixel vanishes in every sum it joins
    for mode in ("eager", "exact"):  # folding BN scales could make new ones
        assert count_subnormals(Predictor(model, mode).model) == 0


def test_inference_processes_treat_subnormal_numbers_as_zero():
    """The activations too: a process that computes on the CPU through use_device flushes them (Intel CPUs
    compute with them about a hundred times slower), and a process that does not keeps them."""
    import subprocess
    import sys
    from pathlib import Path
    code = ("import sys, torch; sys.path.insert(0, sys.argv[1]); from utils.device import use_device; "
            "sys.argv[2] == 'yes' and use_device(torch.device('cpu')); "
            "print((torch.full((4096,), 1e-39) * 0.5).abs().max().item(), torch.set_flush_denormal(True))")
    root = str(Path(__file__).resolve().parents[1])
    out = {flag: subprocess.run([sys.executable, "-c", code, root, flag], capture_output=True, text=True,
                                check=True).stdout.split() for flag in ("yes", "no")}
    if out["yes"][1] != "True":
        pytest.skip("this CPU cannot flush subnormal numbers (torch.set_flush_denormal is not supported)")
    assert float(out["yes"][0]) == 0.0 and 0 < float(out["no"][0]) < 1e-38
