"""tools/export_onnx.py: a graph with the preprocessing inside, equal to the PyTorch predictions."""
import glob

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch

from dataset.datasets import normalize, to_tensor
from engine.checkpoint import build_for_inference
from tools import export_onnx
from utils.errors import run_cli

pytestmark = pytest.mark.slow  # exports the network to ONNX, as heavy as torch.compile


@pytest.fixture(scope="module")
def trained(trained_tiny):
    return trained_tiny["ckpt"], sorted(glob.glob(f"{trained_tiny['cs']}/leftImg8bit/val/*/*.png"))


def torch_labels(ckpt, image_bgr):
    model, weights = build_for_inference(ckpt)
    with torch.inference_mode():
        return model(to_tensor(normalize(image_bgr, weights.mean))[None]).argmax(1).numpy()


def test_the_graph_reads_cv2_images_and_its_labels_equal_pytorch(trained, tmp_path):
    ckpt, images = trained
    out = tmp_path / "cgnet.onnx"
    result = run_cli(export_onnx.main, export_onnx.get_args_parser(),
                     ["--resume", ckpt, "--out", str(out), "--image", images[0]])
    assert result["agreement"] == 1.0 and result["max_logit_diff"] < 1e-3
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["labels", "logits"]
    image = cv2.imread(images[1])  # BGR uint8, as the graph expects
    labels, logits = session.run(None, {"image": image[None]})
    assert labels.dtype == np.int64 and logits.dtype == np.float32 and logits.shape == (1, 19, 48, 96)
    assert np.array_equal(labels, torch_labels(ckpt, image))
    # N, H and W are dynamic
    batch = np.stack([cv2.resize(cv2.imread(p), (72, 40)) for p in images])
    labels, _ = session.run(None, {"image": batch})
    assert labels.shape == (2, 40, 72)
    assert np.array_equal(labels[1], torch_labels(ckpt, batch[1])[0])


def test_a_graph_that_disagrees_is_refused_and_not_written(trained, tmp_path, monkeypatch, capsys):
    ckpt, images = trained
    monkeypatch.setattr(export_onnx, "MIN_AGREEMENT", 1.01)  # no graph can pass: the refusal path
    out = tmp_path / "cgnet.onnx"
    with pytest.raises(SystemExit) as e:
        run_cli(export_onnx.main, export_onnx.get_args_parser(), ["--resume", ckpt, "--out", str(out)])
    assert e.value.code == 2
    assert "was not written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
