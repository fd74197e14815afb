"""Multi-scale + flip testing as mmsegmentation ran it for its published CGNet figures (68.04 / 70.33 mIoU)."""
import pytest
import torch
import torch.nn.functional as F

from model import build_model
from model.inference import multiscale_probs

SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # tools/test.py --aug-test: img_ratios, flip=True


def mmseg_aug_test(model, image, ratios):
    """mmsegmentation 0.x, written out: MultiScaleFlipAug(img_scale=(W, H) of Cityscapes' images, img_ratios, flip)
    → Resize(keep_ratio) → RandomFlip; EncoderDecoder.aug_test → inference(): whole_inference resizes the logits to
    ori_shape, then softmax, then the flip is undone; the probabilities are summed and divided by their count."""
    h, w = image.shape[-2:]
    total = []
    for r in ratios:
        long_side, short_side = int(w * r), int(h * r)                       # img_scale * ratio, truncated
        factor = min(long_side / max(h, w), short_side / min(h, w))           # mmcv.rescale_size
        size = (int(h * factor + 0.5), int(w * factor + 0.5))
        scaled = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        for flip in (False, True):
            x = scaled.flip(3) if flip else scaled
            logit = F.interpolate(model(x), size=(h, w), mode="bilinear", align_corners=False)
            output = F.softmax(logit, dim=1)
            total.append(output.flip(3) if flip else output)
    return sum(total) / len(total)


def softmax_then_resize(model, image, ratios):
    """The order this project used before: probabilities resized, not logits."""
    h, w = image.shape[-2:]
    total = []
    for r in ratios:
        scaled = F.interpolate(image, size=(round(h * r), round(w * r)), mode="bilinear", align_corners=False)
        for flip in (False, True):
            p = F.softmax(model(scaled.flip(3) if flip else scaled), 1)
            total.append(F.interpolate(p.flip(3) if flip else p, size=(h, w), mode="bilinear", align_corners=False))
    return sum(total) / len(total)


def smooth_image(h, w):
    torch.manual_seed(1)
    coarse = torch.rand(1, 3, 4, 8) * 160 - 80
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)


@pytest.fixture(scope="module")
def cgnet():
    """A random CGNet whose logits vary and are confident (std ~4), as a trained network's are."""
    torch.manual_seed(0)
    model = build_model("CGNet", 19, M=2, N=3, head_bias=True).eval()
    with torch.no_grad():
        head = model.classifier[0].conv
        head.weight.mul_(4 / model(smooth_image(64, 128)).std())
    return model


def test_multiscale_probs_is_mmsegmentations_aug_test(cgnet):
    image = smooth_image(64, 128)  # 1:2, as Cityscapes' 1024x2048
    with torch.no_grad():
        ours = multiscale_probs(cgnet, image, SCALES, flip=True, classes=19)
        theirs = mmseg_aug_test(cgnet, image, SCALES)
        before = softmax_then_resize(cgnet, image, SCALES)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert torch.equal(ours.argmax(1), theirs.argmax(1))
    # the test can tell the two orders apart: resizing probabilities gives other numbers
    assert (before - theirs).abs().max() > 100 * (ours - theirs).abs().max() + 1e-4


def test_scaled_sizes_are_rounded_half_up_as_mmcv():
    sizes = []
    def record(x):
        sizes.append(tuple(x.shape[-2:]))
        return torch.zeros(1, 2, *x.shape[-2:])
    multiscale_probs(record, torch.zeros(1, 3, 37, 53), (0.5, 1.5), flip=True)
    # int(37 * 0.5 + 0.5) = 19 where Python's round(18.5) = 18; flipped passes have the same size
    assert sizes == [(19, 27), (19, 27), (56, 80), (56, 80)]
