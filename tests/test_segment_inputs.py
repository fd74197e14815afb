"""tools/segment.py and engine/segmenter.py on the inputs users really have (issue 21, points 3-7; issue 19,
live input): link loops, folders with videos, names that collide, videos whose metadata lies, Ctrl-C in a
video, large photos, streams over HTTP, a stream that does not answer."""
import glob
import os
import socket
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import engine.segmenter as segmenter
import engine.video as engine_video
from conftest import ROOT, fails, free_port, segmenter_of
from tools import segment
from utils.errors import run_cli
from utils.vis import overlay


@pytest.fixture(scope="module")
def data(untrained):
    data = untrained()
    data["photos"] = sorted(glob.glob(f"{data['cs']}/leftImg8bit/*/*/*.png"))
    return data


def run(data, *argv):
    return run_cli(segment.main, segment.get_args_parser(), ["--resume", data["ckpt"], *argv, "--cuda", "false"])


def files_under(folder):
    return sorted(os.path.relpath(p, folder) for p in glob.glob(f"{folder}/**", recursive=True) if os.path.isfile(p))


def write_video(path, frames=6, fourcc="mp4v", fps=10.0, size=(64, 32)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 11 * i % 256, np.uint8))
    writer.release()
    return path


def frame_count(path):
    capture = cv2.VideoCapture(str(path))
    n = 0
    while capture.read()[0]:
        n += 1
    capture.release()
    return n


def test_a_link_loop_is_read_once_and_noted(data, tmp_path, capsys):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "a.png"), cv2.imread(data["photos"][0]))
    cv2.imwrite(str(folder / "sub" / "b.png"), cv2.imread(data["photos"][1]))
    os.symlink("..", folder / "sub" / "loop")
    os.symlink("a.png", folder / "same.png")  # the same real file under a second name
    summary = run(data, str(folder), "--out", str(tmp_path / "out"))
    assert summary["images"] == 2
    assert files_under(tmp_path / "out") == sorted(f"{s}{x}" for s in ("a", "sub/b") for x in segmenter.OUTPUTS)
    assert "link loop" in capsys.readouterr().out


def test_a_folder_s_videos_are_segmented_as_videos(data, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), cv2.imread(data["photos"][0]))
    write_video(folder / "clip.mp4")
    summary = run(data, str(folder), "--out", str(tmp_path / "out"))
    assert summary["images"] == 1 and summary["videos"][0]["frames"] == 6
    assert files_under(tmp_path / "out") == ["a.png", "a_color.png", "a_overlay.png", "clip_overlay.mp4"]


def test_probe_reads_what_an_input_is_from_its_content(tmp_path):
    """The one rule of tools/segment.py and tools/webui.py: the header decides, not the name."""
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.zeros((40, 50, 3), np.uint8))
    assert segmenter.probe(str(photo)) == segmenter.Probe("image", (50, 40))
    assert segmenter.probe(str(write_video(tmp_path / "clip.mp4", frames=4, fps=12.0))) == \
        segmenter.Probe("video", (64, 32), 4, 12.0)
    named_as_image = tmp_path / "clip.jpg"  # an mp4 with the wrong name
    os.rename(write_video(tmp_path / "renamed.mp4", frames=3), named_as_image)
    assert segmenter.probe(str(named_as_image)).kind == "video"
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "text.jpg").write_text("not an image")  # FFmpeg opens this one, as a video without frames
    assert segmenter.probe(str(tmp_path / "notes.txt")) is None and segmenter.probe(str(tmp_path / "text.jpg")) is None
    huge = tmp_path / "huge.png"  # over Pillow's decompression-bomb limit: an image, too large to size
    Image.new("1", (20000, 10000)).save(huge)
    assert segmenter.probe(str(huge)) == segmenter.Probe("image", (float("inf"), float("inf")))


def test_probe_takes_an_implausible_frame_rate_as_the_default(tmp_path, capsys):
    found = segmenter.probe(str(write_video(tmp_path / "fast.mp4", frames=3, fps=1000.0)))
    assert found.fps == engine_video.DEFAULT_FPS and found.frames == 3
    assert capsys.readouterr().out == ""  # quiet: segment_video says it once, when it writes the video


def test_a_named_mp4_that_is_an_image_is_segmented_as_an_image(data, tmp_path):
    shot = tmp_path / "shot.mp4"
    shot.write_bytes(cv2.imencode(".png", cv2.imread(data["photos"][0]))[1].tobytes())
    summary = run(data, str(shot), "--out", str(tmp_path / "out"))
    assert summary["images"] == 1 and summary["videos"] == []
    assert files_under(tmp_path / "out") == ["shot.png", "shot_color.png", "shot_overlay.png"]


