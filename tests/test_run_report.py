"""tools/run_report.py: the epoch times on the pages come from what training runs printed."""
import json
import re

import pytest

from tools import run_report
from utils.errors import UserError


def transcript(path, seconds, total=None, resumed=()):
    """What camvid_train.py prints, tqdm's redrawn bars included; `resumed`: epochs printed again by a resumed run."""
    total = total or len(seconds)
    lines = ["run folder ./checkpoint/x; 494,258 parameters; seed 1; device cpu"]
    for epoch, s in enumerate(seconds, 1):
        lines.append(f"epoch {epoch}/{total}:  52%|#####     | 30/58 [00:29<00:27,  1.03it/s, loss 0.7326]\r"
                     f"epoch {epoch}/{total}: loss 0.7268, train mIoU 0.4482, lr 9.78e-04, {s} s; run ETA 1:55:38")
    lines += [f"epoch {e}/{total}: loss 0.5, train mIoU 0.5, val mIoU 0.6, lr 1e-05, {s} s" for e, s in resumed]
    path.write_text("\n".join(lines) + "\n")
    return path


def report(tmp_path, *argv):
    args = run_report.get_args_parser().parse_args([*argv, "--report", str(tmp_path / "speed" / "here")])
    run_report.main(args)
    return json.loads((tmp_path / "speed" / "here.json").read_text())["sections"]


def test_epoch_times_hours_for_the_recipe_speed_up_and_test_miou(tmp_path):
    fast = transcript(tmp_path / "fast.txt", [90.0, 50.0, 60.0, 55.0])  # the first epoch compiles
    plain = transcript(tmp_path / "plain.txt", [100.0, 110.0, 100.0, 120.0])
    (tmp_path / "test.json").write_text(json.dumps({"mIoU": 0.6012, "IoU": {}}))
    sections = report(tmp_path, f"default={fast}", f"plain={plain}", "--metrics", f"default={tmp_path}/test.json",
                      "--baseline", "plain", "--epochs", "800")
    rows = sections[run_report.get_args_parser().get_default("section")]["rows"]
    assert rows[0] == {"configuration": "default", "epochs": 4, "first epoch s": 90.0, "median epoch s": 55.0,
                       "minutes, all epochs": 255.0 / 60, "hours for 800 epochs": 55.0 * 800 / 3600,
                       "x plain": 110.0 / 55.0, "test mIoU %": pytest.approx(60.12)}
    assert rows[1]["median epoch s"] == 110.0 and rows[1]["x plain"] == 1.0 and "test mIoU %" not in rows[1]
    assert (tmp_path / "speed" / "here.md").is_file()


def test_a_resumed_runs_later_line_for_an_epoch_counts(tmp_path):
    run = transcript(tmp_path / "run.txt", [80.0, 50.0, 51.0], total=4, resumed=[(3, 52.0), (4, 53.0)])
    row = run_report.rows_of(run_report.get_args_parser().parse_args([f"a={run}", "--report", "x"]))[0]
    assert row["epochs"] == 4 and row["median epoch s"] == 52.0 and row["minutes, all epochs"] == 235.0 / 60


@pytest.mark.parametrize("argv, words", [
    (["default"], "is not LABEL=FILE"),
    (["default=missing.txt"], "cannot read the training transcript missing.txt"),
    (["default=empty.txt"], "has no line 'epoch N/E: loss ..., S s'"),
    (["default=run.txt", "--metrics", "other=test.json"], "--metrics names the run 'other'"),
    (["default=run.txt", "--baseline", "plain"], "--baseline names the run 'plain'"),
    (["default=run.txt", "--metrics", "default=empty.txt"], "empty.txt is not a metrics file with an mIoU"),
])
def test_bad_input_is_one_sentence_and_no_report(tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    transcript(tmp_path / "run.txt", [60.0, 50.0])
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(UserError, match=re.escape(words)):
        report(tmp_path, *argv)
    assert not (tmp_path / "speed").exists()
