"""Download published CGNet weights, verified before anything appears at --out.

    python tools/download_weights.py camvid                       # the CGNet authors' CamVid model
    python tools/download_weights.py mmseg-cityscapes-512x1024    # mmsegmentation's Cityscapes models
    python tools/download_weights.py camvid --url https://my.mirror/model_800.pth --out model_800.pth

The names, addresses, hashes and default --out paths are in engine/published.py, with the fetching itself
(training's --weights NAME fetches the same way). `camvid` goes where the
original README put it (checkpoint/camvid/CGNet_M3N21bs8gpu1_ontrainval/model_camvid_train_on_trainvalset.pth),
so `python camvid_test.py` finds it unchanged. torch.hub's downloader fetches the file (progress bar, sha256
computed as it arrives) into a hidden staging folder beside --out, and the file is moved to --out only when
its sha256 is the published one (for mmsegmentation's files: starts with the prefix their names carry, as
torch.hub checks it). --url fetches the same file from a mirror; it is verified all the same. A file already
at --out is verified and kept. The file stays byte for byte the published one: the project recognises it
by its sha256 (engine.checkpoint.read_weights), so it runs alone, and the original code still reads it.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

from engine.published import PUBLISHED, fetch  # noqa: E402
from utils.log import log  # noqa: E402
from utils.errors import run_cli  # noqa: E402


def get_args_parser():
    names = "; ".join(f"{e.name}: {e.what}" for e in PUBLISHED.values())
    p = argparse.ArgumentParser(description=f"Download published CGNet weights, verified by their sha256. {names}.")
    p.add_argument("name", metavar="NAME", help=f"one of {', '.join(PUBLISHED)}")
    p.add_argument("--out", default=None,
                   help="file to write (default: per NAME, e.g. the original README's path for camvid)")
    p.add_argument("--url", default=None,
                   help="fetch the same file from this address instead (a mirror); it is verified all the same")
    return p


def main(args):
    return fetch(args.name, args.out, args.url, log)


if __name__ == "__main__":
    run_cli(main, get_args_parser(), interrupted="stopped by Ctrl-C; nothing was written.")
