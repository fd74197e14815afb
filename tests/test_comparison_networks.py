"""The comparison networks selectable with --model: shapes, parameter counts, training protocol."""
import functools

import pytest
import torch

from model import MODELS, build_model, count_parameters
from model.EncNet import Encoding, class_presence

COMPARED = ("ENet", "ESPNet", "LRASPP", "EncNet")


def heavy(values, name):
    """LR-ASPP and EncNet are torchvision networks (seconds to import and build): their cases are slow."""
    return pytest.param(*values, marks=pytest.mark.slow if name in ("LRASPP", "EncNet") else ())

# Counted once and pinned: a change to any layer shows up here.
PARAMETERS = {
    ("ENet", 19): 364311, ("ENet", 11): 363791,
    ("ESPNet", 19): 363462, ("ESPNet", 11): 353437,
    ("LRASPP", 19): 3221198, ("LRASPP", 11): 3219838,
    ("EncNet", 19): 35872729, ("EncNet", 11): 35862465,
}

# Millions of parameters, 19 classes. ENet and ESPNet: 0.37 M and 0.364 M in their papers, 0.4 M in the
# CGNet tables; LR-ASPP: 3.2 M in torchvision; EncNet: ResNet-50 (23.5 M) plus heads.
PAPER_RANGE = {"ENet": (0.3, 0.4), "ESPNet": (0.3, 0.4), "LRASPP": (3.0, 3.5), "EncNet": (30.0, 40.0)}


@functools.lru_cache(maxsize=None)
def _model(name, classes):
    torch.manual_seed(0)
    return build_model(name, classes)


@pytest.fixture
def model(request):
    """A cached model (building EncNet takes a second), in eval mode; tests that train put it back."""
    m = _model(*request.param)
    m.eval()
    m.zero_grad(set_to_none=True)
    return m


def test_every_model_is_registered():
    assert set(COMPARED) <= set(MODELS)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("SegNet", 19)


@pytest.mark.parametrize("name, classes", [heavy(key, key[0]) for key in sorted(PARAMETERS)])
def test_parameter_counts(name, classes):
    assert count_parameters(_model(name, classes)) == PARAMETERS[name, classes]


@pytest.mark.parametrize("name", [heavy((name,), name) for name in COMPARED])
def test_parameter_count_is_that_of_the_papers(name):
    low, high = PAPER_RANGE[name]
    assert low < count_parameters(_model(name, 19)) / 1e6 < high


@pytest.mark.parametrize("model", [heavy(((n, 11),), n) for n in ("ENet", "ESPNet", "LRASPP")], indirect=True,
                         ids=lambda p: p[0])
@pytest.mark.parametrize("size", [(64, 128), (97, 131), (33, 65), (17, 9)])
def test_output_has_input_size_and_classes(model, size):
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 11, *size)
    assert torch.isfinite(out).all()


@pytest.mark.slow
@pytest.mark.parametrize("model", [("EncNet", 11)], indirect=True, ids=lambda p: p[0])
@pytest.mark.parametrize("size", [(64, 64), (41, 57)])
def test_encnet_eval_output_is_the_logits_at_input_size(model, size):
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (1, 11, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("model", [heavy(((n, 11),), n) for n in ("ENet", "ESPNet", "LRASPP")], indirect=True,
                         ids=lambda p: p[0])
def test_training_step_without_auxiliary_outputs(model):
    model.train()
    try:
        out = model(torch.randn(2, 3, 32, 48))
        assert isinstance(out, torch.Tensor) and out.shape == (2, 11, 32, 48)
        torch.nn.functional.cross_entropy(out, torch.randint(0, 11, (2, 32, 48))).backward()
    finally:
        model.eval()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("model", [("EncNet", 11)], indirect=True, ids=lambda p: p[0])
def test_encnet_training_step_with_se_and_auxiliary_losses(model):
    labels = torch.randint(0, 12, (2, 64, 64))  # 11 is CamVid's ignore label
    model.train()
    try:
        out = model(torch.randn(2, 3, 64, 64))
    finally:
        model.eval()
    logits, aux = out
    assert logits.shape == (2, 11, 64, 64)
    loss = model.aux_loss(aux, labels, ignore_label=11)
    assert loss.dim() == 0 and torch.isfinite(loss)
    (torch.nn.functional.cross_entropy(logits, labels, ignore_index=11) + loss).backward()
    for head in (model.decode_head.se_layer, model.auxiliary_head.conv_seg, model.backbone.layer3):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())


def test_class_presence_leaves_out_the_ignore_label():
    labels = torch.full((2, 4, 5), 255)
    labels[0, 0, 0], labels[0, 3, 4], labels[1, 2, 2] = 2, 18, 0
    expected = torch.zeros(2, 19)
    expected[0, 2] = expected[0, 18] = expected[1, 0] = 1
    assert torch.equal(class_presence(labels, 19, ignore_label=255), expected)
    camvid = torch.tensor([[[11, 3], [3, 11]]])
    assert class_presence(camvid, 11, ignore_label=11).nonzero().tolist() == [[0, 3]]


def test_encoding_matches_the_direct_formula():
    enc = Encoding(channels=16, num_codes=4)
    x = torch.randn(2, 16, 3, 5)
    xs = x.flatten(2).transpose(1, 2).unsqueeze(2)                   # (B, N, 1, C)
    residual = xs - enc.codewords                                    # (B, N, K, C)
    assignment = torch.softmax(enc.scale * residual.pow(2).sum(3), dim=2)
    expected = (assignment.unsqueeze(3) * residual).sum(1)           # (B, K, C)
    torch.testing.assert_close(enc(x), expected, rtol=1e-4, atol=1e-5)
