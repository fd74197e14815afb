import os
import re

import pytest
import torch

from model import CGNet, build_model, count_parameters

DATA = os.path.join(os.path.dirname(__file__), "data", "cgnet_m3n21_state_dict.txt")


def reference_entries():
    entries = []
    for line in open(DATA):
        if line.startswith("#") or not line.strip():
            continue
        name, shape = re.match(r"(\S+) \((.*)\)", line.strip()).groups()
        entries.append((name, tuple(int(s) for s in shape.split(",") if s.strip())))
    return entries


def test_state_dict_matches_the_original_release_names_order_and_shapes():
    sd = CGNet.Context_Guided_Network(classes=19, M=3, N=21).state_dict()
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == reference_entries()


@pytest.mark.parametrize("classes, expected", [(19, 496306), (11, 494258)])
def test_parameter_counts(classes, expected):
    assert count_parameters(CGNet.Context_Guided_Network(classes=classes)) == expected


@pytest.mark.parametrize("size", [(64, 128), (97, 131), (33, 65), (1, 1), (360, 480)])
def test_output_has_input_size_and_classes(size):
    model = CGNet.Context_Guided_Network(classes=11, M=2, N=3).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 11, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("M, N", [(1, 1), (1, 4), (5, 2)])
def test_any_depth_builds_and_runs(M, N):
    model = build_model("CGNet", 19, M=M, N=N).eval()
    assert len(model.level2) == M - 1 and len(model.level3) == N - 1
    with torch.no_grad():
        assert model(torch.randn(1, 3, 40, 56)).shape == (1, 19, 40, 56)


def test_invalid_depth_is_refused():
    with pytest.raises(ValueError, match="M >= 1"):
        CGNet.Context_Guided_Network(M=0)


def test_dropout_variant_keeps_classifier_names_compatible():
    sd = CGNet.Context_Guided_Network(dropout_flag=True).state_dict()
    assert "classifier.1.conv.weight" in sd


def test_model_code_never_calls_cuda():
    src = open(os.path.join(os.path.dirname(DATA), "..", "..", "model", "CGNet.py")).read()
    assert ".cuda(" not in src


def test_concatenation_orders_follow_the_original():
    """Give each branch a distinct constant and check which channels of each concat it lands in."""
    model = CGNet.Context_Guided_Network(classes=3, M=2, N=2).eval()
    seen = {}
    model.b1.bn.register_forward_hook(lambda m, i, o: seen.__setitem__("b1", i[0]))
    model.bn_prelu_2.bn.register_forward_hook(lambda m, i, o: seen.__setitem__("bp2", i[0]))
    model.bn_prelu_3.bn.register_forward_hook(lambda m, i, o: seen.__setitem__("bp3", i[0]))
    outs = {}
    model.level1_2.register_forward_hook(lambda m, i, o: outs.__setitem__("output0", o))
    model.level2_0.register_forward_hook(lambda m, i, o: outs.__setitem__("output1_0", o))
    model.level2[-1].register_forward_hook(lambda m, i, o: outs.__setitem__("output1", o))
    model.level3_0.register_forward_hook(lambda m, i, o: outs.__setitem__("output2_0", o))
    model.level3[-1].register_forward_hook(lambda m, i, o: outs.__setitem__("output2", o))
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        model(x)
    assert torch.equal(seen["b1"][:, :32], outs["output0"])
    assert torch.equal(seen["bp2"][:, :64], outs["output1"])
    assert torch.equal(seen["bp2"][:, 64:128], outs["output1_0"])
    assert torch.equal(seen["bp3"][:, :128], outs["output2_0"])
    assert torch.equal(seen["bp3"][:, 128:], outs["output2"])
