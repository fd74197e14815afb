import math

import numpy as np
import torch

from utils.metric import ConfusionMatrix


def test_iou_matches_a_hand_computation_and_skips_absent_classes():
    cm = ConfusionMatrix(4, 255, "cpu")
    target = torch.tensor([[0, 0, 1, 1], [1, 255, 2, 2]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 3, 2, 0]])
    cm.update(pred, target)
    r = cm.compute()
    # class 0: tp1 fp1 fn1 -> 1/3; class 1: tp2 fp1 fn1 -> 2/4; class 2: tp1 fp1 fn1 -> 1/3; class 3: only
    # predicted on an ignore pixel (not counted) -> absent from GT and prediction -> NaN, left out.
    assert r["IoU"][:3] == [1 / 3, 0.5, 1 / 3]
    assert math.isnan(r["IoU"][3])
    assert r["mIoU"] == (1 / 3 + 0.5 + 1 / 3) / 3
    assert r["pixel_accuracy"] == 4 / 7


def test_class_with_no_intersection_counts_as_zero_unlike_the_original():
    cm = ConfusionMatrix(3, 255, "cpu")
    cm.update(torch.tensor([0, 0, 1]), torch.tensor([0, 2, 1]))
    r = cm.compute()
    assert r["IoU"] == [0.5, 1.0, 0.0]
    assert r["mIoU"] == 0.5


def test_matches_numpy_reference_on_random_data():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 6, 5000)
    t[rng.random(5000) < 0.1] = 255
    p = rng.integers(0, 5, 5000)
    cm = ConfusionMatrix(5, 255, "cpu")
    for a, b in zip(np.array_split(p, 7), np.array_split(t, 7)):
        cm.update(torch.from_numpy(a), torch.from_numpy(b))
    keep = t < 5
    ref = np.zeros((5, 5), np.int64)
    np.add.at(ref, (t[keep], p[keep]), 1)
    assert (cm.mat.numpy() == ref).all()
