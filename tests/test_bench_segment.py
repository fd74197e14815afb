"""tools/bench_segment.py --frames_from: the video is made of a folder's frames, in name order, at their size."""
import cv2
import numpy as np
import pytest

from conftest import shared_path
from tools.bench_segment import video_from_frames
from utils.errors import UserError


def read_video(path):
    capture, frames = cv2.VideoCapture(path), []
    ok, frame = capture.read()
    while ok:
        frames.append(frame)
        ok, frame = capture.read()
    capture.release()
    return frames


def test_the_frames_of_a_folder_in_name_order(tmp_path):
    for i, grey in enumerate((200, 20, 120)):  # written out of order: frame_2 is the darkest
        cv2.imwrite(str(tmp_path / f"frame_{(i * 2) % 3}.png"), np.full((32, 48, 3), grey, np.uint8))
    (tmp_path / "notes.txt").write_text("not a frame")
    said = video_from_frames(str(tmp_path / "v.mp4"), str(tmp_path), 10)
    frames = read_video(str(tmp_path / "v.mp4"))
    assert said.startswith("3 frames") and [f.shape for f in frames] == [(32, 48, 3)] * 3
    assert [round(float(f.mean()), -1) for f in frames] == [200, 120, 20]  # frame_0, frame_1, frame_2
    video_from_frames(str(tmp_path / "two.mp4"), str(tmp_path), 2)  # --frames: the first ones
    assert len(read_video(str(tmp_path / "two.mp4"))) == 2


def test_frames_of_different_sizes_are_refused(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((32, 48, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((40, 48, 3), np.uint8))
    with pytest.raises(UserError, match="b.png is 48x40 but a.png 48x32"):
        video_from_frames(str(tmp_path / "v.mp4"), str(tmp_path), 10)


def test_real_camvid_frames(tmp_path):
    folder = shared_path("camvid", "test")
    if folder is None:
        pytest.skip("the real CamVid is absent (../shared/camvid beside the clone, or set CGNET_SHARED)")
    assert video_from_frames(str(tmp_path / "v.mp4"), folder, 4) == f"4 frames of {folder} (480x360)"
    assert [f.shape for f in read_video(str(tmp_path / "v.mp4"))] == [(360, 480, 3)] * 4
