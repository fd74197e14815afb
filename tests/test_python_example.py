"""The Python example of docs/segment.md, run as it is written there: a checkpoint (and, slow, its ONNX export)
segments a NumPy image and gives the labels, their colours and the class names (issue 33, point 4)."""
import os
import re

import cv2
import numpy as np
import pytest
import torch

from conftest import ROOT
from dataset.synthetic import street_scene
from engine.checkpoint import self_contained
from model import build_model
from utils.checkpoint import save_checkpoint

NETWORK = {"name": "CGNet", "classes": 11, "M": 1, "N": 1}
MEAN = [72.39, 82.91, 73.16]


def example():
    """The first python block under '## Python' in docs/segment.md."""
    text = open(os.path.join(ROOT, "docs", "segment.md"), encoding="utf-8").read()
    section = text[text.index("\n## Python\n"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """model.pth (a small untrained CamVid checkpoint) and street.png, the example's files, in the working folder."""
    torch.manual_seed(0)
    save_checkpoint(self_contained(build_model(**NETWORK).state_dict(), NETWORK, "camvid", MEAN),
                    str(tmp_path / "model.pth"))
    rgb = street_scene(np.random.default_rng(0), 72, 120)[0]
    cv2.imwrite(str(tmp_path / "street.png"), np.ascontiguousarray(rgb[:, :, ::-1]))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def check(scope):
    labels, colours, names, seg = scope["labels"], scope["colours"], scope["names"], scope["seg"]
    assert labels.shape == (72, 120) and labels.dtype == np.uint8 and labels.max() < 11
    assert colours.shape == (72, 120, 3) and colours.dtype == np.uint8
    assert len(names) == 11 and names[0] == "sky"  # CamVid's, as the checkpoint records its dataset
    y, x = np.argwhere(labels == labels.flat[0])[0]
    assert list(colours[y, x]) == list(seg.palette[labels[y, x]])


def test_the_documented_example_runs_as_written(folder):
    assert len(example().strip().splitlines()) <= 10
    scope = {}
    exec(example(), scope)
    check(scope)


@pytest.mark.slow  # exports to ONNX
def test_the_same_lines_run_an_exported_file(folder):
    pytest.importorskip("onnxruntime")
    from engine.backend import load
    from engine.export import export
    export("onnx", load("model.pth"), "model.onnx")
    scope = {}
    exec(example().replace('"model.pth"', '"model.onnx"'), scope)
    check(scope)
    torch_labels = {}
    exec(example(), torch_labels)
    assert (scope["labels"] == torch_labels["labels"]).mean() > 0.99