def test_save_writes_the_class_ids_the_colours_and_the_overlay(data, tmp_path):
    seg = segmenter_of(segment.get_args_parser().parse_args(
        ["--resume", data["ckpt"], "--out", str(tmp_path), "--cuda", "false", "x"]))
    image = cv2.imread(data["photos"][0])
    pred = seg(image)
    stem = str(tmp_path / "sub" / "street")
    paths = seg.save(stem, image, pred, alpha=0.3)
    assert paths == [stem + suffix for suffix in segmenter.OUTPUTS]
    assert np.array_equal(np.asarray(Image.open(paths[0])), pred)
    colour = Image.open(paths[1])
    assert colour.mode == "P" and np.array_equal(np.asarray(colour), pred)
    assert colour.getpalette()[:3 * seg.classes] == [c for rgb in seg.palette for c in rgb]
    expected = overlay(image[:, :, ::-1], pred, seg.palette, alpha=0.3)
    assert np.array_equal(np.asarray(Image.open(paths[2])), expected)
    assert seg.save(stem, image, pred, alpha=0.9, outputs=("_overlay.png",)) == [stem + "_overlay.png"]
    assert not np.array_equal(np.asarray(Image.open(paths[2])), expected)  # re-blended


@pytest.mark.parametrize("names, collides", [(("a.png", "a_color.png"), "a_color.png"),
                                             (("clip.mp4", "clip.avi"), "clip_overlay.mp4")])
def test_collisions_are_judged_on_the_real_output_names(data, tmp_path, capsys, names, collides):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in names:
        if name.endswith(".png"):
            cv2.imwrite(str(folder / name), cv2.imread(data["photos"][0]))
        else:
            write_video(folder / name, fourcc="MJPG" if name.endswith(".avi") else "mp4v")
    message = fails(segment, ["--resume", data["ckpt"], str(folder), "--out", str(tmp_path / "out"), "--cuda",
                              "false"], capsys)
    assert f"would both be written as {collides}" in message
    assert not (tmp_path / "out").exists()


class Lying:
    """cv2.VideoCapture reporting what some webm/VFR files report: a negative frame count and 1000 fps."""

    def __init__(self, *args):
        self.capture = REAL_CAPTURE(*args)

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_COUNT: -2.0 ** 63, cv2.CAP_PROP_FPS: 1000.0}.get(prop, self.capture.get(prop))

    def __getattr__(self, name):
        return getattr(self.capture, name)


REAL_CAPTURE = cv2.VideoCapture


def test_a_video_with_lying_metadata_gets_a_bar_without_total_and_a_plausible_rate(data, tmp_path, capsys,
                                                                                    monkeypatch):
    video = write_video(tmp_path / "vfr.mp4", frames=5)
    monkeypatch.setattr(cv2, "VideoCapture", Lying)
    summary = run(data, str(video), "--out", str(tmp_path / "out"))
    monkeypatch.undo()
    captured = capsys.readouterr()
    assert summary["videos"][0]["frames"] == 5
    assert "reports 1000 frames/s" in captured.out
    assert "/-" not in captured.err and "5frames" in captured.err.replace(" ", "")  # a count, no total
    capture = cv2.VideoCapture(str(tmp_path / "out" / "vfr_overlay.mp4"))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(engine_video.DEFAULT_FPS)
    capture.release()


def test_ctrl_c_during_a_video_leaves_no_thread_and_the_capture_released(data, tmp_path, monkeypatch):
    video = write_video(tmp_path / "clip.mp4", frames=20)
    opened = []

    class Watched:
        def __init__(self, *args):
            self.capture, self.released_with = REAL_CAPTURE(*args), None
            opened.append(self)

        def release(self):  # which threads were still alive when the capture was released
            self.released_with = [t.name for t in threading.enumerate() if t.name == "decode-ahead"]
            self.capture.release()

        def __getattr__(self, name):
            return getattr(self.capture, name)

    seg = segmenter_of(segment.get_args_parser().parse_args(
        ["--resume", data["ckpt"], "--out", str(tmp_path), "--cuda", "false", "x"]))
    calls, predict = [], seg.backend.logits

    def interrupted_at_the_third_frame(x):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return predict(x)
    seg.backend.logits = interrupted_at_the_third_frame
    before = set(threading.enumerate())
    monkeypatch.setattr(cv2, "VideoCapture", Watched)
    with pytest.raises(KeyboardInterrupt):
        engine_video.segment_video(seg, str(video), str(tmp_path / "out" / "clip_overlay.mp4"))
    assert set(threading.enumerate()) <= before  # the decode-ahead thread and the writer's are gone
    assert opened[-1].released_with == []  # released, after the reading thread had stopped
    assert not opened[-1].capture.isOpened()


