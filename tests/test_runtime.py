"""OpenVINO compiled per input shape (engine.runtime), frames in flight for a video, and segment.py --profile."""
import glob
import os
import re

import cv2
import numpy as np
import pytest

import engine.runtime as runtime
from engine.backend import read_openvino
from engine.profile import STAGES
from tools import export_openvino, segment
from utils.errors import run_cli

pytestmark = pytest.mark.slow  # trains a network and exports it to OpenVINO fp32 and int8


@pytest.fixture(scope="module")
def irs(trained_tiny, tmp_path_factory):
    """The tiny trained CGNet as an fp32 and an int8 IR, and real-sized test images of two sizes."""
    root = tmp_path_factory.mktemp("runtime")
    cs = trained_tiny["cs"]
    files = {"xml": str(root / "cgnet.xml"), "int8": str(root / "cgnet_int8.xml")}
    run_cli(export_openvino.main, export_openvino.get_args_parser(),
            ["--resume", trained_tiny["ckpt"], "--out", files["xml"], "--min_agreement", "0"])
    run_cli(export_openvino.main, export_openvino.get_args_parser(),
            ["--resume", trained_tiny["ckpt"], "--out", files["int8"], "--int8", "--calibration",
             f"{cs}/leftImg8bit/train", "--min_agreement", "0"])
    photos = sorted(glob.glob(f"{cs}/leftImg8bit/*/*/*.png"))
    small = [cv2.imread(p) for p in photos]                                  # 48x96
    large = [cv2.resize(image, (128, 64), interpolation=cv2.INTER_LINEAR) for image in small]
    return {**files, "cs": cs, "root": root, "small": small, "large": large}


def dynamic_labels(run, image):
    compiled, (request,) = run.dynamic
    return request.infer({0: image[None]})[compiled.output("labels")].copy()


@pytest.mark.parametrize("kind", ["xml", "int8"])
def test_a_shape_met_again_is_compiled_for_itself_and_keeps_the_dynamic_labels(irs, kind):
    run = runtime.ShapedModel(read_openvino(irs[kind]), "none", 2)
    same = total = 0
    for image in irs["small"] + irs["large"]:
        x = image[None]
        met = (x.shape, "LATENCY") in run.fixed or x.shape in [k[0] for k in run.met]
        labels = run(x, "labels")
        dynamic = dynamic_labels(run, image)
        if not met:
            assert (x.shape, "LATENCY") not in run.fixed
            assert np.array_equal(labels, dynamic)  # met once: the dynamic model itself
            labels = run(x, "labels")
        assert (x.shape, "LATENCY") in run.fixed  # met again: compiled for it
        same, total = same + int((labels == dynamic).sum()), total + dynamic.size
    assert same / total >= 0.9999
    assert len(run.fixed) == 2


def test_the_cache_keeps_the_latest_shapes_and_stops_compiling_when_shapes_keep_coming(irs, monkeypatch):
    monkeypatch.setattr(runtime, "MAX_EVICTIONS", 1)
    run = runtime.ShapedModel(read_openvino(irs["xml"]), "none", 1, shapes=2)
    sizes = [(48, 96), (64, 128), (32, 64), (40, 80)]
    for h, w in sizes:
        x = np.zeros((1, h, w, 3), np.uint8)
        run(x, "labels")
        run(x, "labels")
    kept = [key[0][1:3] for key in run.fixed]
    assert kept == [(64, 128), (32, 64)]  # (48, 96) evicted once; then (40, 80) stays on the dynamic model
    assert run.evictions == 1


def test_a_stream_gives_every_frame_s_labels_in_order_across_a_change_of_size(irs):
    run = runtime.ShapedModel(read_openvino(irs["int8"]), "none", 2)
    frames = irs["small"][:3] + irs["large"][:2] + irs["small"][3:]
    out = list(run.stream((i, image[None]) for i, image in enumerate(frames)))
    assert [tag for tag, _ in out] == list(range(len(frames)))
    for (_, labels), image in zip(out, frames):
        assert np.array_equal(labels, run(image[None], "labels"))
    # For a video, each shape is compiled in the background, for requests in flight; the stream meanwhile
    # went through the dynamic model, with the same labels.
    for built in list(run.building.values()):
        built.result()
    for shape in ((1, 48, 96, 3), (1, 64, 128, 3)):
        compiled, requests = run.compiled(shape, "THROUGHPUT")
        assert compiled is not run.dynamic[0] and len(requests) >= 1
    again = list(run.stream((i, image[None]) for i, image in enumerate(frames)))  # now on those compilations
    assert [tag for tag, _ in again] == list(range(len(frames)))
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(out, again))


def test_a_folder_of_two_sizes_gives_the_dynamic_model_s_labels(irs, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    images = {}
    for i, image in enumerate(irs["small"][:3] + irs["large"][:3]):
        cv2.imwrite(str(folder / f"{i}.png"), image)
        images[str(i)] = image
    run_cli(segment.main, segment.get_args_parser(),
            ["--resume", irs["int8"], str(folder), "--out", str(tmp_path / "out"), "--cuda", "false"])
    check = runtime.ShapedModel(read_openvino(irs["int8"]), "none", 2)
    same = total = 0
    for stem, image in images.items():
        written = cv2.imread(str(tmp_path / "out" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        dynamic = dynamic_labels(check, image)[0]
        same, total = same + int((written == dynamic).sum()), total + dynamic.size
    assert same / total >= 0.9999


def test_profile_prints_where_a_frame_s_time_goes(irs, tmp_path, capsys):
    video = str(tmp_path / "drive.mp4")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 48))
    for image in irs["small"] * 3:
        writer.write(image)
    writer.release()
    summary = run_cli(segment.main, segment.get_args_parser(),
                      ["--resume", irs["int8"], video, "--out", str(tmp_path / "out"), "--profile"])
    printed = capsys.readouterr().out
    rows = {m.group(1).strip(): float(m.group(2)) for m in re.finditer(r"^([a-z][a-z ]+?)\s+([\d.]+)", printed, re.M)}
    assert set(STAGES) <= set(rows) and {"sum of stages", "wall per frame"} <= set(rows)
    wall = rows["wall per frame"]
    assert all(rows[s] > 0 for s in ("decode", "network", "colour and blend", "encode"))
    assert rows["sum of stages"] == pytest.approx(sum(rows[s] for s in STAGES), abs=0.05)
    # One thread each for decoding, blending and encoding: each within the wall time; two requests in flight.
    slack = 1.05 * wall + 0.1
    assert rows["decode"] + rows["preprocess"] <= slack and rows["colour and blend"] <= slack
    assert rows["encode"] + rows["write"] <= slack and rows["network"] <= runtime.IN_FLIGHT * slack
    assert summary["videos"][0]["frames"] == len(irs["small"]) * 3
    assert summary["videos"][0]["profile"]["network"] == pytest.approx(rows["network"], abs=0.01)


def test_profile_with_images_only_says_it_prints_nothing(irs, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "a.png"), irs["small"][0])
    run_cli(segment.main, segment.get_args_parser(),
            ["--resume", irs["xml"], str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--profile"])
    assert "--profile times the frames of videos" in capsys.readouterr().out
    assert os.path.isfile(tmp_path / "out" / "a.png")
