"""The documentation is a map that holds together: a short README, a table of contents on every task page, links
and section citations (in the pages and in the code's messages and comments) that reach a heading that exists, and
no figure written by hand that the next run would change."""
import glob
import json
import os
import re

import pytest

from conftest import ROOT, documented_pages
from dataset.palettes import CAMVID_CLASSES
from tools import speed_page
from utils.report import add_section, anchor, page

TASK_PAGES = ("training.md", "own-data.md", "segment.md", "deploy.md", "differences.md")


def read(page):
    return open(os.path.join(ROOT, page), encoding="utf-8").read()


def prose(text):
    """The text outside fenced code blocks."""
    return re.sub(r"```.*?```", "", text, flags=re.S)


def headings(text):
    return [m.group(2).strip() for m in re.finditer(r"(?m)^(#{1,6}) (.+)$", prose(text))]


def test_the_readme_is_short():
    assert len(read("README.md").splitlines()) <= 250


@pytest.mark.parametrize("page", TASK_PAGES)
def test_every_task_page_has_a_table_of_contents_of_its_sections(page):
    text = read(f"docs/{page}")
    contents = prose(text).split("## Contents", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"\]\(#([^)]+)\)", contents)
    sections = [anchor(h) for h in re.findall(r"(?m)^##+ (.+)$", prose(text)) if h != "Contents"]
    assert listed == sections


@pytest.mark.parametrize("page", documented_pages())
def test_every_link_reaches_a_file_and_a_heading(page):
    folder = os.path.dirname(os.path.join(ROOT, page))
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(read(page))):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, fragment = target.partition("#")
        path = os.path.normpath(os.path.join(folder, path)) if path else os.path.join(ROOT, page)
        assert os.path.exists(path), f"{page} links to {target}, which does not exist"
        if fragment:
            assert fragment in [anchor(h) for h in headings(open(path, encoding="utf-8").read())], \
                f"{page} links to {target}, a heading that does not exist"


def test_every_section_the_code_cites_exists():
    """Messages and comments cite a page and a section ("docs/deploy.md, 'int8 on real data'"): the section is
    a heading of that page."""
    sources = [p for p in glob.glob(os.path.join(ROOT, "**", "*.py"), recursive=True)
               if not os.path.relpath(p, ROOT).startswith((".venv", "data", "demo"))]
    cited = []
    for path in sources:
        text = " ".join(open(path, encoding="utf-8").read().split())  # citations may wrap over lines
        cited += re.findall(r"(docs/[\w-]+\.md), '([^']+)'", text.replace('" "', ""))
    assert cited
    for page, section in cited:
        assert section in headings(read(page)), f"{page} has no section '{section}'"
    assert not [p for p in sources if re.search(r"README[,:] ['\"]", open(p, encoding="utf-8").read())]


@pytest.mark.parametrize("page", documented_pages())
def test_no_test_count_is_written_by_hand(page):
    assert not re.search(r"\b\d+ tests\b", read(page))


def test_the_speed_page_is_generated_from_the_reports():
    assert read("docs/speed.md") == page(os.path.join(ROOT, "docs", "speed"), "speed"), \
        "docs/speed.md differs from its reports: run python tools/speed_page.py"


def test_a_new_kind_of_report_appears_on_the_speed_page(tmp_path):
    """Any section any script adds (here a training table with columns no other report has) is rendered with its
    machine and command, without a change to the page's code."""
    reports = tmp_path / "speed"
    add_section(str(reports / "gpu-h100"), "training: cityscapes_train.py at 680x680",
                [{"configuration": "fp32", "iteration ms": 80.25, "images/s": 199.4},
                 {"configuration": "bf16", "iteration ms": 41.0, "images/s": 390.2, "peak MB": 5120}],
                "python benchmark.py --train --report docs/speed/gpu-h100")
    speed_page.main(speed_page.get_args_parser().parse_args(["--reports", str(reports),
                                                             "--out", str(tmp_path / "speed.md")]))
    text = (tmp_path / "speed.md").read_text()
    assert text == page(str(reports), "speed")
    assert "- [gpu-h100](#gpu-h100)\n" in text and "\n## gpu-h100\n" in text and "Machine: " in text
    assert "### training: cityscapes_train.py at 680x680\n\n`python benchmark.py --train --report" in text
    assert "| configuration | iteration ms | images/s | peak MB |" in text
    assert "| fp32 | 80.25 | 199.40 |  |" in text and "| bf16 | 41.00 | 390.20 | 5120 |" in text


SCRATCH = "docs/runs/camvid-scratch-170"  # the real from-scratch run: its transcript, log, curve and test metrics


def test_the_readmes_from_scratch_row_is_what_the_run_measured():
    """The README's row of the from-scratch run on real CamVid: its per-class IoU are camvid_test.py's metrics file,
    its epochs and minutes those of the run's report (tools/run_report.py over the run's transcript)."""
    row = next(line for line in read("README.md").splitlines() if line.startswith("| this code, from scratch"))
    cells = [c.strip().strip("*") for c in row.strip("|").split("|")]
    metrics = json.loads(read(f"{SCRATCH}/test.json"))
    assert cells[1:] == [f"{100 * metrics['IoU'][c]:.2f}" for c in CAMVID_CLASSES] + [f"{100 * metrics['mIoU']:.2f}"]
    sections = json.loads(read("docs/speed/train-idle-2core-epyc-avx512bf16.json"))["sections"]
    run = next(r for s in sections.values() for r in s["rows"] if r["configuration"] == os.path.basename(SCRATCH))
    assert run["test mIoU %"] == pytest.approx(100 * metrics["mIoU"])
    epochs, minutes = map(int, re.search(r"(\d+) epochs, (\d+) min", cells[0]).groups())
    assert (epochs, minutes) == (run["epochs"], round(run["minutes, all epochs"]))
    assert len(read(f"{SCRATCH}/log.txt").splitlines()) == epochs + 2  # "Parameters", the header, one row an epoch
