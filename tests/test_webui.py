"""tools/webui.py through its API, as gradio_client scripts call it: the class ids are tools/segment.py's,
the opacity re-blends without the network, bad uploads get one sentence and the server goes on serving."""
import glob
import os
import socket
from types import SimpleNamespace

import cv2
import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from conftest import fails, free_port, segmenter_of
from tools import segment, webui
from utils.vis import overlay


class Counting:
    """A segmenter that counts the images its network segments."""

    def __init__(self, seg):
        self.seg, self.images = seg, 0

    def __getattr__(self, name):
        return getattr(self.seg, name)

    def __call__(self, image_bgr):
        self.images += 1
        return self.seg(image_bgr)


@pytest.fixture(scope="module")
def served(untrained, tmp_path_factory):
    """The page for an untrained checkpoint, served in this process on a free loopback port."""
    made = untrained()
    photo = sorted(glob.glob(f"{made['cs']}/leftImg8bit/test/*/*.png"))[0]
    args = webui.get_args_parser().parse_args(["--resume", made["ckpt"], "--cuda", "false", "--port", str(free_port())])
    seg = Counting(segmenter_of(args))
    app = webui.build_app(seg, str(tmp_path_factory.mktemp("webui")), max_video_seconds=2)
    url = webui.launch(app, args, [], block=False)
    yield SimpleNamespace(url=url, seg=seg, ckpt=made["ckpt"], photo=photo)
    app.close()


def segment_py(ckpt, inputs, out):
    """tools/segment.py's outputs for the same files and checkpoint."""
    segment.main(segment.get_args_parser().parse_args(["--resume", ckpt, *map(str, inputs), "--out", str(out),
                                                       "--cuda", "false"]))


def pixels(path):
    return np.asarray(Image.open(path))


def test_segment_endpoint_gives_the_files_tools_segment_writes(served, tmp_path):
    photo = tmp_path / "my street.jpg"  # a JPEG and a space: decoded and named as tools/segment.py does
    cv2.imwrite(str(photo), cv2.imread(served.photo))
    shown, colour, areas, files = Client(served.url, verbose=False).predict(handle_file(str(photo)), 0.5,
                                                                            api_name="/segment")
    segment_py(served.ckpt, [photo], tmp_path / "out")
    assert [os.path.basename(f) for f in files] == ["my street.png", "my street_color.png", "my street_overlay.png"]
    ids = pixels(files[0])
    assert np.array_equal(ids, pixels(tmp_path / "out" / "my street.png"))
    assert len(np.unique(ids)) > 1  # a test that could fail: the random network predicts several classes
    expected_colour = Image.open(tmp_path / "out" / "my street_color.png")
    assert Image.open(colour).getpalette() == expected_colour.getpalette()
    assert np.array_equal(pixels(colour), np.asarray(expected_colour))
    assert np.array_equal(pixels(shown), pixels(tmp_path / "out" / "my street_overlay.png"))  # opacity 0.5

    counts = np.bincount(ids.ravel(), minlength=19)
    rows = areas["data"]
    assert [r[1] for r in rows] == [served.seg.class_names[c] for c in np.argsort(-counts, kind="stable") if counts[c]]
    assert [float(r[2]) for r in rows] == [round(100 * c / ids.size, 2) for c in sorted(counts[counts > 0])[::-1]]


def test_the_opacity_slider_reblends_without_running_the_network_again(served):
    client = Client(served.url, verbose=False)
    _, _, _, files = client.predict(handle_file(served.photo), 0.5, api_name="/segment")
    before = served.seg.images
    shown, files_after = client.predict(0.8, api_name="/blend")  # the session's kept prediction
    assert served.seg.images == before
    expected = overlay(cv2.imread(served.photo)[:, :, ::-1], pixels(files[0]), served.seg.palette, alpha=0.8)
    assert np.array_equal(pixels(shown), expected)
    assert np.array_equal(pixels(files_after[2]), expected)  # the overlay download follows the slider


