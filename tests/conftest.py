"""Shared by the test files: the repository on sys.path, tiny synthetic datasets in the real layouts
(made once per session), and the command-line flags of a tiny CPU training run."""
import glob
import json
import os
import re
import shlex
import socket
import signal
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dataset.synthetic import make_camvid, make_cityscapes  # noqa: E402

# The smallest CGNet that still has every kind of block, on the CPU, in the main process.
TINY = ["--M", "1", "--N", "2", "--num_workers", "0", "--cuda", "false", "--compile", "false"]  # compiling: slow tier
# Flags for evaluating the untrained M1N1 checkpoints of the `untrained` fixture on the CPU.
TINY_EVAL = ["--M", "1", "--N", "1", "--num_workers", "0", "--cuda", "false", "--gpus", ""]


def fails(script, argv, capsys, code=2):
    """Run a script's command line as a user does; check the exit status, that no traceback was printed and
    that the last line is one sentence; return that line."""
    from utils.errors import run_cli
    with pytest.raises(SystemExit) as e:
        run_cli(script.main, script.get_args_parser(), argv)
    err = capsys.readouterr().err
    assert e.value.code == code, err
    assert "Traceback" not in err, err
    message = err.strip().splitlines()[-1]  # progress lines may come before it on stderr
    assert message.startswith(("error: ", "interrupted: ")) and message.endswith("."), message
    return message


def train_argv(root, out, *extra):
    """cityscapes_train.py flags for a tiny CPU run on the synthetic Cityscapes at `root`, writing under
    `out` (statistics in out/inform.pkl, runs in out/ckpt/); later flags in `extra` override these."""
    return ["--data_dir", root, "--train_data_list", f"{root}/cityscapes_train_list.txt",
            "--val_data_list", f"{root}/cityscapes_val_list.txt", "--inform_data_file", f"{out}/inform.pkl",
            "--savedir", f"{out}/ckpt/", "--input_size", "32,32", "--batch_size", "2", "--seed", "3",
            "--train_type", "ontrain", *TINY, *extra]


def documented_pages():
    """The user documentation: README.md and the pages of docs/, as paths relative to the repository."""
    pages = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
    return ["README.md", *pages]


def readme_commands():
    """(launcher, script path, argument list) of every python/torchrun command in the shell blocks of the README
    and of docs/, continuation lines joined and comments dropped."""
    text = "\n".join(open(os.path.join(ROOT, page), encoding="utf-8").read() for page in documented_pages())
    commands = []
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|\|\||;|\|", line.split(" # ")[0]):
                words = shlex.split(part, comments=True)
                scripts = [i for i, w in enumerate(words) if w.endswith(".py")]
                launchers = {"python", "python3", "torchrun", ".venv/bin/python"}
                if scripts and any(w in launchers for w in words[:scripts[0]]):
                    commands.append((words[scripts[0] - 1], words[scripts[0]], words[scripts[0] + 1:]))
    return commands


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """synthetic(kind, n_train, n_val, n_test, size) -> the root of such a dataset, made once per session."""
    made = {}

    def make(kind="cityscapes", n_train=6, n_val=2, n_test=2, size=(48, 96)):
        key = (kind, n_train, n_val, n_test, tuple(size))
        if key not in made:
            root = str(tmp_path_factory.mktemp(kind))
            maker = make_cityscapes if kind == "cityscapes" else make_camvid
            maker(root, n_train=n_train, n_val=n_val, n_test=n_test, size=size)
            made[key] = root
        return made[key]
    return make


@pytest.fixture(scope="session")
def untrained(synthetic, tmp_path_factory):
    """untrained(kind, n_train, n_val, n_test, size) -> {"cs": dataset root, "inform": its statistics file,
    "ckpt": an untrained CGNet M1N1 in the original release's {"epoch", "model"} layout}, made once per session.
    For the tests of messages and outputs, where what the network predicts does not matter."""
    from dataset.inform import get_inform
    from model import build_model
    from utils.checkpoint import save_checkpoint
    made = {}

    def make(kind="cityscapes", n_train=2, n_val=2, n_test=1, size=(32, 64)):
        key = (kind, n_train, n_val, n_test, tuple(size))
        if key not in made:
            root = synthetic(kind, n_train, n_val, n_test, size)
            classes, ignore = (19, 255) if kind == "cityscapes" else (11, 11)
            out = tmp_path_factory.mktemp("untrained")
            inform, ckpt = str(out / "inform.pkl"), str(out / "cgnet.pth")
            get_inform(inform, root, f"{kind}_trainval_list.txt", classes, ignore, log=lambda *a: None)
            save_checkpoint({"epoch": 1, "model": build_model("CGNet", classes, M=1, N=1).state_dict()}, ckpt)
            made[key] = {"cs": root, "inform": inform, "ckpt": ckpt}
        return dict(made[key])
    return make


