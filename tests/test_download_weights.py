"""tools/download_weights.py against a loopback HTTP server: the file appears at --out only once verified; a cut,
a wrong file, an unreachable server and an unknown name end with one sentence, exit 2 and nothing written."""
import hashlib
import http.server
import os
import shutil
import threading

import pytest

from conftest import fails, free_port, shared_path
from engine import published
from engine.checkpoint import read_weights
from tools import download_weights
from utils.errors import run_cli

DATA = bytes(range(256)) * 64  # a 16 KiB "checkpoint": what is checked is the bytes, not what they mean


class Handler(http.server.BaseHTTPRequestHandler):
    files = {}  # path -> (bytes sent, Content-Length announced)

    def do_GET(self):
        if self.path not in self.files:
            self.send_error(404)
            return
        body, length = self.files[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)  # fewer bytes than announced: the connection closes in the middle of the file

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # loopback is reached directly
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    Handler.files = {"/good.pth": (DATA, len(DATA)), "/short.pth": (DATA[:5000], 5000),
                     "/cut.pth": (DATA[:5000], len(DATA)), "/other.pth": (DATA[::-1], len(DATA))}
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """A table entry for DATA, its default --out in a folder that does not exist yet."""
    entry = published.Published(name="tiny", url="http://127.0.0.1:9/unused", sha256=hashlib.sha256(DATA).hexdigest(),
                                size=len(DATA), out=str(tmp_path / "new" / "tiny.pth"), what="a test file")
    monkeypatch.setitem(published.PUBLISHED, "tiny", entry)
    return entry


def download(argv):
    return run_cli(download_weights.main, download_weights.get_args_parser(), argv)


def test_a_good_file_is_verified_and_appears_alone(server, tiny, tmp_path):
    assert download(["tiny", "--url", f"{server}/good.pth"]) == tiny.out
    assert open(tiny.out, "rb").read() == DATA
    assert os.listdir(tmp_path / "new") == ["tiny.pth"]  # no staging folder, no partial file left


@pytest.mark.parametrize("path, said", [("/short.pth", "did not give the published tiny file"),
                                        ("/cut.pth", "did not give the published tiny file"),
                                        ("/other.pth", "did not give the published tiny file"),
                                        ("/missing.pth", "HTTP Error 404")])
def test_a_truncated_cut_wrong_or_missing_file_writes_nothing(server, tiny, tmp_path, capsys, path, said):
    message = fails(download_weights, ["tiny", "--url", server + path], capsys)
    assert said in message and tiny.url in message and tiny.out in message, message  # where to fetch, where to put
    assert not os.path.exists(tmp_path / "new")  # the folder made for the staging went with it


def test_a_truncated_file_leaves_a_folder_that_existed_as_it_was(server, tiny, tmp_path, capsys):
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "mine.txt").write_text("kept")
    fails(download_weights, ["tiny", "--url", f"{server}/short.pth"], capsys)
    assert os.listdir(tmp_path / "new") == ["mine.txt"]


def test_an_unreachable_server_names_the_url_and_where_to_put_the_file(tiny, tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/x.pth"
    out = str(tmp_path / "here.pth")
    message = fails(download_weights, ["tiny", "--url", url, "--out", out], capsys)
    assert message.startswith(f"error: could not download {url} (") and f"save it as {out}" in message, message
    assert os.listdir(tmp_path) == []


def test_an_unknown_name_lists_the_names(capsys):
    message = fails(download_weights, ["cityscapes"], capsys)
    assert all(name in message for name in ("camvid", "mmseg-cityscapes-680x680", "mmseg-cityscapes-512x1024"))


def test_a_file_already_there_is_verified_and_another_is_never_replaced(server, tiny, tmp_path, capsys):
    os.makedirs(os.path.dirname(tiny.out))
    with open(tiny.out, "wb") as f:
        f.write(DATA)
    assert download(["tiny", "--url", f"{server}/missing.pth"]) == tiny.out  # fetched by hand: nothing to fetch
    with open(tiny.out, "wb") as f:
        f.write(b"a checkpoint of my own")
    assert "is not the published tiny file" in fails(download_weights, ["tiny", "--url", f"{server}/good.pth"], capsys)
    assert open(tiny.out, "rb").read() == b"a checkpoint of my own"


def test_the_mmseg_entries_are_checked_by_the_prefix_their_file_names_carry():
    for name in ("mmseg-cityscapes-680x680", "mmseg-cityscapes-512x1024"):
        entry = published.PUBLISHED[name]
        assert entry.url.endswith(f"-{entry.sha256}.pth") and os.path.basename(entry.out) == entry.url.split("/")[-1]


def test_the_authors_camvid_file_over_a_mirror_is_verified_and_recognised(server, tmp_path):
    real = shared_path("camvid", "weights", "model_800.pth")
    if real is None:
        pytest.skip("the authors' CamVid weights are absent (../shared/camvid/weights/model_800.pth beside the clone, "
                    "or set CGNET_SHARED)")
    body = open(real, "rb").read()
    Handler.files["/model_800.pth"] = (body, len(body))
    out = str(tmp_path / "checkpoint" / "model_camvid_train_on_trainvalset.pth")
    download(["camvid", "--url", f"{server}/model_800.pth", "--out", out])
    assert open(out, "rb").read() == body  # byte for byte: the original code's loader reads it as before
    weights = read_weights(out)
    assert weights.layout == "original" and weights.dataset == "camvid" and weights.network["classes"] == 11
    assert weights.class_names[0] == "sky" and weights.mean.tolist() == pytest.approx([105.658, 103.330, 99.625], 1e-4)
    changed = str(tmp_path / "changed.pth")  # the same weights in another file: not recognised, nothing assumed
    shutil.copy(out, changed)
    with open(changed, "ab") as f:
        f.write(b"\0")
    assert published.recognise(changed) is None