def test_a_file_that_is_not_an_image_gets_one_sentence_and_the_server_goes_on(served, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    client = Client(served.url, verbose=False)
    with pytest.raises(AppError, match=r"^notes.txt is not an image; upload a png, jpg, bmp, tif or webp image.$"):
        client.predict(handle_file(str(notes)), 0.5, api_name="/segment")
    _, _, _, files = client.predict(handle_file(served.photo), 0.5, api_name="/segment")
    assert pixels(files[0]).shape == cv2.imread(served.photo).shape[:2]


def write_video(path, frame, frames, fps):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
    for i in range(frames):
        writer.write(np.roll(frame, 3 * i, axis=1))
    writer.release()


def frames_of(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    ok, frame = capture.read()
    while ok:
        frames.append(frame)
        ok, frame = capture.read()
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return frames, fps


def test_a_video_gives_the_overlay_video_of_tools_segment_and_one_the_browser_plays(served, tmp_path):
    video = tmp_path / "drive.mp4"
    write_video(video, cv2.imread(served.photo), frames=5, fps=12.0)
    played, mp4, summary = Client(served.url, verbose=False).predict(handle_file(str(video)),
                                                                     api_name="/segment_video")
    segment_py(served.ckpt, [video], tmp_path / "out")
    ours, fps = frames_of(mp4)
    theirs, _ = frames_of(tmp_path / "out" / "drive_overlay.mp4")
    assert os.path.basename(mp4) == "drive_overlay.mp4" and fps == pytest.approx(12.0)
    assert len(ours) == 5 and all(np.array_equal(a, b) for a, b in zip(ours, theirs))
    assert played.endswith(".webm") and len(frames_of(played)[0]) == 5
    assert summary.startswith("5 frames segmented at ")


def test_videos_over_the_limit_and_images_in_the_video_tab_are_refused(served, tmp_path):
    video = tmp_path / "long drive.mp4"
    write_video(video, cv2.imread(served.photo), frames=6, fps=2.0)  # 3 s; the fixture allows 2
    client = Client(served.url, verbose=False)
    with pytest.raises(AppError, match=r"^long drive.mp4 lasts longer than this page's limit of 2 s \(--max_video_"
                                       r"seconds\); cut it shorter, or segment it with tools/segment.py.$"):
        client.predict(handle_file(str(video)), api_name="/segment_video")
    with pytest.raises(AppError, match=r"is an image; segment it in the Image tab.$"):
        client.predict(handle_file(served.photo), api_name="/segment_video")
    with pytest.raises(AppError, match=r"^long drive.mp4 is a video; segment it in the Video tab.$"):
        client.predict(handle_file(str(video)), 0.5, api_name="/segment")


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded(served, tmp_path):
    message = ("{} is larger than this page's limit of {} Mpixel (--max_megapixels); make it smaller, or segment it "
               "with tools/segment.py.")
    with pytest.raises(gr.Error) as e:
        webui.read_image(served.photo, max_megapixels=0.001)
    assert e.value.message == message.format(os.path.basename(served.photo), 0.001)
    huge = tmp_path / "huge.png"  # 200 Mpixel: over Pillow's own limit too, refused from its header alone
    Image.new("1", (20000, 10000)).save(huge)
    with pytest.raises(gr.Error) as e:
        webui.read_image(str(huge), max_megapixels=50)
    assert e.value.message == message.format("huge.png", 50)


def test_examples_are_the_images_of_the_folder_and_none_without_it(tmp_path):
    assert webui.find_examples(str(tmp_path / "no demo")) == []
    for name in ("b.png", "a.jpg", "notes.txt", "sub/c.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert webui.find_examples(str(tmp_path)) == [str(tmp_path / n) for n in ("a.jpg", "b.png", "sub/c.png")]


def test_a_checkpoint_that_is_missing_ends_with_one_sentence(tmp_path, capsys):
    message = fails(webui, ["--resume", str(tmp_path / "none.pth"), "--cuda", "false"], capsys)
    assert message == (f"error: --resume {tmp_path / 'none.pth'} does not exist; give the path of a .pth "
                       f"checkpoint file.")


def test_a_port_in_use_ends_with_one_sentence(untrained, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        message = fails(webui, ["--resume", untrained()["ckpt"], "--cuda", "false", "--port", str(port)], capsys)
    assert message == (f"error: --port {port} cannot be opened on --host 127.0.0.1 (in use by another program, "
                       f"or not an address of this machine); choose another --port.")


class NoFrameCount:
    """A capture whose file does not tell its length, as some webm files: OpenCV reports 0 frames."""
    real = cv2.VideoCapture

    def __init__(self, *args):
        self.capture = self.real(*args)

    def get(self, prop):
        return 0.0 if prop == cv2.CAP_PROP_FRAME_COUNT else self.capture.get(prop)

    def __getattr__(self, name):
        return getattr(self.capture, name)


def test_a_video_that_does_not_record_its_length_is_stopped_at_the_limit(served, tmp_path, monkeypatch):
    video = tmp_path / "stream.mp4"
    write_video(video, cv2.imread(served.photo), frames=6, fps=2.0)  # 3 s; the fixture allows 2
    monkeypatch.setattr(cv2, "VideoCapture", NoFrameCount)  # the server runs in this process
    with pytest.raises(AppError, match=r"^stream.mp4 lasts longer than this page's limit of 2 s"):
        Client(served.url, verbose=False).predict(handle_file(str(video)), api_name="/segment_video")


def test_a_checkpoint_with_its_own_classes_is_shown_with_their_names_and_colours(served, tmp_path):
    from engine.checkpoint import self_contained
    from model import build_model
    from utils.checkpoint import save_checkpoint
    names, palette = ["lane", "kerb", "verge"], [[10, 20, 30], [200, 100, 0], [0, 250, 120]]
    ckpt = str(tmp_path / "mine.pth")
    torch.manual_seed(1)
    save_checkpoint(self_contained(build_model("CGNet", 3, M=1, N=1).state_dict(), {"name": "CGNet", "classes": 3,
                                   "M": 1, "N": 1}, None, [80.0, 90.0, 100.0], 1, names, palette), ckpt)
    args = webui.get_args_parser().parse_args(["--resume", ckpt, "--cuda", "false", "--port", str(free_port())])
    seg = segmenter_of(args)
    app = webui.build_app(seg, str(tmp_path))
    try:
        url = webui.launch(app, args, [], block=False)
        client = Client(url, verbose=False)
        _, colour, areas, _ = client.predict(handle_file(served.photo), 0.5, api_name="/segment")
        page = str(client.config)  # the components the page shows, with their values
    finally:
        app.close()
    assert "CGNet M1N1, 3 classes, on cpu" in page
    assert all(f"{swatch}{name}" in page for swatch, name in zip(map(webui.swatch, palette), names))  # the legend
    assert {row[1] for row in areas["data"]} <= set(names)
    assert Image.open(colour).getpalette()[:9] == [c for colour in palette for c in colour]


def test_an_examples_folder_that_is_missing_ends_with_one_sentence(untrained, tmp_path, capsys):
    message = fails(webui, ["--resume", untrained()["ckpt"], "--cuda", "false", "--examples", str(tmp_path / "no")],
                    capsys)
    assert message == (f"error: --examples {tmp_path / 'no'} is not a folder; give a folder of images, or leave "
                       f"the flag out.")


@pytest.mark.parametrize("flags", [[], ["--max_side", "40"], ["--max_side", "40", "--tile"]])
def test_the_page_and_tools_segment_take_the_model_flags_with_the_same_effect(untrained, tmp_path, flags):
    """The same flags give the same segmenter, so a photo segments alike in both."""
    made = untrained()
    model = ["--resume", made["ckpt"], "--cuda", "false", *flags]
    page = segmenter_of(webui.get_args_parser().parse_args(model))
    script = segmenter_of(segment.get_args_parser().parse_args([*model, "--out", str(tmp_path), "x"]))
    photo = cv2.resize(cv2.imread(sorted(glob.glob(f"{made['cs']}/leftImg8bit/test/*/*.png"))[0]), (96, 48))
    assert (page.max_side, page.tile) == (script.max_side, script.tile) == (
        int(flags[1]) if flags else 2048, "--tile" in flags)
    assert np.array_equal(page(photo), script(photo))


def test_a_video_claiming_1000_frames_per_second_is_timed_at_the_default_rate(tmp_path):
    """40 frames at a claimed 1000 fps would pass a 1 s limit in 0.04 s and get a 1001-frame ceiling; taken
    at 25 fps (what its overlay video is written at) they last 1.6 s."""
    video = tmp_path / "fast.mp4"
    write_video(video, np.zeros((32, 64, 3), np.uint8), frames=40, fps=1000.0)
    assert webui.check_video(str(video), max_seconds=2, max_megapixels=1) == (40, 25.0)
    with pytest.raises(gr.Error, match="lasts longer than this page's limit of 1 s"):
        webui.check_video(str(video), max_seconds=1, max_megapixels=1)
