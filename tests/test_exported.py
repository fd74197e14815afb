"""Exported files (.onnx, OpenVINO .xml fp32 and int8) as --resume: the exports record what inference needs,
and every script predicts with them what it predicts with the .pth."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import onnx
import openvino as ov
import pytest
import torch

import benchmark
import cityscapes_eval
import cityscapes_test
from conftest import ROOT, fails, free_port, segmenter_of
from dataset.datasets import read_list
from engine.backend import load
from engine.checkpoint import build_for_inference, class_table
from engine.export import Check, compare_on_list
from model import build_model
from tools import export_onnx, export_openvino, segment, webui
from tools.bench_segment import make_video
from utils.errors import run_cli

pytestmark = pytest.mark.slow  # trains a network and exports it to ONNX and OpenVINO


@pytest.fixture(scope="module")
def exported(trained_tiny, tmp_path_factory):
    """A CGNet M1N2 trained one epoch on synthetic Cityscapes, and its ONNX, fp32 IR and int8 IR."""
    root = tmp_path_factory.mktemp("exported")
    cs = trained_tiny["cs"]
    files = {"pth": trained_tiny["ckpt"], "onnx": str(root / "cgnet.onnx"),
             "xml": str(root / "ir" / "cgnet.xml"), "int8": str(root / "ir" / "cgnet_int8.xml")}
    run_cli(export_onnx.main, export_onnx.get_args_parser(), ["--resume", files["pth"], "--out", files["onnx"]])
    run_cli(export_openvino.main, export_openvino.get_args_parser(), ["--resume", files["pth"], "--out", files["xml"]])
    # One epoch of training leaves near-tied logits, which int8 rounding flips: the threshold is not the point here.
    run_cli(export_openvino.main, export_openvino.get_args_parser(),
            ["--resume", files["pth"], "--out", files["int8"], "--int8", "--calibration", f"{cs}/leftImg8bit/train",
             "--min_agreement", "0.5"])
    return {"cs": cs, "root": root, **files}


def eval_argv(cs, resume, *extra):
    return ["--data_dir", cs, "--val_data_list", f"{cs}/cityscapes_val_list.txt", "--resume", resume, "--M", "1",
            "--N", "2", "--num_workers", "0", "--cuda", "false", "--gpus", "", *extra]


def test_exports_record_what_inference_needs(exported):
    _, weights = build_for_inference(exported["pth"])
    names, palette = class_table(weights)
    for kind, precision in (("onnx", "fp32"), ("xml", "fp32"), ("int8", "int8")):
        recorded = load(exported[kind]).weights
        assert recorded.network == weights.network and recorded.dataset == weights.dataset == "cityscapes"
        assert np.array_equal(recorded.mean, weights.mean)
        assert (recorded.class_names, recorded.palette) == (names, palette) == class_table(recorded)
        assert recorded.ckpt["precision"] == precision
    ir = ov.Core().read_model(exported["xml"])
    assert [i.get_any_name() for i in ir.inputs] == ["image"] and str(ir.input(0).get_element_type()) == "<Type: 'uint8_t'>"
    assert [o.get_any_name() for o in ir.outputs] == ["labels", "logits"]
    assert ir.input(0).get_partial_shape().to_string() == "[?,?,?,3]"  # N, H, W dynamic


def test_the_logits_declare_the_class_count_and_n_h_w_stay_dynamic(exported):
    graph = onnx.load(exported["onnx"]).graph
    logits = next(o for o in graph.output if o.name == "logits").type.tensor_type.shape.dim
    assert [d.dim_value for d in logits] == [0, 19, 0, 0] and [d.dim_param for d in logits] == ["N", "", "H", "W"]
    for kind in ("xml", "int8"):
        ir = ov.Core().read_model(exported[kind])
        assert ir.output("logits").get_partial_shape().to_string() == "[?,19,?,?]"
        assert ir.output("labels").get_partial_shape().to_string() == "[?,?,?]"


def test_fp32_files_predict_what_pytorch_predicts(exported):
    model, weights = build_for_inference(exported["pth"])
    images = [cv2.imread(p) for p in sorted(glob.glob(f"{exported['cs']}/leftImg8bit/val/*/*.png"))]
    batch = np.stack([cv2.resize(im, (72, 40)) for im in images])  # another size, a batch of 2
    with torch.inference_mode():
        ref = model(torch.from_numpy(batch[..., ::-1].astype(np.float32) - weights.mean).permute(0, 3, 1, 2))
    for kind in ("onnx", "xml"):
        logits = load(exported[kind]).logits(torch.from_numpy(batch))
        assert logits.shape == (2, 19, 40, 72) and logits.dtype == torch.float32
        assert (logits - ref).abs().max() < 1e-3 and torch.equal(logits.argmax(1), ref.argmax(1))


def test_eval_of_exported_files_gives_the_metrics_of_the_pth(exported, tmp_path):
    metrics = {}
    for kind in ("pth", "onnx", "xml", "int8"):
        out = tmp_path / f"{kind}.json"
        run_cli(cityscapes_eval.main, cityscapes_eval.get_args_parser(),
                eval_argv(exported["cs"], exported[kind], "--metrics", str(out)))
        metrics[kind] = json.loads(out.read_text())
    for kind in ("onnx", "xml"):
        assert metrics[kind]["mIoU"] == pytest.approx(metrics["pth"]["mIoU"], abs=1e-6)
        assert metrics[kind]["pixel_accuracy"] == pytest.approx(metrics["pth"]["pixel_accuracy"], abs=1e-3)
    # The int8 file's own mIoU, counted once more outside the eval loop (from the images as they are, not from
    # the loader's float tensors), is what the script reported for it.
    samples = read_list(f"{exported['cs']}/cityscapes_val_list.txt", exported["cs"], True, "--val_data_list")
    direct = compare_on_list(exported["int8"], load(exported["pth"]), Check(samples=samples))
    assert metrics["int8"]["mIoU"] == pytest.approx(direct["miou"], abs=1e-9)
    assert metrics["pth"]["mIoU"] == pytest.approx(direct["miou_pytorch"], abs=1e-6)
    assert metrics["int8"]["checkpoint"] == exported["int8"]


def test_test_script_and_flip_run_an_ir(exported, tmp_path):
    pngs = {}
    for kind in ("pth", "xml"):
        argv = ["--data_dir", exported["cs"], "--test_data_list", f"{exported['cs']}/cityscapes_test_list.txt",
                "--resume", exported[kind], "--save_seg_dir", str(tmp_path / kind), "--submit_dir",
                str(tmp_path / f"{kind}_submit"), "--M", "1", "--N", "2", "--num_workers", "0", "--cuda", "false",
                "--gpus", "", "--flip", "true"]
        run_cli(cityscapes_test.main, cityscapes_test.get_args_parser(), argv)
        pngs[kind] = [cv2.imread(p, cv2.IMREAD_UNCHANGED) for p in sorted(glob.glob(str(tmp_path / f"{kind}_submit/*.png")))]
    assert len(pngs["xml"]) == 2
    agreement = np.mean([np.mean(a == b) for a, b in zip(pngs["pth"], pngs["xml"])])
    assert agreement >= 0.999


def test_segment_runs_an_ir_on_images_and_videos(exported, tmp_path):
    image = sorted(glob.glob(f"{exported['cs']}/leftImg8bit/val/*/*.png"))[0]
    video = str(tmp_path / "drive.mp4")
    make_video(video, 3, w=96, h=48)
    preds = {}
    for kind in ("pth", "xml"):
        out = tmp_path / kind
        summary = run_cli(segment.main, segment.get_args_parser(),
                          ["--resume", exported[kind], image, video, "--out", str(out), "--cuda", "false"])
        assert summary["images"] == 1 and summary["videos"][0]["frames"] == 3
        preds[kind] = cv2.imread(str(out / (os.path.basename(image)[:-4] + ".png")), cv2.IMREAD_UNCHANGED)
        assert (out / "drive_overlay.mp4").is_file()
    assert np.mean(preds["pth"] == preds["xml"]) >= 0.999


def test_the_web_page_serves_an_exported_file_as_tools_segment_does(exported, tmp_path):
    from gradio_client import Client, handle_file
    image = sorted(glob.glob(f"{exported['cs']}/leftImg8bit/val/*/*.png"))[0]
    args = webui.get_args_parser().parse_args(["--resume", exported["onnx"], "--port", str(free_port())])
    seg = segmenter_of(args)
    app = webui.build_app(seg, str(tmp_path))
    try:
        url = webui.launch(app, args, [], block=False)
        *_, files = Client(url, verbose=False).predict(handle_file(image), 0.5, api_name="/segment")
    finally:
        app.close()
    run_cli(segment.main, segment.get_args_parser(), ["--resume", exported["onnx"], image, "--out", str(tmp_path / "out")])
    name = os.path.basename(image)[:-4]
    assert seg.describe().startswith("CGNet M1N2, 19 classes")
    assert np.array_equal(cv2.imread(files[0], cv2.IMREAD_UNCHANGED),
                          cv2.imread(str(tmp_path / "out" / f"{name}.png"), cv2.IMREAD_UNCHANGED))


def test_int8_export_checked_on_a_labelled_list_and_refused_past_the_miou_drop(exported, tmp_path, capsys):
    argv = ["--resume", exported["pth"], "--int8", "--calibration", f"{exported['cs']}/cityscapes_train_list.txt",
            "--data_dir", exported["cs"], "--val_data_list", f"{exported['cs']}/cityscapes_val_list.txt",
            "--min_agreement", "0"]  # the mIoU drop is what is checked here
    out = tmp_path / "kept" / "q.xml"
    result = run_cli(export_openvino.main, export_openvino.get_args_parser(),
                     argv + ["--out", str(out), "--max_miou_drop", "100"])
    metrics = tmp_path / "int8.json"
    run_cli(cityscapes_eval.main, cityscapes_eval.get_args_parser(),
            eval_argv(exported["cs"], str(out), "--metrics", str(metrics)))
    assert result["miou"] == pytest.approx(json.loads(metrics.read_text())["mIoU"], abs=1e-9)
    assert sorted(os.listdir(out.parent)) == ["q.bin", "q.xml"]
    # The same export, allowed a drop just below the one it has, is refused: exit 2, nothing written.
    drop = (result["miou_pytorch"] - result["miou"]) * 100
    refused = tmp_path / "refused" / "q.xml"
    message = fails(export_openvino, argv + ["--out", str(refused), "--max_miou_drop", f"{drop - 0.01}"], capsys)
    assert f"{drop:.2f} points lower: more than --max_miou_drop" in message and "was not written" in message
    assert not refused.parent.exists()


def test_a_killed_export_leaves_nothing_once_the_next_one_has_run(exported, tmp_path):
    folder = tmp_path / "deploy"
    killed = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "export_openvino.py"), "--resume",
                               exported["pth"], "--out", str(folder / "cgnet.xml")], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not [p for p in glob.glob(f"{folder}/.cgnet-stage-*/*") if not p.endswith(".cgnet-owner")]:
        assert killed.poll() is None and time.monotonic() < deadline, "the export ended before it could be killed"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)  # in the middle of writing its files
    killed.wait()
    assert glob.glob(f"{folder}/.cgnet-stage-*")  # what the killed export left
    run_cli(export_openvino.main, export_openvino.get_args_parser(),
            ["--resume", exported["pth"], "--out", str(folder / "cgnet.xml")])
    assert sorted(os.listdir(folder)) == ["cgnet.bin", "cgnet.xml"]


def test_benchmark_times_the_cpu_runtimes_beside_eager(exported):
    results = benchmark.main(benchmark.get_args_parser().parse_args([
        "--device", "cpu", "--input_size", "40,56", "--M", "1", "--N", "1", "--warmup", "0", "--runs", "2",
        "--mode", "openvino", "openvino_bf16", "openvino_int8", "onnxruntime_int8"]))
    for mode in ("openvino", "openvino_bf16", "openvino_int8", "onnxruntime_int8"):
        assert "error" not in results[mode] and len(results[mode]["times_s"]) == 2, results[mode]
    assert results["openvino"]["argmax_agreement"] > 0.999  # f32 pinned: exact up to rounding
    results = benchmark.main(benchmark.get_args_parser().parse_args([
        "--device", "cpu", "--input_size", "40,56", "--warmup", "0", "--runs", "2", "--checkpoint", exported["xml"]]))
    assert set(results) == {"file", "file_bf16"} and results["file"]["median_ms"] > 0


# Refusals: one sentence, exit 2, nothing written.

def test_an_xml_without_its_bin_is_refused(exported, tmp_path, capsys):
    xml = tmp_path / "alone.xml"
    shutil.copy(exported["xml"], xml)
    message = fails(cityscapes_eval, eval_argv(exported["cs"], str(xml)), capsys)
    assert "alone.bin" in message and str(xml) in message


def test_files_not_made_by_the_export_are_refused_naming_what_is_missing(exported, tmp_path, capsys):
    net = build_model("CGNet", 19, M=1, N=2).eval()
    onnx_path, xml_path = str(tmp_path / "plain.onnx"), str(tmp_path / "plain.xml")
    with pytest.warns(DeprecationWarning):  # the TorchScript exporter, as tools/export_onnx.py uses it
        torch.onnx.export(net, (torch.zeros(1, 3, 32, 32),), onnx_path, dynamo=False)
    ov.save_model(ov.convert_model(onnx_path), xml_path)
    for path in (onnx_path, xml_path):
        message = fails(cityscapes_eval, eval_argv(exported["cs"], path), capsys)
        assert "no 'cgnet' metadata" in message and "class names" in message and "export_openvino.py" in message
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(b"not a graph")
    assert "not an ONNX model" in fails(cityscapes_eval, eval_argv(exported["cs"], str(damaged)), capsys)


def test_int8_needs_calibration_images_that_decode(exported, tmp_path, capsys):
    out = tmp_path / "out" / "q.xml"
    argv = ["--resume", exported["pth"], "--out", str(out), "--int8"]
    assert "--int8 needs --calibration" in fails(export_openvino, argv, capsys)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notes.txt").write_text("not an image")
    assert "holds no images" in fails(export_openvino, argv + ["--calibration", str(bad)], capsys)
    broken = tmp_path / "broken.png"  # a valid PNG header, a body that does not decode
    broken.write_bytes(open(glob.glob(f"{exported['cs']}/leftImg8bit/train/*/*.png")[0], "rb").read()[:120])
    message = fails(export_openvino, argv + ["--calibration", str(broken)], capsys)
    assert str(broken) in message
    assert not out.parent.exists()


def test_an_ir_below_the_threshold_is_not_written(exported, tmp_path, capsys):
    out = tmp_path / "cgnet.xml"
    message = fails(export_openvino, ["--resume", exported["pth"], "--out", str(out), "--min_agreement", "1.01"],
                    capsys)
    assert "was not written" in message
    assert os.listdir(tmp_path) == []


def test_amp_and_compile_that_a_file_cannot_do_are_refused(exported, capsys):
    assert "ONNX Runtime runs the graph as exported" in fails(
        cityscapes_eval, eval_argv(exported["cs"], exported["onnx"], "--amp", "bf16"), capsys)
    assert "leave --compile out" in fails(
        cityscapes_eval, eval_argv(exported["cs"], exported["xml"], "--compile", "true"), capsys)
