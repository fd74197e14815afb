"""Inputs that are cut short or broken are said, never hidden: a video that decodes fewer frames than it claims
(a truncated AVI and a truncated MP4) says how many of how many and keeps them (--strict: an error); every image
of a folder is decoded once before any work (a PNG with a bad body is caught there) and --skip_bad segments the
rest. The libraries' noise is filtered out of a tool's stderr."""
import os
import struct
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import ROOT, fails
from tools import segment
from utils.errors import run_cli


def write_video(path, fourcc, frames=30):
    video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (64, 32))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        video.write(rng.integers(0, 255, (32, 64, 3), np.uint8))
    video.release()
    return path


def faststart(data):
    """The MP4 with its index (moov) moved before the frames, as phones and web uploads have it, so that a file cut
    short still opens and claims its full length (OpenCV writes the index last)."""
    atoms, i = {}, 0
    while i < len(data):
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        atoms[kind], i = data[i:i + size], i + size
    moov = bytearray(atoms[b"moov"])
    at = moov.find(b"stco")  # the chunk offsets: each moves by the index's length
    for k in range(struct.unpack(">I", moov[at + 8:at + 12])[0]):
        o = at + 12 + 4 * k
        moov[o:o + 4] = struct.pack(">I", struct.unpack(">I", moov[o:o + 4])[0] + len(moov))
    return atoms[b"ftyp"] + atoms.get(b"free", b"") + bytes(moov) + atoms[b"mdat"]


def cut(path, mp4=False):
    data = path.read_bytes()
    data = faststart(data) if mp4 else data
    path.write_bytes(data[:len(data) // 2])
    return path


@pytest.fixture(scope="module")
def ckpt(untrained):
    return untrained()["ckpt"]


@pytest.mark.parametrize("name,fourcc", [("cut.avi", "MJPG"), ("cut.mp4", "mp4v")])
def test_a_truncated_video_says_how_many_frames_of_how_many(ckpt, tmp_path, capsys, name, fourcc):
    video = cut(write_video(tmp_path / name, fourcc), mp4=name.endswith(".mp4"))
    out = tmp_path / "out"
    summary = run_cli(segment.main, segment.get_args_parser(), ["--resume", ckpt, str(video), "--out", str(out)])
    read = summary["videos"][0]["frames"]
    assert 0 < read < 30 and summary["videos"][0]["claimed"] == 30
    assert f"warning: {video}: {read} of the 30 frames it claims could be read (cut short or damaged)" \
        in capsys.readouterr().out
    capture = cv2.VideoCapture(str(out / (video.stem + "_overlay.mp4")))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == read  # the output keeps what was read
    strict = tmp_path / "strict"
    message = fails(segment, ["--resume", ckpt, str(video), "--out", str(strict), "--strict"], capsys)
    assert message == (f"error: video {video} is cut short or damaged: {read} of the 30 frames it claims could be "
                       f"read; repair or re-export it, or leave --strict out to keep those {read}.")
    assert not strict.exists()


def test_a_whole_video_gives_no_warning(ckpt, tmp_path, capsys):
    video = write_video(tmp_path / "whole.avi", "MJPG", frames=12)
    summary = run_cli(segment.main, segment.get_args_parser(),
                      ["--resume", ckpt, str(video), "--out", str(tmp_path / "out"), "--strict"])
    assert summary["videos"][0]["frames"] == 12 and "warning" not in capsys.readouterr().out


@pytest.fixture
def folder(tmp_path):
    """Three good images and, last in name order, a PNG whose header reads but whose body is damaged, and a JPEG
    cut short."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (32, 64, 3), np.uint8))
    cv2.imwrite(str(folder / "y_cut.jpg"), rng.integers(0, 255, (32, 64, 3), np.uint8))
    data = (folder / "y_cut.jpg").read_bytes()
    (folder / "y_cut.jpg").write_bytes(data[:len(data) // 2])
    data = bytearray((folder / "2.png").read_bytes())
    at = data.find(b"IDAT") + 40
    data[at:at + 64] = bytes(64)  # the compressed pixels broken, the header intact
    (folder / "z_bad.png").write_bytes(bytes(data))
    return folder


def test_a_broken_image_in_a_folder_stops_the_run_at_the_check(ckpt, folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(segment, "load_segmenter", lambda *a: pytest.fail("the network was loaded"))
    out = tmp_path / "out"
    message = fails(segment, ["--resume", ckpt, str(folder), "--out", str(out)], capsys)
    assert message.startswith(f"error: inputs {folder / 'y_cut.jpg'} (") and f"{folder / 'z_bad.png'} (" in message
    assert message.endswith("cannot be decoded, although their headers read; re-save or remove them, or pass "
                            "--skip_bad to segment the other inputs.")
    assert not out.exists()


def test_skip_bad_segments_the_rest_and_lists_the_refused(ckpt, folder, tmp_path, capsys):
    out = tmp_path / "out"
    summary = run_cli(segment.main, segment.get_args_parser(),
                      ["--resume", ckpt, str(folder), "--out", str(out), "--skip_bad"])
    assert summary["images"] == 3 and summary["refused"] == [str(folder / "y_cut.jpg"), str(folder / "z_bad.png")]
    assert sorted(os.listdir(out)) == sorted(f"{i}{s}" for i in range(3) for s in (".png", "_color.png",
                                                                                    "_overlay.png"))
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == (f"warning: 2 broken input(s) refused and not segmented (--skip_bad): {folder / 'y_cut.jpg'}, "
                    f"{folder / 'z_bad.png'}")


def test_the_command_line_filters_the_libraries_noise(ckpt, tmp_path):
    video = cut(write_video(tmp_path / "cut.avi", "MJPG"))
    png = tmp_path / "icc.png"
    from PIL import Image
    Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(png, icc_profile=b"short" * 10)
    run = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "segment.py"), "--resume", ckpt, str(video),
                          str(png), str(png), "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "@ 0x" not in run.stderr and "libpng warning" not in run.stderr, run.stderr
    assert run.stdout.count("notice: some PNG files carry damaged metadata (libpng: iCCP") == 1, run.stdout
