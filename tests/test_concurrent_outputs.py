"""Two runs writing into one folder at once both deliver all their outputs (issue 21, point 1): each cleans
up only the staging folders of killed runs, never a live run's. Real concurrent processes: run A is held
inside its first prediction, with its staging folder made, while run B starts, finishes and cleans up."""
import glob
import os
import subprocess
import sys
import time

import cv2
import pytest

from conftest import ROOT, TINY_EVAL

pytestmark = pytest.mark.slow

# Runs a script as __main__ with every prediction waiting for the file $GO: a run held in the middle of its work.
HELD = """import os, runpy, sys, time
sys.path.insert(0, {root!r})
import engine.backend as backend
logits = backend.TorchBackend.logits

def held(self, batch):
    while not os.path.exists(os.environ["GO"]):
        time.sleep(0.05)
    return logits(self, batch)
backend.TorchBackend.logits = held
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    path = tmp_path_factory.mktemp("held") / "held.py"
    path.write_text(HELD.format(root=ROOT))
    return str(path)


def files_under(folder):
    return sorted(os.path.relpath(p, folder) for p in glob.glob(f"{folder}/**", recursive=True) if os.path.isfile(p))


def run_both(held, script, argv_a, argv_b, out, tmp_path):
    """Start A held, wait for its staging folder in `out`, run B to its end, release A; both must succeed."""
    go = tmp_path / "go"
    a = subprocess.Popen([sys.executable, held, os.path.join(ROOT, script), *argv_a], cwd=ROOT,
                         env=dict(os.environ, GO=str(go)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not glob.glob(f"{out}/.cgnet-stage-*"):
            assert a.poll() is None, a.communicate()[0]
            assert time.monotonic() < deadline, "run A never started staging"
            time.sleep(0.05)
        b = subprocess.run([sys.executable, os.path.join(ROOT, script), *argv_b], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
        assert b.returncode == 0, b.stderr
        assert a.poll() is None  # A is still at work, its staging folder intact
    finally:
        go.touch()
    log = a.communicate(timeout=300)[0]
    assert a.returncode == 0, log
    assert not glob.glob(f"{out}/.cgnet-*")  # neither left anything behind


def test_two_segment_runs_into_one_out_both_deliver(untrained, held, tmp_path):
    data = untrained()
    photos = sorted(glob.glob(f"{data['cs']}/leftImg8bit/*/*/*.png"))
    for name, photo in zip("ab", photos):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / f"{name}.jpg"), cv2.imread(photo))
    out = tmp_path / "out"
    common = ["--resume", data["ckpt"], "--out", str(out), "--cuda", "false"]
    run_both(held, "tools/segment.py", [str(tmp_path / "a"), *common], [str(tmp_path / "b"), *common], out, tmp_path)
    assert files_under(out) == [f"{n}{s}.png" for n in "ab" for s in ("", "_color", "_overlay")]


def test_two_evaluations_into_one_save_seg_dir_both_deliver(untrained, held, tmp_path):
    data = untrained(n_val=2)
    other = tmp_path / "other.pth"  # a second checkpoint, as when comparing two trained models
    other.write_bytes(open(data["ckpt"], "rb").read())
    seg = tmp_path / "seg"

    def argv(ckpt, metrics_name):
        return ["--data_dir", data["cs"], "--val_data_list", f"{data['cs']}/cityscapes_val_list.txt",
                "--inform_data_file", data["inform"], "--resume", ckpt, "--save_seg_dir", str(seg / metrics_name),
                *TINY_EVAL]
    # One --save_seg_dir for both; the metrics of each land in the same folder too (the last one's kept).
    run_both(held, "cityscapes_eval.py", argv(data["ckpt"], "."), argv(str(other), "."), seg / ".", tmp_path)
    names = [os.path.basename(p)[:-len("_leftImg8bit.png")] for p in
             sorted(glob.glob(f"{data['cs']}/leftImg8bit/val/*/*.png"))]
    predictions = [f"{n}_leftImg8bit{s}.png" for n in names for s in ("", "_color")]
    assert files_under(seg) == sorted(["confusion.png", "metrics.json"] + predictions)
