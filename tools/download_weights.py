"""Download published CGNet weights, verified before anything appears at --out.

    python tools/download_weights.py camvid                       # the CGNet authors' CamVid model
    python tools/download_weights.py mmseg-cityscapes-512x1024    # mmsegmentation's Cityscapes models
    python tools/download_weights.py camvid --url https://my.mirror/model_800.pth --out model_800.pth

The names, addresses, hashes and default --out paths are in engine/published.py. `camvid` goes where the
original README put it (checkpoint/camvid/CGNet_M3N21bs8gpu1_ontrainval/model_camvid_train_on_trainvalset.pth),
so `python camvid_test.py` finds it unchanged. torch.hub's downloader fetches the file (progress bar, sha256
computed as it arrives) into a hidden staging folder beside --out, and the file is moved to --out only when
its sha256 is the published one (for mmsegmentation's files: starts with the prefix their names carry, as
torch.hub checks it). --url fetches the same file from a mirror; it is verified all the same. A file already
at --out is verified and kept. The file stays byte for byte the published one: the project recognises it
by its sha256 (engine.checkpoint.read_weights), so it runs alone, and the original code still reads it.
"""
import argparse
import http.client
import os
import sys
import urllib.error
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

import torch.hub  # noqa: E402

from engine.published import PUBLISHED, matches  # noqa: E402
from utils.log import log  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.files import check_writable_file, staged_folder  # noqa: E402


def get_args_parser():
    names = "; ".join(f"{e.name}: {e.what}" for e in PUBLISHED.values())
    p = argparse.ArgumentParser(description=f"Download published CGNet weights, verified by their sha256. {names}.")
    p.add_argument("name", metavar="NAME", help=f"one of {', '.join(PUBLISHED)}")
    p.add_argument("--out", default=None,
                   help="file to write (default: per NAME, e.g. the original README's path for camvid)")
    p.add_argument("--url", default=None,
                   help="fetch the same file from this address instead (a mirror); it is verified all the same")
    return p


def reason(error):
    """The short cause of a failed download: 'HTTP Error 404: Not Found', 'Connection refused', ..."""
    if isinstance(error, urllib.error.HTTPError):
        return str(error)
    cause = getattr(error, "reason", None) or error  # a URLError wraps the OSError of the connection
    return str(getattr(cause, "strerror", None) or cause).rstrip(".")


def main(args):
    entry = PUBLISHED.get(args.name)
    if entry is None:
        raise UserError(f"NAME {args.name!r} is not one of the published CGNet files; choose one of "
                        f"{', '.join(PUBLISHED)}.")
    out, url = args.out or entry.out, args.url or entry.url
    by_hand = f"fetch {entry.url} by hand and save it as {out}, then run this command again to verify it"
    if os.path.isfile(out):
        if matches(entry, out):
            log(f"{out} is already there and verified ({entry.name}); nothing to do.")
            return out
        raise UserError(f"--out {out} exists but is not the published {entry.name} file (its sha256 differs); "
                        f"move it away or give another --out.")
    check_writable_file(out, "--out")
    try:
        # Staged inside the folder of --out and moved into place in one rename once verified: a cut connection,
        # a wrong file or Ctrl-C removes the staging folder (and any folder created for it) and leaves nothing.
        with staged_folder(os.path.dirname(os.path.abspath(out)), log) as stage:
            torch.hub.download_url_to_file(url, os.path.join(stage, os.path.basename(out)), hash_prefix=entry.sha256)
    except RuntimeError as e:
        if "invalid hash value" not in str(e):
            raise
        raise UserError(f"{url} did not give the published {entry.name} file (cut short, or another file: {e}), so "
                        f"nothing was written to {out}; a mirror must serve the same file, or {by_hand}.") from None
    except (OSError, http.client.HTTPException, ValueError) as e:  # offline, refused, HTTP error, cut, bad URL
        raise UserError(f"could not download {url} ({reason(e)}), so nothing was written; {by_hand}.") from None
    log(f"{out}: {entry.what}, sha256 verified.")
    return out


if __name__ == "__main__":
    run_cli(main, get_args_parser(), interrupted="stopped by Ctrl-C; nothing was written.")
