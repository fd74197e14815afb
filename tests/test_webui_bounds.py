"""tools/webui.py can be left running: a session keeps no image (one server-side cache bounded in bytes), a
session's files go with it, the temporary folder is bounded and removed on SIGTERM, a full disk is one sentence
and the page serves again after it, a truncated video says how many frames were read."""
import errno
import glob
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from conftest import ROOT, free_port, segmenter_of
from test_truncated_inputs import cut, write_video
from tools import webui
from utils.bounded import BoundedFolder, BytesLRU


def test_the_cache_is_bounded_in_bytes_least_recently_used_first():
    cache = BytesLRU(max_bytes=3000)
    image, pred = np.zeros((10, 50, 3), np.uint8), np.zeros((10, 50), np.uint8)  # 2000 bytes a pair
    cache.put("a", image, pred)
    cache.put("b", image, pred)  # over the bound: "a" goes
    assert cache.get("a") is None and cache.get("b") is not None and cache.bytes == 2000
    cache.drop("b")
    assert cache.bytes == 0 and not cache.items


def test_the_temporary_folder_is_bounded_the_oldest_first(tmp_path):
    temp = BoundedFolder(str(tmp_path), max_bytes=2500, max_age=3600)
    now = time.time()
    for i in range(3):
        folder = temp.folder()
        open(os.path.join(folder, "x.png"), "wb").write(bytes(1000))
        os.utime(folder, (now + i, now + i))
    upload = tmp_path / "0123abcd"  # one of Gradio's upload folders
    upload.mkdir()
    (upload / "photo.jpg").write_bytes(bytes(1000))
    os.utime(upload, (now + 3, now + 3))
    temp.bound()
    kept = sorted(os.path.getmtime(p) - now for p in glob.glob(f"{tmp_path}/results/*"))
    assert kept == [2] and upload.exists()  # the two oldest results went, the new upload stayed
    os.utime(upload, (now - 7200, now - 7200))
    temp.bound()
    assert not upload.exists()  # past its age


@pytest.fixture(scope="module")
def served(untrained, tmp_path_factory):
    """The page as main() serves it (Gradio's uploads and cache in its folder), sessions of 3 s."""
    made = untrained()
    photo = sorted(glob.glob(f"{made['cs']}/leftImg8bit/test/*/*.png"))[0]
    args = webui.get_args_parser().parse_args(["--resume", made["ckpt"], "--cuda", "false", "--port", str(free_port())])
    workdir = str(tmp_path_factory.mktemp("webui"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GRADIO_TEMP_DIR", workdir)
        app = webui.build_app(segmenter_of(args), workdir, session_minutes=0.05)
        url = webui.launch(app, args, [], block=False)
        yield app, url, photo
        app.close()


def test_a_session_keeps_no_image_and_its_files_go_when_it_ends(served):
    app, url, photo = served
    _, _, _, files = Client(url, verbose=False).predict(handle_file(photo), 0.5, api_name="/segment")
    assert len(files) == 3 and len(app.kept.items) == 1
    assert len(os.listdir(app.temp.results)) == 1
    deadline = time.monotonic() + 20  # the session lives 3 s after its upload; Gradio checks every second
    while (files_in(app.temp.root) or app.kept.items) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not app.kept.items and not files_in(app.temp.root)  # the results and the uploads


def files_in(folder):
    return [os.path.join(r, n) for r, _, names in os.walk(folder) for n in names]


def test_reblending_after_the_cache_dropped_the_image_reads_it_back(served):
    app, url, photo = served
    client = Client(url, verbose=False)
    client.predict(handle_file(photo), 0.5, api_name="/segment")
    app.kept.items.clear()
    app.kept.bytes = 0
    shown, _ = client.predict(0.8, api_name="/blend")
    assert cv2.imread(shown).shape == cv2.imread(photo).shape


def test_a_full_disk_is_one_sentence_and_the_page_serves_again(served, monkeypatch):
    app, url, photo = served
    fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", full)
    client = Client(url, verbose=False)
    with pytest.raises(AppError, match=r"^the server is out of disk space; try again later\.$"):
        client.predict(handle_file(photo), 0.5, api_name="/segment")
    monkeypatch.setattr(os, "fsync", fsync)  # space is back
    _, _, _, files = client.predict(handle_file(photo), 0.5, api_name="/segment")
    assert len(files) == 3


def test_a_truncated_video_says_how_many_frames_were_read(served, tmp_path):
    _, url, _ = served
    video = cut(write_video(tmp_path / "cut.avi", "MJPG"))
    _, _, summary = Client(url, verbose=False).predict(handle_file(str(video)), api_name="/segment_video")
    read = int(summary.split()[0])
    assert 0 < read < 30 and (f"The file claims 30 frames but only {read} could be read (it is cut short or "
                              f"damaged); the overlay holds those {read}.") in summary


def test_sigterm_removes_the_temporary_folder(untrained, tmp_path):
    port = free_port()
    env = dict(os.environ, TMPDIR=str(tmp_path))
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "webui.py"), "--resume",
                               untrained()["ckpt"], "--cuda", "false", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        photo = sorted(glob.glob(f"{untrained()['cs']}/leftImg8bit/test/*/*.png"))[0]
        Client(f"http://127.0.0.1:{port}/", verbose=False).predict(handle_file(photo), 0.5, api_name="/segment")
        assert glob.glob(f"{tmp_path}/cgnet-webui-*/results/*/*.png")
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert not glob.glob(f"{tmp_path}/cgnet-webui-*"), server.stdout.read()


def test_a_full_disk_makes_room_from_the_oldest_but_keeps_the_current_upload(tmp_path, monkeypatch):
    temp = BoundedFolder(str(tmp_path), max_bytes=10 ** 9, max_age=3600)
    now = time.time()
    for i in range(3):
        folder = temp.folder()
        open(os.path.join(folder, "x.png"), "wb").write(bytes(1000))
        os.utime(folder, (now + i, now + i))
    upload = tmp_path / "0123abcd"
    upload.mkdir()
    (upload / "photo.jpg").write_bytes(bytes(1000))
    os.utime(upload, (now - 10, now - 10))  # the oldest, but the upload being segmented
    disk = 4500  # a disk of 4500 bytes, holding the folder's files

    def usage(path):
        used = len(files_in(tmp_path)) * 1000
        return shutil._ntuple_diskusage(disk, used, disk - used)
    monkeypatch.setattr(shutil, "disk_usage", usage)
    assert temp.make_room(2000, keep=str(upload / "photo.jpg"))
    assert upload.exists() and len(glob.glob(f"{tmp_path}/results/*")) == 1  # the two oldest results went
    assert not temp.make_room(5000, keep=str(upload / "photo.jpg"))
    assert upload.exists() and not glob.glob(f"{tmp_path}/results/*")