@pytest.fixture(scope="session")
def trained_tiny(synthetic, tmp_path_factory):
    """{"cs": 4 train, 2 val, 2 test Cityscapes-layout images of 48x96, "ckpt": a CGNet M1N2 trained one epoch
    on them}, made once per session: for the exports, whose checks need a network that has seen data."""
    import cityscapes_train
    cs = synthetic(n_train=4, n_val=2, n_test=2)
    out = tmp_path_factory.mktemp("trained")
    summary = cityscapes_train.main(cityscapes_train.get_args_parser().parse_args(train_argv(
        cs, out, "--val_data_list", "", "--train_type", "ontrainval", "--max_epochs", "1", "--seed", "0")))
    return {"cs": cs, "ckpt": f"{summary['run_dir']}/model_1.pth"}


@pytest.fixture(scope="session")
def cs(synthetic):
    """6 train, 2 val, 2 test Cityscapes-layout images of 48x96."""
    return synthetic()


def segmenter_of(args):
    """The Segmenter tools/segment.py and tools/webui.py load from their parsed flags."""
    from engine.cli import segmenter_options
    from engine.segmenter import load_segmenter
    return load_segmenter(args.resume, **segmenter_options(args))


def free_port():
    """A loopback port no one listens on now (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shared_path(*parts):
    """A path under the real data beside the clone (../shared, as in CI) or under $CGNET_SHARED (a worktree kept
    elsewhere); None when it is absent, for a test to skip with that reason."""
    for base in (os.path.join(ROOT, "..", "shared"), os.environ.get("CGNET_SHARED", "")):
        if base and os.path.exists(os.path.join(base, *parts)):
            return os.path.join(base, *parts)
    return None


def prepare(root, *extra):
    """tools/prepare_dataset.py's command line on a dataset folder; its summary."""
    from tools import prepare_dataset
    from utils.errors import run_cli
    return run_cli(prepare_dataset.main, prepare_dataset.get_args_parser(), [str(root), *extra])


def snapshot(root):
    return sorted((str(p), p.stat().st_mtime_ns) for p in root.rglob("*"))


def refused(root, capsys, *extra):
    """prepare_dataset.py's refusal: exit 2, one sentence, and the folder exactly as it was; that sentence."""
    from tools import prepare_dataset
    before = snapshot(root)
    message = fails(prepare_dataset, [str(root), *extra], capsys)
    assert snapshot(root) == before
    return message


def ctrl_c_heard():
    """preexec_fn of a subprocess a test sends Ctrl-C (SIGINT) to: a test run started in the background (`make
    test &` in a non-interactive shell, as some CI runners do) ignores SIGINT, children inherit that, and Python
    then installs no KeyboardInterrupt handler: the signal would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def own_process(module, argv, cwd=None):
    """A script's command line in a process of its own, as a user runs it; (exit status, stderr, what main
    returned). Quantizing or evaluating with loader workers inside the pytest process, after earlier tests'
    DataLoader workers, crashed the whole run with SIGSEGV (as in test_exported.py); in a process of its own it
    cannot take the other tests down."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import importlib; "
            "from utils.errors import run_cli; m = importlib.import_module(sys.argv[2]); "
            "r = run_cli(m.main, m.get_args_parser(), sys.argv[3:]); "
            "print('RESULT ' + json.dumps(r, default=lambda o: o.item() if hasattr(o, 'item') else str(o)))")
    run = subprocess.run([sys.executable, "-c", code, ROOT, module, *map(str, argv)], capture_output=True, text=True,
                         cwd=cwd or ROOT)
    results = [line[7:] for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    return run.returncode, run.stderr, json.loads(results[-1]) if results else None
