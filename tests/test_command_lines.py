"""Command lines: the original release's still parse, every `python …` line of the README and of docs/ parses with
its script's own parser, and the original defaults hold."""
import importlib
import os
import shlex

import pytest

import camvid_test
import camvid_train
import cityscapes_eval
import cityscapes_test
import cityscapes_train
from conftest import ROOT, readme_commands

# The original README's commands (the brief's "faithful" contract), independent of our README's wording.
ORIGINAL_COMMANDS = [
    (cityscapes_train, "--gpus 0,1 --dataset cityscapes --train_type ontrain --train_data_list "
                       "./dataset/list/Cityscapes/cityscapes_train_list.txt --max_epochs 300"),
    (cityscapes_train, "--gpus 0,1 --dataset cityscapes --train_type ontrainval --train_data_list "
                       "./dataset/list/Cityscapes/cityscapes_trainval_list.txt --max_epochs 350"),
    (cityscapes_eval, "--gpus 0 --val_data_list ./dataset/list/Cityscapes/cityscapes_val_list.txt --resume "
                      "./checkpoint/cityscapes/CGNet_M3N21bs16gpu2_ontrain/model_cityscapes_train_on_trainset.pth"),
    (cityscapes_test, "--gpus 0 --test_data_list ./dataset/list/Cityscapes/cityscapes_test_list.txt --resume "
                      "./checkpoint/cityscapes/CGNet_M3N21bs16gpu2_ontrainval/model_cityscapes_train_on_trainvalset.pth"),
    (camvid_train, ""),
    (camvid_test, ""),
]


@pytest.mark.parametrize("script, line", ORIGINAL_COMMANDS)
def test_original_command_lines_parse(script, line):
    args = script.get_args_parser().parse_args(shlex.split(line))
    assert args.model == "CGNet" and args.cuda is True


def test_the_readme_has_commands_for_every_script():
    scripts = {script for _, script, _ in readme_commands()}
    assert {"cityscapes_train.py", "cityscapes_eval.py", "cityscapes_test.py", "camvid_train.py",
            "camvid_test.py", "benchmark.py"} <= scripts


@pytest.mark.parametrize("script, argv", [c[1:] for c in readme_commands()],
                         ids=lambda x: x if isinstance(x, str) else " ".join(x)[:60])
def test_every_readme_command_parses(script, argv):
    assert os.path.isfile(os.path.join(ROOT, script)), f"the documentation runs {script}, which does not exist"
    module = importlib.import_module(script[:-3].replace("/", "."))
    if not hasattr(module, "get_args_parser"):
        return
    try:
        module.get_args_parser().parse_args(argv)
    except SystemExit as e:  # --help exits 0; anything else is a command the docs get wrong
        assert e.code == 0, f"python {script} {shlex.join(argv)} does not parse"


def test_original_defaults():
    c = cityscapes_train.get_args_parser().parse_args([])
    assert (c.input_size, c.batch_size, c.max_epochs, c.gpus, c.classes, c.lr) == ((680, 680), 16, 350, "0,1", 19, 1e-3)
    assert c.data_dir == "./data/cityscapes" and c.resume is None and c.val_interval == 50
    v = camvid_train.get_args_parser().parse_args([])
    assert (v.input_size, v.batch_size, v.max_epochs, v.gpus, v.classes, v.ignore_label) == ((360, 360), 8, 800, "0", 11, 11)
    assert cityscapes_eval.get_args_parser().parse_args([]).save_seg_dir == "./result/cityscapes/val/"
    assert cityscapes_test.get_args_parser().parse_args([]).save_seg_dir == "./result/cityscapes/test/"


@pytest.mark.parametrize("text, value", [("true", True), ("0", False), ("yes", True), ("No", False)])
def test_boolean_flags_accept_words_and_digits(text, value):
    args = cityscapes_train.get_args_parser().parse_args(["--cuda", text, "--random_mirror", text])
    assert args.cuda is value and args.random_mirror is value
