"""List files as users write them: a byte-order mark, tabs and extra spaces are accepted; a folder or a path
with a space gets a message that states the format. Run through cityscapes_eval.py's main as a user would."""
import pytest

import cityscapes_eval
from utils.errors import run_cli

from conftest import TINY_EVAL as TINY
FORMAT = ("file paths relative to --data_dir, separated by spaces or tabs; a path cannot contain a space and "
          "names a file, not a folder")


@pytest.fixture(scope="module")
def data(untrained):
    data = untrained()
    data["pairs"] = [line.split() for line in open(f"{data['cs']}/cityscapes_val_list.txt").read().splitlines()]
    return data


def evaluate(data, list_path):
    return run_cli(cityscapes_eval.main, cityscapes_eval.get_args_parser(),
                   ["--data_dir", data["cs"], "--val_data_list", str(list_path), "--inform_data_file", data["inform"],
                    "--resume", data["ckpt"], "--save_seg_dir", "", *TINY])


def fails(data, list_path, capsys):
    with pytest.raises(SystemExit) as e:
        evaluate(data, list_path)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_a_byte_order_mark_tabs_and_extra_spaces_are_accepted(data, tmp_path):
    (a, b), (c, d) = data["pairs"]
    path = tmp_path / "notepad.txt"
    path.write_bytes(f"\ufeff{a}\t{b}\r\n   {c}  \t  {d}   \r\n\r\n".encode("utf-8"))  # Notepad: BOM and CRLF
    assert evaluate(data, path)["images"] == 2


def test_a_folder_line_states_the_format(data, tmp_path, capsys):
    (a, b), _ = data["pairs"]
    folder = a.rsplit("/", 1)[0]
    path = tmp_path / "folder.txt"
    path.write_text(f"{a} {b}\n{folder} {b}\n")
    message = fails(data, path, capsys)
    assert f"line 2: {data['cs']}/{folder} is a directory" in message
    assert f"(one 'image label' per line: {FORMAT})" in message


def test_a_path_with_a_space_states_the_format(data, tmp_path, capsys):
    (a, b), _ = data["pairs"]
    path = tmp_path / "spaces.txt"
    path.write_text(f"{a} {b}\nmy images/x_leftImg8bit.png {b}\n")
    message = fails(data, path, capsys)
    assert message == (f"error: --val_data_list {path} line 2 has 3 fields, expected 'image label': {FORMAT}; "
                       f"fix or remove that line.")


def test_one_field_is_counted_in_the_singular(data, tmp_path, capsys):
    (a, _), _ = data["pairs"]
    path = tmp_path / "one.txt"
    path.write_text(f"{a}\n")
    assert "line 1 has 1 field, expected 'image label'" in fails(data, path, capsys)


def test_a_list_is_found_as_given_or_inside_data_dir(data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no list of that name here: the one inside --data_dir is read
    assert evaluate(data, "cityscapes_val_list.txt")["images"] == 2
    (a, b), _ = data["pairs"]
    (tmp_path / "cityscapes_val_list.txt").write_text(f"{a} {b}\n")  # as given first, as the original's commands
    assert evaluate(data, "cityscapes_val_list.txt")["images"] == 1
    message = fails(data, "absent.txt", capsys)
    assert message == (f"error: --val_data_list absent.txt does not exist, nor does {data['cs']}/absent.txt; give "
                       f"the path of a list file, as it is or relative to --data_dir (the originals are in "
                       f"dataset/list/).")
