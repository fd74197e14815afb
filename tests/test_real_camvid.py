"""The paper's CamVid result on real data: the CGNet authors' own weights (../shared/camvid/weights/model_800.pth, the
file tools/download_weights.py camvid fetches) on the real CamVid test split (233 images of 360x480) give the
original code's per-class IoU through camvid_test.py, in a folder holding only test/ and testannot/ (no train
split, no statistics file); so do their ONNX and OpenVINO fp32 exports; tools/segment.py predicts what
camvid_test.py predicts. Skipped, with the reason, where the real data is absent."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, own_process, shared_path
from dataset.specs import CAMVID

DATA = shared_path("camvid", "testannot") and os.path.dirname(shared_path("camvid", "testannot"))
WEIGHTS = shared_path("camvid", "weights", "model_800.pth")
pytestmark = pytest.mark.skipif(DATA is None or WEIGHTS is None,
                                reason="the real CamVid and the authors' weights are absent (../shared/camvid beside "
                                       "the clone, or set CGNET_SHARED)")

# The original code's figures on this data with these weights, in IoU points (issue 24; ../shared/camvid/README.md).
ORIGINAL_IOU = {"sky": 91.08, "building": 79.75, "pole": 28.07, "road": 94.65, "sidewalk": 81.99, "tree": 74.87,
                "sign/symbol": 40.86, "fence": 34.78, "car": 84.50, "pedestrian": 52.71, "bicyclist": 57.65}
ORIGINAL_MIOU = 65.536


@pytest.fixture(scope="module")
def test_only(tmp_path_factory):
    """A CamVid folder holding the real test split alone, and a path where no statistics file is."""
    root = tmp_path_factory.mktemp("camvid_test_only")
    for folder in ("test", "testannot"):
        os.symlink(os.path.join(DATA, folder), root / folder)
    return {"data": str(root), "absent": str(root / "no_inform.pkl")}


def evaluate(resume, test_only, tmp_path, *extra):
    argv = ["--data_dir", test_only["data"], "--test_data_list", os.path.join(ROOT, CAMVID.test_list),
            "--resume", resume, "--inform_data_file", test_only["absent"], "--cuda", "false", *extra]
    code, err, result = own_process("camvid_test", argv)
    assert code == 0, err
    return result


def assert_original_figures(result):
    assert result["images"] == 233
    iou = {name: value * 100 for name, value in result["IoU"].items()}
    assert iou == pytest.approx(ORIGINAL_IOU, abs=0.01)
    assert result["mIoU"] * 100 == pytest.approx(ORIGINAL_MIOU, abs=0.001)


@pytest.mark.slow
def test_the_authors_weights_give_the_original_per_class_iou(test_only, tmp_path):
    assert_original_figures(evaluate(WEIGHTS, test_only, tmp_path, "--metrics", str(tmp_path / "m.json")))
    assert not os.path.exists(test_only["absent"])  # the mean came from the file's own facts, no statistics computed


@pytest.mark.slow
@pytest.mark.parametrize("tool, suffix", [("export_onnx.py", ".onnx"), ("export_openvino.py", ".xml")])
def test_the_fp32_exports_give_the_same(test_only, tmp_path, tool, suffix):
    out = str(tmp_path / f"cgnet{suffix}")
    image = os.path.join(DATA, "test", "0001TP_008550.png")  # the check of the export on a real image
    run = subprocess.run([sys.executable, os.path.join(ROOT, "tools", tool), "--resume", WEIGHTS, "--out", out,
                          "--image", image], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert_original_figures(evaluate(out, test_only, tmp_path, "--metrics", str(tmp_path / "m.json")))


@pytest.mark.slow
def test_segment_predicts_what_camvid_test_predicts(test_only, tmp_path):
    """tools/segment.py on real test images, with the downloaded file alone, writes camvid_test.py's predictions."""
    names = ["0001TP_008550", "Seq05VD_f01110", "Seq05VD_f05100"]
    listed = tmp_path / "three.txt"
    listed.write_text("".join(f"test/{n}.png testannot/{n}.png\n" for n in names))
    argv = ["--data_dir", test_only["data"], "--test_data_list", str(listed), "--resume", WEIGHTS, "--inform_data_file",
            test_only["absent"], "--cuda", "false", "--num_workers", "0", "--save_seg_dir", str(tmp_path / "eval")]
    code, err, _ = own_process("camvid_test", argv)
    assert code == 0, err
    images = [os.path.join(DATA, "test", f"{n}.png") for n in names]
    code, err, _ = own_process("tools.segment", ["--resume", WEIGHTS, *images, "--out", tmp_path / "seg",
                                                 "--cuda", "false"])
    assert code == 0, err
    for n in names:
        ours = np.asarray(Image.open(tmp_path / "seg" / f"{n}.png"))
        assert np.array_equal(ours, np.asarray(Image.open(tmp_path / "eval" / f"{n}.png"))), n
        colour = Image.open(tmp_path / "seg" / f"{n}_color.png").convert("RGB").getpixel((0, 0))
        assert list(colour) == list(CAMVID.palette[ours[0, 0]])  # CamVid's colours, from the file's own facts
    metrics = json.load(open(tmp_path / "eval" / "metrics.json"))
    assert list(metrics["IoU"]) == list(CAMVID.class_names)
