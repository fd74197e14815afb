"""--metrics FILE on cityscapes_eval.py and camvid_test.py: the metrics.json content, atomically, and no PNGs."""
import glob
import json
import os
import subprocess
import sys

import pytest

import camvid_test
import cityscapes_eval
from dataset.specs import CAMVID
from utils.errors import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from conftest import TINY_EVAL as TINY


@pytest.fixture(scope="module")
def data(untrained):
    cs, cv = untrained(), untrained("camvid", n_train=2, n_val=1, n_test=2, size=(32, 48))
    return {"cs": cs["cs"], "cs_inform": cs["inform"], "cs_ckpt": cs["ckpt"],
            "cv": cv["cs"], "cv_inform": cv["inform"], "cv_ckpt": cv["ckpt"]}


def cityscapes_args(data, *extra):
    return ["--data_dir", data["cs"], "--val_data_list", f"{data['cs']}/cityscapes_val_list.txt",
            "--inform_data_file", data["cs_inform"], "--resume", data["cs_ckpt"], *TINY, *extra]


def pngs(folder):
    return glob.glob(f"{folder}/**/*.png", recursive=True)


def test_cityscapes_eval_metrics_alone_equal_metrics_json(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --save_seg_dir ./result/cityscapes/val/ must stay unwritten
    metrics = tmp_path / "out" / "metrics_val.json"
    result = run_cli(cityscapes_eval.main, cityscapes_eval.get_args_parser(), cityscapes_args(data, "--metrics",
                                                                                               str(metrics)))
    written = json.loads(metrics.read_text())
    assert written == json.loads(json.dumps(result))
    assert set(written) == {"checkpoint", "list", "images", "mIoU", "pixel_accuracy", "IoU", "confusion"}
    matrix = written["confusion"]["pixels"]  # the matrix goes into the JSON with --metrics too
    assert len(matrix) == 19 and all(len(row) == 19 for row in matrix) and sum(map(sum, matrix)) > 0
    assert written["checkpoint"] == data["cs_ckpt"] and written["images"] == 2
    assert len(written["IoU"]) == 19 and 0 <= written["mIoU"] <= 1
    assert not pngs(tmp_path) and not (tmp_path / "result").exists()
    assert os.listdir(metrics.parent) == ["metrics_val.json"]  # no temporary file beside it

    seg = tmp_path / "seg"
    run_cli(cityscapes_eval.main, cityscapes_eval.get_args_parser(), cityscapes_args(data, "--save_seg_dir", str(seg)))
    assert json.loads((seg / "metrics.json").read_text()) == written
    assert (seg / "confusion.png").is_file()


@pytest.mark.slow
def test_camvid_test_writes_metrics_as_a_command(data, tmp_path):
    metrics = tmp_path / "camvid.json"
    run = subprocess.run([sys.executable, "camvid_test.py", "--data_dir", data["cv"],
                          "--test_data_list", f"{data['cv']}/camvid_test_list.txt",
                          "--inform_data_file", data["cv_inform"], "--resume", data["cv_ckpt"], *TINY,
                          "--metrics", str(metrics)], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    written = json.loads(metrics.read_text())
    assert written["images"] == 2 and len(written["IoU"]) == 11
    assert f"metrics written to {metrics}" in run.stdout
    assert not pngs(tmp_path)


def test_camvid_test_metrics_through_main(data, tmp_path):
    metrics = tmp_path / "camvid.json"
    run_cli(camvid_test.main, camvid_test.get_args_parser(),
            ["--data_dir", data["cv"], "--test_data_list", f"{data['cv']}/camvid_test_list.txt",
             "--inform_data_file", data["cv_inform"], "--resume", data["cv_ckpt"], *TINY, "--metrics", str(metrics)])
    assert list(json.loads(metrics.read_text())["IoU"]) == list(CAMVID.class_names)


def fails(argv, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli(cityscapes_eval.main, cityscapes_eval.get_args_parser(), argv)
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_metrics_with_pictures_is_refused(data, tmp_path, capsys):
    message = fails(cityscapes_args(data, "--metrics", str(tmp_path / "m.json"), "--panel", "true"), capsys)
    assert message == ("error: --overlay/--panel write pictures but --metrics writes the metrics alone; drop one of "
                       "them (--save_seg_dir without --metrics writes pictures and metrics.json).")


def test_metrics_into_a_file_path_is_refused_before_work(data, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "m.json"
    message = fails(cityscapes_args(data, "--metrics", str(target)), capsys)
    assert message == (f"error: --metrics {target} cannot be written: it lies inside the file {tmp_path / 'file'}, "
                       f"not a folder; give a path in a folder.")
