"""engine.backend's metadata of exported files: what an export embeds reads back as the Weights a .pth gives;
anything less is refused naming what is missing (quick tier: no export, no runtime)."""
import json

import numpy as np
import pytest

from dataset.specs import CITYSCAPES
from engine.checkpoint import class_table
from engine.backend import GraphBackend, metadata, parse_metadata
from utils.errors import UserError

NETWORK = {"name": "CGNet", "classes": 19, "M": 3, "N": 21}


def test_the_record_round_trips():
    names, palette = list(CITYSCAPES.class_names), [list(c) for c in CITYSCAPES.palette]
    text = metadata(NETWORK, "cityscapes", [72.39, 82.91, 73.16], names, palette, "int8")
    weights = parse_metadata(text, "cgnet_int8.xml")
    assert weights.network == NETWORK and weights.dataset == "cityscapes" and weights.layout == "openvino"
    assert np.allclose(weights.mean, [72.39, 82.91, 73.16]) and weights.ckpt["precision"] == "int8"
    assert class_table(weights) == (names, palette)


def test_missing_or_damaged_records_are_refused_by_name():
    with pytest.raises(UserError, match="has no 'cgnet' metadata .*class names"):
        parse_metadata(None, "plain.onnx")
    record = json.loads(metadata(NETWORK, None, [0, 0, 0], ["a"] * 19, [[0, 0, 0]] * 19, "fp32"))
    del record["palette"], record["class_names"]
    with pytest.raises(UserError, match="'cgnet' metadata without class_names, palette"):
        parse_metadata(json.dumps(record), "x.onnx")
    with pytest.raises(UserError, match="damaged 'cgnet' record"):
        parse_metadata(metadata(NETWORK, None, [0, 0], ["a"] * 19, [[0, 0, 0]] * 19, "fp32"), "x.onnx")


def test_the_float_input_of_the_eval_scripts_becomes_the_uint8_image_exactly():
    import torch
    seen = []
    mean = np.asarray([72.39, 82.91, 73.16], np.float32)
    weights = parse_metadata(metadata(NETWORK, None, mean, ["a"] * 19, [[0, 0, 0]] * 19, "fp32"), "x.onnx")
    run = lambda a, out: seen.append(a) or np.zeros((1, 2, 4, 5), np.float32)  # noqa: E731 (the graph's)
    backend = GraphBackend("x.onnx", weights, run)
    image = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)  # BGR
    x = torch.from_numpy((image[:, :, ::-1].astype(np.float32) - mean).transpose(2, 0, 1).copy())[None]
    backend.logits(x)
    backend.labels(backend.prepare(image))  # the image itself, as tools/segment.py gives it
    assert seen[0].dtype == np.uint8 and np.array_equal(seen[0][0], image) and np.array_equal(seen[1][0], image)
