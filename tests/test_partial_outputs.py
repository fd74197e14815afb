"""Evaluation and test write all their outputs or none: a bad file found at the end of the list (or Ctrl-C)
leaves no PNGs, no metrics.json and no zip, whatever was predicted before it. Run through run_cli as a user."""
import glob
import os

import pytest

import cityscapes_eval
import cityscapes_test
from utils.errors import run_cli

from conftest import TINY_EVAL as TINY, fails as run


@pytest.fixture(scope="module")
def data(untrained):
    return untrained(n_val=3, n_test=3)


def common(data):
    return ["--data_dir", data["cs"], "--inform_data_file", data["inform"], "--resume", data["ckpt"], *TINY]


def files_under(folder):
    return sorted(os.path.relpath(p, folder) for p in glob.glob(f"{folder}/**", recursive=True)
                  if os.path.isfile(p))


def test_a_labelids_label_at_the_end_leaves_no_predictions(data, tmp_path, capsys):
    lines = open(f"{data['cs']}/cityscapes_val_list.txt").read().splitlines()
    lines[-1] = lines[-1].replace("labelTrainIds", "labelIds")  # the classic mistake, on the last image only
    (tmp_path / "val.txt").write_text("\n".join(lines) + "\n")
    seg = tmp_path / "result" / "val"
    message = run(cityscapes_eval, ["--val_data_list", str(tmp_path / "val.txt"), "--save_seg_dir", str(seg),
                                    "--panel", "true", *common(data)], capsys)
    assert "_gtFine_labelIds.png has values" in message
    assert not (tmp_path / "result").exists()  # not even the folders it would have created


def test_a_failed_run_leaves_an_existing_folder_as_it_was(data, tmp_path, capsys):
    seg = tmp_path / "seg"
    seg.mkdir()
    (seg / "earlier.png").write_bytes(b"kept")
    lines = open(f"{data['cs']}/cityscapes_val_list.txt").read().splitlines()
    lines[-1] = lines[-1].replace("labelTrainIds", "labelIds")
    (tmp_path / "val.txt").write_text("\n".join(lines) + "\n")
    run(cityscapes_eval, ["--val_data_list", str(tmp_path / "val.txt"), "--save_seg_dir", str(seg),
                          *common(data)], capsys)
    assert files_under(seg) == ["earlier.png"]
    assert not glob.glob(f"{seg}/.cgnet-*")


def test_an_unreadable_test_image_at_the_end_leaves_no_submission(data, tmp_path, capsys):
    broken = tmp_path / "broken_leftImg8bit.png"
    broken.write_bytes(open(glob.glob(f"{data['cs']}/leftImg8bit/test/*/*.png")[0], "rb").read()[:200])  # truncated
    lines = open(f"{data['cs']}/cityscapes_test_list.txt").read().splitlines() + [str(broken)]
    (tmp_path / "test.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "result"
    message = run(cityscapes_test, ["--test_data_list", str(tmp_path / "test.txt"), "--save_seg_dir", f"{out}/test",
                                    "--submit_dir", f"{out}/submit", "--zip", f"{out}/submit.zip",
                                    *common(data)], capsys)
    assert str(broken) in message
    assert not out.exists()


def test_a_complete_run_moves_every_output_into_place(data, tmp_path, capsys):
    out = tmp_path / "result"
    run_cli(cityscapes_test.main, cityscapes_test.get_args_parser(),
            ["--test_data_list", f"{data['cs']}/cityscapes_test_list.txt", "--save_seg_dir", f"{out}/test",
             "--submit_dir", f"{out}/submit", "--zip", f"{out}/submit.zip", *common(data)])
    names = [os.path.basename(p)[:-len(".png")] for p in glob.glob(f"{data['cs']}/leftImg8bit/test/*/*.png")]
    assert files_under(out / "submit") == sorted(f"{n}.png" for n in names)
    assert files_under(out / "test") == sorted(f"{n}_color.png" for n in names)
    assert (out / "submit.zip").is_file()
    assert not glob.glob(f"{out}/**/.cgnet-*", recursive=True)
    run_cli(cityscapes_eval.main, cityscapes_eval.get_args_parser(),
            ["--val_data_list", f"{data['cs']}/cityscapes_val_list.txt", "--save_seg_dir", f"{out}/val",
             *common(data)])
    assert "metrics.json" in files_under(out / "val") and len(files_under(out / "val")) == 2 * 3 + 2


def test_a_run_killed_before_the_move_is_cleaned_up_by_the_next(data, tmp_path, capsys):
    """Only the staging folder of a dead run is removed: a user's own hidden folders are left alone."""
    seg = tmp_path / "seg"
    (seg / ".cgnet-stage-abc123").mkdir(parents=True)  # what SIGKILL during a run leaves: nobody holds its lock
    (seg / ".cgnet-stage-abc123" / ".cgnet-owner").write_text("host 123\n")
    (seg / ".cgnet-stage-abc123" / "x.png").write_bytes(b"half")
    (seg / ".tmp-mine").mkdir()  # the user's, not ours
    run_cli(cityscapes_eval.main, cityscapes_eval.get_args_parser(),
            ["--val_data_list", f"{data['cs']}/cityscapes_val_list.txt", "--save_seg_dir", str(seg), *common(data)])
    assert not glob.glob(f"{seg}/.cgnet-*") and (seg / ".tmp-mine").is_dir()
    assert "left by a run that was killed" in capsys.readouterr().out
