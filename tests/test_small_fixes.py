"""Smaller points of issue 21: one EXIF rule, '' folders of cityscapes_test.py, tools/segment.py's notices."""
import glob
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

import cityscapes_test
from conftest import ROOT, TINY_EVAL, fails
from dataset.datasets import image_header, load_image, load_label, read_list
from tools import segment
from utils.errors import run_cli


def save_rotated(path, array, orientation=6):
    """A phone photo: pixels stored sideways, EXIF saying how to turn them upright."""
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif)


def test_a_rotated_photo_and_its_upright_mask_agree_with_what_the_loaders_see(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :10] = 255  # a bright band on the left of the stored pixels
    save_rotated(tmp_path / "photo.jpg", stored)
    upright = load_image(str(tmp_path / "photo.jpg"))
    assert upright.shape == (40, 20, 3) and image_header(str(tmp_path / "photo.jpg"))[:2] == (20, 40)  # (w, h)
    Image.fromarray(np.ones((40, 20), np.uint8)).save(tmp_path / "mask.png")  # drawn on the upright photo
    (tmp_path / "list.txt").write_text("photo.jpg mask.png\n")
    read_list(str(tmp_path / "list.txt"), str(tmp_path), True, "--list")  # accepted: the sizes agree

    label = np.zeros((20, 40), np.uint8)
    label[:, :10] = 1  # the band's label, stored sideways with the same EXIF as the photo
    save_rotated(tmp_path / "label.png", label)
    turned = load_label(str(tmp_path / "label.png"), 19, 255)
    assert turned.shape == upright.shape[:2] and np.array_equal(turned == 1, upright[:, :, 0] > 128)


def test_empty_output_folders_of_cityscapes_test_leave_that_set_out(untrained, tmp_path, capsys):
    data = untrained()
    common = ["--data_dir", data["cs"], "--test_data_list", f"{data['cs']}/cityscapes_test_list.txt",
              "--inform_data_file", data["inform"], "--resume", data["ckpt"], *TINY_EVAL]
    run_cli(cityscapes_test.main, cityscapes_test.get_args_parser(),
            [*common, "--save_seg_dir", "", "--submit_dir", str(tmp_path / "submit")])
    assert len(os.listdir(tmp_path / "submit")) == 1
    run_cli(cityscapes_test.main, cityscapes_test.get_args_parser(),
            [*common, "--save_seg_dir", str(tmp_path / "seg"), "--submit_dir", ""])
    assert [p.endswith("_color.png") for p in os.listdir(tmp_path / "seg")] == [True]
    message = fails(cityscapes_test, [*common, "--save_seg_dir", "", "--submit_dir", ""], capsys)
    assert "nothing to write" in message
    message = fails(cityscapes_test, [*common, "--submit_dir", "", "--zip", str(tmp_path / "s.zip")], capsys)
    assert "--zip" in message and not (tmp_path / "s.zip").exists()


@pytest.mark.slow
def test_segment_notes_a_gif_s_first_frame_and_times_its_images(untrained, tmp_path):
    data = untrained()
    photo = cv2.imread(sorted(glob.glob(f"{data['cs']}/leftImg8bit/*/*/*.png"))[0])[:, :, ::-1]
    frames = [Image.fromarray(np.ascontiguousarray(np.roll(photo, 8 * i, axis=1))) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    run = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "segment.py"), "--resume", data["ckpt"],
                          str(tmp_path / "anim.gif"), "--out", str(tmp_path / "out"), "--cuda", "false"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "has 3 frames; only the first is segmented" in run.stdout
    assert "1 image(s) in " in run.stdout and " images/s" in run.stdout


def test_ctrl_c_in_segment_speaks_of_its_outputs_not_of_checkpoints(untrained, tmp_path, capsys, monkeypatch):
    data = untrained()
    photo = sorted(glob.glob(f"{data['cs']}/leftImg8bit/*/*/*.png"))[0]

    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(segment, "segment_images", interrupted)
    with pytest.raises(SystemExit) as e:
        run_cli(segment.main, segment.get_args_parser(), ["--resume", data["ckpt"], photo, "--out",
                str(tmp_path / "out"), "--cuda", "false"], interrupted=segment.INTERRUPTED)
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 130 and "--out was left as it was" in message and "checkpoint" not in message
    assert not (tmp_path / "out").exists()
