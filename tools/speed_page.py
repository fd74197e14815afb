"""Write docs/speed.md from the speed reports in docs/speed/, so that no timing is typed by hand.

    python benchmark.py ... --report docs/speed/MACHINE     # or tools/bench_segment.py ... --report, on that machine
    python tools/speed_page.py                              # docs/speed.md: every report, its machine and commands

A new report (any script that writes one with utils.report.add_section) appears on the page as it is; the tests
fail while docs/speed.md differs from what this writes.
"""
import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

from utils.errors import UserError, run_cli  # noqa: E402
from utils.files import save_text  # noqa: E402
from utils.report import page  # noqa: E402


def get_args_parser():
    parser = argparse.ArgumentParser(description="Write docs/speed.md from the reports in docs/speed/.")
    parser.add_argument("--reports", type=Path, default=ROOT / "docs" / "speed", help="folder of the reports (*.json)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "speed.md", help="the page to write")
    return parser


def main(args):
    if not args.reports.is_dir():
        raise UserError(f"--reports {args.reports} is not a directory; give the folder of the speed reports.")
    text = page(str(args.reports), os.path.relpath(args.reports, args.out.resolve().parent))
    save_text(args.out, text)
    print(f"wrote {args.out} from the reports in {args.reports}")


if __name__ == "__main__":
    run_cli(main, get_args_parser())
