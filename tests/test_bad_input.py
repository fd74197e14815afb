"""Bad input ends in one sentence naming the file or flag, a non-zero exit, no traceback and no partial output.

Every case runs a script's main() through run_cli (a few as subprocesses), as a user would; docs/ERRORS.md
lists the messages these tests observe.
"""
import glob
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

import camvid_test
import camvid_train
import cityscapes_eval
import cityscapes_test
import cityscapes_train
from model import build_model
from conftest import ROOT, ctrl_c_heard, fails
from utils import errors
from utils.checkpoint import save_checkpoint
from utils.device import select_device
from utils.files import check_writable_file
from utils.errors import UserError, run_cli

TINY = {"--M": "1", "--N": "1", "--num_workers": "0", "--cuda": "false", "--gpus": ""}


class Evil:
    """A pickle that runs a command when loaded: the tests check that its marker file never appears."""
    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {Evil.marker}",))


@pytest.fixture(scope="module")
def data(untrained, tmp_path_factory):
    """A tiny Cityscapes (2 train, 2 val, 1 test images of 32x64), its statistics and matching checkpoints."""
    data = untrained()
    data["ckpt11"] = str(tmp_path_factory.mktemp("bad_input") / "cgnet11.pth")
    save_checkpoint({"epoch": 1, "model": build_model("CGNet", 11, M=1, N=1).state_dict()}, data["ckpt11"])
    train = [line.split() for line in open(f"{data['cs']}/cityscapes_train_list.txt").read().splitlines()]
    data["pair"] = [os.path.join(data["cs"], p) for p in train[0]]
    return data


def argv(defaults, overrides=None):
    merged = {**defaults, **(overrides or {})}
    return [x for k, v in merged.items() if v is not None for x in (k, str(v))]


def train_args(data, out, **over):
    cs = data["cs"]
    return argv({"--data_dir": cs, "--train_data_list": f"{cs}/cityscapes_train_list.txt", "--val_data_list": "",
                 "--inform_data_file": data["inform"], "--savedir": f"{out}/ckpt", "--input_size": "32,32",
                 "--batch_size": "2", "--max_epochs": "1", "--seed": "0", **TINY}, over)


def eval_args(data, out, **over):
    cs = data["cs"]
    return argv({"--data_dir": cs, "--val_data_list": f"{cs}/cityscapes_val_list.txt",
                 "--inform_data_file": data["inform"], "--resume": data["ckpt"],
                 "--save_seg_dir": f"{out}/seg", **TINY}, over)


def predict_args(data, out, **over):
    cs = data["cs"]
    return argv({"--data_dir": cs, "--test_data_list": f"{cs}/cityscapes_test_list.txt",
                 "--inform_data_file": data["inform"], "--resume": data["ckpt"], "--save_seg_dir": f"{out}/seg",
                 "--submit_dir": f"{out}/submit", **TINY}, over)


def no_partial_output(out):
    """Nothing written under the run/prediction folders, and no temporary file anywhere under `out`."""
    assert not glob.glob(f"{out}/**/.cgnet-*", recursive=True)
    for folder in ("ckpt", "seg", "submit"):
        files = [p for p in glob.glob(f"{out}/{folder}/**", recursive=True) if os.path.isfile(p)]
        assert not files, files


