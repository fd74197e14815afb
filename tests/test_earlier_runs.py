"""A new training run never replaces an earlier run's checkpoints unless asked (issue 21, point 2)."""
import hashlib
import os

import pytest

import cityscapes_train
from conftest import fails, train_argv
from utils.errors import run_cli


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.slow  # trains twice
def test_a_second_run_with_the_same_flags_is_refused_and_the_first_survives(cs, tmp_path, capsys):
    argv = train_argv(cs, tmp_path, "--max_epochs", "1", "--val_data_list", "")
    first = run_cli(cityscapes_train.main, cityscapes_train.get_args_parser(), argv)
    run_dir = first["run_dir"]
    before = {name: digest(os.path.join(run_dir, name)) for name in os.listdir(run_dir)}
    assert "model_1.pth" in before and "checkpoint.pth" in before

    message = fails(cityscapes_train, argv, capsys)
    assert run_dir in message and "--resume auto" in message and "--overwrite" in message and "--savedir" in message
    message = fails(cityscapes_train, [*argv, "--weights", os.path.join(run_dir, "model_1.pth")], capsys)
    assert "earlier run" in message
    assert {name: digest(os.path.join(run_dir, name)) for name in os.listdir(run_dir)} == before  # byte for byte

    # Asked for explicitly, the new run replaces the earlier one.
    run_cli(cityscapes_train.main, cityscapes_train.get_args_parser(), [*argv, "--seed", "4", "--overwrite"])
    assert "--overwrite: removed" in capsys.readouterr().out
    assert digest(os.path.join(run_dir, "model_1.pth")) != before["model_1.pth"]