def test_the_overlay_of_a_large_photo_is_at_its_size_and_tiles_bound_the_network_input(data, tmp_path, monkeypatch):
    args = segment.get_args_parser().parse_args(["--resume", data["ckpt"], "--out", str(tmp_path), "--cuda",
                                                 "false", "--max_side", "64", "x"])
    seg = segmenter_of(args)
    image = cv2.resize(cv2.imread(data["photos"][0]), (200, 100))
    sizes, predict = [], seg.backend.logits

    def recording(x):
        sizes.append(tuple(x.shape[2:]))
        return predict(x)
    seg.backend.logits = recording
    assert seg(image).shape == (100, 200) and sizes == [(32, 64)]  # shrunk for the network, resized back

    seg.tile, sizes[:] = True, []
    monkeypatch.setattr(segmenter, "TILE", (48, 64))
    monkeypatch.setattr(segmenter, "TILE_MARGIN", 8)
    tiled = seg(image)
    assert tiled.shape == (100, 200) and len(sizes) > 4 and max(h * w for h, w in sizes) <= 48 * 64
    small = image[:40, :60]  # one tile: the whole image at full resolution, as without tiles
    seg.tile = False
    untiled = seg(small)
    seg.tile = True
    assert np.array_equal(seg(small), untiled)


def test_the_class_by_class_resize_is_torch_s_bilinear_argmax():
    logits = torch.randn(1, 5, 12, 16)
    expected = torch.nn.functional.interpolate(logits, size=(45, 61), mode="bilinear", align_corners=False).argmax(1)[0]
    ours = segmenter.upsampled_argmax(logits[0].numpy(), (45, 61))
    assert (torch.from_numpy(ours).long() == expected).float().mean() > 0.999  # ties/rounding at most