def write_list(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


# ------------------------------------------------------------------------------ data folder and list files

@pytest.mark.parametrize("script, make_args", [
    (cityscapes_train, train_args), (camvid_train, train_args), (cityscapes_eval, eval_args),
    (cityscapes_test, predict_args), (camvid_test, eval_args)])
def test_missing_data_dir(data, tmp_path, capsys, script, make_args):
    missing = tmp_path / "nowhere"
    args = make_args(data, tmp_path, **{"--data_dir": missing})
    if script is camvid_test:  # its list flag and class count differ
        args = [a.replace("--val_data_list", "--test_data_list") for a in args] + ["--classes", "19"]
    if script is camvid_train:
        args += ["--ignore_label", "255", "--classes", "19"]
    message = fails(script, args, capsys)
    assert f"--data_dir {missing} is not a directory" in message
    no_partial_output(tmp_path)


def test_missing_list_file(data, tmp_path, capsys):
    message = fails(cityscapes_train, train_args(data, tmp_path, **{"--train_data_list": tmp_path / "no.txt"}), capsys)
    assert f"--train_data_list {tmp_path / 'no.txt'} does not exist" in message
    no_partial_output(tmp_path)


def test_empty_list_file(data, tmp_path, capsys):
    empty = write_list(tmp_path / "empty.txt", ["", "   "])
    message = fails(cityscapes_eval, eval_args(data, tmp_path, **{"--val_data_list": empty}), capsys)
    assert f"--val_data_list {empty} is empty" in message
    no_partial_output(tmp_path)


def test_binary_list_file(data, tmp_path, capsys):
    binary = tmp_path / "list.txt"
    binary.write_bytes(bytes(range(256)))
    message = fails(cityscapes_train, train_args(data, tmp_path, **{"--train_data_list": binary}), capsys)
    assert f"--train_data_list {binary} is not a text file" in message


def test_list_line_with_wrong_number_of_fields(data, tmp_path, capsys):
    image, label = data["pair"]
    bad = write_list(tmp_path / "list.txt", [f"{image} {label}", f"{image} {label} extra"])
    message = fails(cityscapes_train, train_args(data, tmp_path, **{"--train_data_list": bad}), capsys)
    assert f"--train_data_list {bad} line 2 has 3 fields, expected 'image label'" in message
    no_partial_output(tmp_path)


def test_missing_unreadable_and_non_image_files_are_listed_with_line_numbers(data, tmp_path, capsys):
    image, label = data["pair"]
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    folder = tmp_path / "folder.png"
    folder.mkdir()
    bad = write_list(tmp_path / "list.txt", [
        f"{image} {label}", f"{tmp_path}/gone.png {label}", f"{image} {text}", f"{image} {folder}",
        f"{image} {tmp_path}/gone_label.png", f"{text} {label}"])
    message = fails(cityscapes_train, train_args(data, tmp_path, **{"--train_data_list": bad}), capsys)
    assert (f"line 2: {tmp_path}/gone.png is missing; line 3: {text} is not an image; "
            f"line 4: {folder} is a directory; and 2 more" in message)
    assert message.startswith(f"error: --train_data_list {bad} names files that cannot be used")
    no_partial_output(tmp_path)


def test_image_and_label_of_different_sizes(data, tmp_path, capsys):
    image, label = data["pair"]
    small = tmp_path / "small_label.png"
    Image.open(label).crop((0, 0, 32, 16)).save(small)
    bad = write_list(tmp_path / "list.txt", [f"{image} {small}"])
    message = fails(cityscapes_eval, eval_args(data, tmp_path, **{"--val_data_list": bad}), capsys)
    assert f"line 1: {small} is 32x16 but its image is 64x32" in message
    no_partial_output(tmp_path)


def test_rgb_file_given_as_label(data, tmp_path, capsys):
    image, _ = data["pair"]
    bad = write_list(tmp_path / "list.txt", [f"{image} {image}"])
    message = fails(cityscapes_train, train_args(data, tmp_path, **{"--train_data_list": bad}), capsys)
    assert f"line 1: {image} has image mode RGB, not a single-channel greyscale label map" in message
    no_partial_output(tmp_path)


def bad_label_list(data, tmp_path):
    image, label = data["pair"]
    values = np.array(Image.open(label))
    values[:4, :4] = 42
    values[-1, -1] = 30
    bad_label = tmp_path / "bad_label.png"
    Image.fromarray(values).save(bad_label)
    return write_list(tmp_path / "list.txt", [f"{image} {bad_label}", f"{image} {bad_label}"]), bad_label


@pytest.mark.slow  # a DataLoader worker process
def test_label_values_outside_the_classes_in_a_loader_worker(data, tmp_path):
    """The check runs inside a DataLoader worker; torch wraps it, run_cli prints only the sentence. Run as its
    own process, as a user runs it: a worker that failed leaves torch's SIGCHLD handling in the process behind,
    which later tests of this process (OpenVINO) must not inherit."""
    bad, bad_label = bad_label_list(data, tmp_path)
    run = subprocess.run([sys.executable, "cityscapes_train.py", *train_args(data, tmp_path, **{
        "--train_data_list": bad, "--num_workers": "1"})], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: label {bad_label} has values [30, 42] outside 0..18 and the ignore label 255; "
        f"check --classes/--ignore_label, or that the list names trainId labels.")
    assert not glob.glob(f"{tmp_path}/ckpt/**/*.pth", recursive=True)
    assert not glob.glob(f"{tmp_path}/**/.cgnet-*", recursive=True)


def test_label_values_outside_the_classes_in_evaluation(data, tmp_path, capsys):
    bad, bad_label = bad_label_list(data, tmp_path)
    message = fails(cityscapes_eval, eval_args(data, tmp_path, **{"--val_data_list": bad}), capsys)
    assert f"label {bad_label} has values [30, 42] outside 0..18" in message
    no_partial_output(tmp_path)


def test_classes_not_matching_the_labels(data, tmp_path, capsys):
    """--classes 11 on Cityscapes labels: found while computing the statistics, before any training."""
    inform = tmp_path / "inform11.pkl"
    message = fails(cityscapes_train, train_args(data, tmp_path, **{"--classes": "11", "--inform_data_file": inform}),
                    capsys)
    assert "_gtFine_labelTrainIds.png has values [" in message and "outside 0..10 and the ignore label 255" in message
    assert not inform.exists()
    no_partial_output(tmp_path)


# -------------------------------------------------------------------------------------------------- flags

@pytest.mark.parametrize("script, flag, value", [
    (cityscapes_train, "--input_size", "680"), (cityscapes_train, "--input_size", "a,b"),
    (cityscapes_train, "--input_size", "0,32"), (cityscapes_train, "--input_size", "32,-4"),
    (cityscapes_train, "--batch_size", "0"), (cityscapes_train, "--batch_size", "-2"),
    (cityscapes_train, "--max_epochs", "0"), (cityscapes_train, "--num_workers", "-1"),
    (cityscapes_train, "--M", "0"), (cityscapes_train, "--N", "0"), (cityscapes_train, "--classes", "0"),
    (cityscapes_train, "--lr", "0"), (cityscapes_train, "--lr", "nan"), (cityscapes_train, "--seed", "-1"),
    (cityscapes_train, "--val_interval", "0"), (cityscapes_train, "--cuda", "maybe"),
    (cityscapes_eval, "--batch_size", "0"), (cityscapes_eval, "--num_workers", "two"),
])
def test_malformed_or_meaningless_flag_values(data, tmp_path, capsys, script, flag, value):
    args = (train_args if script is cityscapes_train else eval_args)(data, tmp_path, **{flag: value})
    message = fails(script, args, capsys)
    assert message.startswith(f"error: argument {flag}: ") and value in message and "usage:" not in message
    no_partial_output(tmp_path)


def test_gpus_naming_a_missing_gpu(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    args = cityscapes_train.get_args_parser().parse_args(["--cuda", "true", "--gpus", "0,3"])
    with pytest.raises(UserError, match=r"--gpus 0,3 names GPU 3, but only 1 GPU\(s\) are visible"):
        select_device(args)
    message = fails(cityscapes_train, train_args(data, tmp_path, **{"--cuda": "true", "--gpus": "1"}), capsys)
    assert message.startswith("error: --gpus 1 names GPU 1, but only 1 GPU(s) are visible (ids 0..0)")
    message = fails(cityscapes_eval, eval_args(data, tmp_path, **{"--cuda": "true", "--gpus": "0,x"}), capsys)
    assert message.startswith("error: --gpus '0,x' is not a list of GPU ids")
    no_partial_output(tmp_path)


# --------------------------------------------------------------------------------------------- --resume

def make_resume(kind, data, tmp_path):
    path = tmp_path / "resume.pth"
    good = open(data["ckpt"], "rb").read()
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "text":
        path.write_text("epoch 3, best mIoU 0.6\n")
    elif kind == "11 classes":
        return data["ckpt11"]
    elif kind == "ENet":
        save_checkpoint({"model": build_model("ENet", 19).state_dict()}, str(path))
    elif kind == "code":
        torch.save({"epoch": 1, "model": Evil()}, path)
    return path


RESUME_CASES = [
    ("missing", "does not exist; give the"), ("directory", "is a directory; give the path of a .pth"),
    ("empty", "is empty (0 bytes)"), ("truncated", "is not a PyTorch checkpoint"),
    ("random bytes", "is not a PyTorch checkpoint"), ("text", "is not a PyTorch checkpoint"),
    ("11 classes", "the checkpoint has 11 classes but the model 19"),
    ("ENet", "no parameter name matches: it is a checkpoint of another network"),
    ("code", "was refused: it contains a Python object (posix.system)"),
]


@pytest.mark.parametrize("kind, says", RESUME_CASES)
@pytest.mark.parametrize("script", [cityscapes_eval, cityscapes_train], ids=["evaluation", "training"])
def test_bad_resume(data, tmp_path, capsys, script, kind, says):
    Evil.marker = str(tmp_path / "pwned")
    path = make_resume(kind, data, tmp_path)
    args = (eval_args if script is cityscapes_eval else train_args)(data, tmp_path, **{"--resume": path})
    message = fails(script, args, capsys)
    assert message.startswith(f"error: --resume {path} ") and says in message
    assert not os.path.exists(Evil.marker)
    no_partial_output(tmp_path)


# ----------------------------------------------------------------------------------------- inform file

@pytest.mark.parametrize("kind, says", [
    ("corrupt", "is not a valid statistics file (invalid load key"),
    ("code", "is not a valid statistics file (posix.system is not allowed)"),
    ("19 classes", "has class weights for 19 classes but --classes is 11"),
    ("directory", "is a directory; give the path of a .pkl file"),
])
def test_bad_inform_file(data, tmp_path, capsys, kind, says):
    Evil.marker = str(tmp_path / "pwned")
    inform = tmp_path / "inform.pkl"
    extra = {}
    if kind == "corrupt":
        inform.write_bytes(b"\x00garbage" * 10)
    elif kind == "code":
        inform.write_bytes(pickle.dumps({"mean": Evil()}))
    elif kind == "19 classes":
        shutil.copy(data["inform"], inform)
        extra = {"--classes": "11", "--resume": data["ckpt11"]}
    else:
        inform.mkdir()
    script, make_args = (cityscapes_eval, eval_args) if kind == "19 classes" else (cityscapes_train, train_args)
    message = fails(script, make_args(data, tmp_path, **{"--inform_data_file": inform, **extra}), capsys)
    assert message.startswith(f"error: --inform_data_file {inform} ") and says in message
    assert not os.path.exists(Evil.marker)
    no_partial_output(tmp_path)


# ------------------------------------------------------------------------------------------ output folders

def test_savedir_is_a_file(data, tmp_path, capsys):
    (tmp_path / "ckpt").write_text("a file")
    message = fails(cityscapes_train, train_args(data, tmp_path), capsys)
    assert message.startswith(f"error: --savedir {tmp_path}/ckpt/cityscapes/") and \
        f"lies inside the file {tmp_path}/ckpt, not a folder" in message
    assert (tmp_path / "ckpt").read_text() == "a file"


def test_save_seg_dir_is_a_file(data, tmp_path, capsys):
    (tmp_path / "seg").write_text("a file")
    message = fails(cityscapes_eval, eval_args(data, tmp_path), capsys)
    assert message == f"error: --save_seg_dir {tmp_path}/seg is a file, not a folder; give a folder path."


def test_submit_dir_inside_a_file(data, tmp_path, capsys):
    (tmp_path / "file").write_text("a file")
    message = fails(cityscapes_test, predict_args(data, tmp_path, **{"--submit_dir": tmp_path / "file" / "submit"}),
                    capsys)
    assert message.startswith(f"error: --submit_dir {tmp_path}/file/submit lies inside the file {tmp_path}/file")
    no_partial_output(tmp_path)


def test_zip_that_is_a_folder_is_found_before_the_work(tmp_path):
    with pytest.raises(UserError, match=f"--zip {tmp_path} is a folder; give the path of a file to write"):
        check_writable_file(str(tmp_path), "--zip")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_save_seg_dir_not_writable(data, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    message = fails(cityscapes_eval, eval_args(data, tmp_path, **{"--save_seg_dir": locked / "seg"}), capsys)
    assert f"--save_seg_dir {locked}/seg is not writable" in message


# ------------------------------------------------------------------------------------------------- Ctrl-C

@pytest.mark.slow
def test_ctrl_c_during_training_keeps_the_last_checkpoint(data, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CGNET_DEBUG"}
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "cityscapes_train.py", *train_args(data, tmp_path, **{
            "--max_epochs": "100000"})], cwd=ROOT, env=env, stdout=out, stderr=err, preexec_fn=ctrl_c_heard)
        try:
            deadline = time.monotonic() + 60
            while not glob.glob(f"{tmp_path}/ckpt/*/*/checkpoint.pth") and proc.poll() is None:
                assert time.monotonic() < deadline, "no checkpoint within 60 s"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            returncode = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
    stderr = (tmp_path / "err.txt").read_text()
    assert returncode == 130 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted: stopped by Ctrl-C; completed checkpoints")
    ckpt = torch.load(glob.glob(f"{tmp_path}/ckpt/*/*/checkpoint.pth")[0], map_location="cpu", weights_only=True)
    assert ckpt["epoch"] >= 1
    assert not glob.glob(f"{tmp_path}/**/.cgnet-*", recursive=True)


def test_ctrl_c_during_evaluation_leaves_no_outputs(data, tmp_path, capsys, monkeypatch):
    from dataset.datasets import EvalDataset
    real = EvalDataset.__getitem__

    def interrupted_at_the_second_image(self, index):
        if index == 1:
            raise KeyboardInterrupt
        return real(self, index)
    monkeypatch.setattr(EvalDataset, "__getitem__", interrupted_at_the_second_image)
    message = fails(cityscapes_eval, eval_args(data, tmp_path), capsys, code=130)
    assert message.startswith("interrupted: stopped by Ctrl-C")
    assert not (tmp_path / "seg").exists()  # the first image's PNGs were staged, then removed with the folder


# ------------------------------------------------------------------------------------- as real commands

@pytest.mark.slow
def test_scripts_exit_with_one_sentence_and_no_traceback(data, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CGNET_DEBUG"}
    bad, bad_label = bad_label_list(data, tmp_path)
    run = subprocess.run([sys.executable, "cityscapes_eval.py", *eval_args(data, tmp_path, **{
        "--val_data_list": bad, "--num_workers": "1"})], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith(f"error: label {bad_label} has values [30, 42]")
    run = subprocess.run([sys.executable, "camvid_train.py", "--input_size", "3x3"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr == ("error: argument --input_size: expected H,W such as 680,680, "
                                                  "got '3x3'; see --help.\n")
    no_partial_output(tmp_path)


def test_batched_evaluation_of_images_of_different_sizes(data, tmp_path, capsys):
    image, label = data["pair"]
    big_image, big_label = tmp_path / "big.png", tmp_path / "big_label.png"
    Image.open(image).resize((128, 64)).save(big_image)
    Image.open(label).resize((128, 64), Image.NEAREST).save(big_label)
    mixed = write_list(tmp_path / "list.txt", [f"{image} {label}", f"{big_image} {big_label}"])
    message = fails(cityscapes_eval, eval_args(data, tmp_path, **{"--val_data_list": mixed, "--batch_size": "2"}),
                    capsys)
    assert "--batch_size 2" in message and "different sizes" in message and "--batch_size 1" in message
    no_partial_output(tmp_path)


@pytest.mark.slow
def test_a_rank_that_stops_alone_prints_its_error_with_its_rank(data, tmp_path, capsys, monkeypatch):
    """One process of a 2-process run (the run's store hosted here); an error every rank meets is said
    once without a rank (tests/test_rank_errors.py runs both cases under torchrun)."""
    monkeypatch.setattr(errors, "_stopping", threading.Lock())  # this process has not stopped on an error yet
    store = torch.distributed.TCPStore("127.0.0.1", 0, 2, is_master=True, wait_for_workers=False)
    for k, v in dict(RANK=1, WORLD_SIZE=2, MASTER_ADDR="127.0.0.1", MASTER_PORT=store.port).items():
        monkeypatch.setenv(k, str(v))
    with pytest.raises(SystemExit) as e:
        run_cli(cityscapes_eval.main, cityscapes_eval.get_args_parser(),
                eval_args(data, tmp_path, **{"--resume": str(tmp_path / "none.pth")}))
    assert e.value.code == 2 and capsys.readouterr().err.startswith(f"[rank 1] error: --resume {tmp_path}/none.pth")