@pytest.mark.slow
def test_an_8000x6000_photo_segments_within_3_gb_at_its_size(tmp_path):
    """The issue's target, with the full CGNet M3N21 (untrained: memory does not depend on the weights)."""
    from dataset.specs import CITYSCAPES
    from engine.checkpoint import self_contained
    from model import build_model
    from utils.checkpoint import save_checkpoint
    ckpt = tmp_path / "m3n21.pth"
    save_checkpoint(self_contained(build_model("CGNet", 19).state_dict(), {"name": "CGNet", "classes": 19, "M": 3,
                                   "N": 21}, "cityscapes", [72.39, 82.91, 73.16], 1, CITYSCAPES.class_names,
                                   CITYSCAPES.palette), str(ckpt))
    rng = np.random.default_rng(0)
    photo = cv2.resize(rng.integers(0, 255, (60, 80, 3), np.uint8), (8000, 6000), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(tmp_path / "big.jpg"), photo)
    del photo
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    run = subprocess.run([sys.executable, "-c", code, sys.executable, os.path.join(ROOT, "tools", "segment.py"),
                          "--resume", str(ckpt), str(tmp_path / "big.jpg"), "--out", str(tmp_path / "out"),
                          "--cuda", "false"], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    peak_kb = int(run.stdout.strip().splitlines()[-1])
    assert peak_kb <= 3 * 2 ** 20, f"peak RSS {peak_kb / 2 ** 20:.2f} GB"
    for name in segmenter.OUTPUTS:
        assert Image.open(tmp_path / "out" / f"big{name}").size == (8000, 6000)


@pytest.fixture
def http_video(tmp_path):
    """An MJPG AVI served by python -m http.server on 127.0.0.1 (an mp4 has its index at its end)."""
    served = tmp_path / "served"
    served.mkdir()
    write_video(served / "street.avi", frames=12, fourcc="MJPG")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=served,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the test server did not start"
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/street.avi"
    server.terminate()
    server.wait()


@pytest.mark.slow
def test_a_stream_url_that_is_a_finite_file_is_segmented_whole_or_up_to_max_frames(data, tmp_path, http_video):
    whole = run(data, http_video, "--out", str(tmp_path / "whole"))
    assert whole["videos"][0]["frames"] == 12 and not whole["videos"][0]["live"]
    assert frame_count(tmp_path / "whole" / "street_overlay.mp4") == 12
    three = run(data, http_video, "--out", str(tmp_path / "three"), "--max_frames", "3")
    assert three["videos"][0]["frames"] == 3 and frame_count(tmp_path / "three" / "street_overlay.mp4") == 3


class Gated:
    """A live source that delivers a frame only when the test lets it, so that which frames the network sees
    does not depend on the scheduler. Its instances are kept in `opened`."""
    opened = []

    def __init__(self, *args):
        self.capture, self.allowed, self.reads, self.ended = REAL_CAPTURE(*args), 1, 0, False
        self.cond = threading.Condition()
        Gated.opened.append(self)

    def read(self):
        with self.cond:
            self.cond.wait_for(lambda: self.reads < self.allowed)
        ok, frame = self.capture.read()
        with self.cond:
            self.reads, self.ended = self.reads + 1, self.ended or not ok
            self.cond.notify_all()
        return ok, frame

    def let_through(self, n):
        """Let the source deliver n more frames (reads), and wait until it has, or has ended."""
        with self.cond:
            self.allowed += n
            target = self.allowed
            self.cond.notify_all()
            assert self.cond.wait_for(lambda: self.reads >= target or self.ended, timeout=60)

    def __getattr__(self, name):
        return getattr(self.capture, name)


@pytest.mark.slow
def test_a_live_stream_drops_frames_and_keeps_its_video_on_ctrl_c(data, tmp_path, http_video, monkeypatch):
    """Read as a live source (as a camera is), with a network slower than the source (the source delivers 3
    frames while the network segments one): frames are dropped, not queued, the video keeps the source's
    timing, and Ctrl-C ends it keeping what was written."""
    seg = segmenter_of(segment.get_args_parser().parse_args(
        ["--resume", data["ckpt"], "--out", str(tmp_path), "--cuda", "false", "x"]))
    calls = []

    class Slow:  # the segmenter, with the source delivering 3 frames during each of its calls
        def __call__(self, image_bgr):
            calls.append(1)
            if len(calls) == interrupt_at:
                Gated.opened[-1].let_through(10 ** 6)  # the grabber runs to the stream's end, so it can stop
                raise KeyboardInterrupt
            Gated.opened[-1].let_through(3)
            return seg(image_bgr)

        def __getattr__(self, name):
            return getattr(seg, name)

    monkeypatch.setattr(cv2, "VideoCapture", Gated)
    interrupt_at = None
    path = tmp_path / "out" / "live_overlay.mp4"
    result = engine_video.segment_video(Slow(), http_video, str(path), live=True)
    monkeypatch.undo()  # frame_count reads the result through an ungated capture
    # Frames 1, 4, 7, 10 and 12 of 12 are segmented; the 7 dropped are filled with the last overlay.
    assert result["stopped"] is None and result["frames"] == 5 and result["written"] == 12
    assert frame_count(path) == 12

    calls[:], interrupt_at = [], 2
    monkeypatch.setattr(cv2, "VideoCapture", Gated)
    result = engine_video.segment_video(Slow(), http_video, str(path), live=True)
    monkeypatch.undo()
    assert result["stopped"] == "Ctrl-C" and result["frames"] == 1 and result["written"] == 1
    assert frame_count(path) == 1
    assert not [t for t in threading.enumerate() if t.name == "live-grabber"]


def test_a_url_that_does_not_answer_is_one_sentence_and_writes_nothing(data, tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/street.avi"  # nothing listens there
    message = fails(segment, ["--resume", data["ckpt"], url, "--out", str(tmp_path / "out"), "--timeout", "2",
                              "--cuda", "false"], capsys)
    assert url in message and "did not answer within 2 s" in message
    assert not (tmp_path / "out").exists()


def test_a_camera_that_does_not_open_is_one_sentence(data, tmp_path, capsys):
    message = fails(segment, ["--resume", data["ckpt"], "--camera", "97", "--out", str(tmp_path / "out"), "--cuda",
                              "false"], capsys)
    assert "camera 97 cannot be opened" in message and not (tmp_path / "out").exists()


def test_show_without_a_display_is_skipped_with_a_notice(data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video = write_video(tmp_path / "clip.mp4", frames=3)
    summary = run(data, str(video), "--show", "--out", str(tmp_path / "out"))
    assert summary["videos"][0]["frames"] == 3 and "--show skipped: there is no display" in capsys.readouterr().out


def test_a_caller_s_stop_event_ends_a_video_keeping_what_was_written(data, tmp_path):
    """What tools/webui.py needs: per-frame progress and a way to stop."""
    seg = segmenter_of(segment.get_args_parser().parse_args(
        ["--resume", data["ckpt"], "--out", str(tmp_path), "--cuda", "false", "x"]))
    stop, seen = threading.Event(), []

    def on_frame(frames, total):
        seen.append((frames, total))
        if frames == 2:
            stop.set()
    path = tmp_path / "clip_overlay.mp4"
    result = engine_video.segment_video(seg, str(write_video(tmp_path / "clip.mp4", frames=8)), str(path), stop=stop,
                                     on_frame=on_frame)
    assert result["stopped"] == "stop" and seen == [(1, 8), (2, 8)] and frame_count(path) == 2
