"""benchmark.py --report and tools/bench_segment.py --report: one report of the machine and the figures."""
import json
import shlex
import sys

import benchmark
from utils import report


def test_the_report_carries_the_machine_versions_command_and_every_section(tmp_path, monkeypatch):
    path = tmp_path / "out" / "speed.json"
    for name in report.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "argv", ["benchmark.py", "--report", str(path), "--input_size", "33,47"])
    args = ["--device", "cpu", "--input_size", "33,47", "--M", "1", "--N", "1", "--classes", "4", "--mode", "exact",
            "--warmup", "0", "--runs", "2", "--report", str(path)]
    benchmark.main(benchmark.get_args_parser().parse_args(args))
    report.add_section(str(path), "end to end: tools/segment.py",
                       [{"configuration": "plain", "fps (median)": 9.5, "x plain (median)": 1.0}], "python x.py")
    saved = json.loads(path.read_text())
    machine = saved["machine"]
    assert machine["cpu"] and machine["cpu_count"] >= 1 and machine["torch_threads"] >= 1
    assert set(machine["cpu_flags"]) <= set(report.FLAGS)
    assert machine["versions"]["torch"] and "openvino" in machine["versions"]
    network = saved["sections"]["network alone: random weights at 33x47"]
    assert shlex.split(network["command"])[1:] == ["benchmark.py", "--report", str(path), "--input_size", "33,47"]
    assert [r["configuration"] for r in network["rows"]] == ["eager", "exact"]
    assert all(r["resolution"] == "33x47" and r["median ms"] > 0 and r["fps"] > 0 for r in network["rows"])
    assert list(saved["sections"]) == ["network alone: random weights at 33x47", "end to end: tools/segment.py"]
    table = (tmp_path / "out" / "speed.md").read_text()
    assert machine["cpu"] in table and "| configuration | resolution | median ms | fps |" in table
    assert "| plain | 9.50 | 1.00 |" in table and "`python x.py`" in table
    assert sorted(p.name for p in path.parent.iterdir()) == ["speed.json", "speed.md"]  # no temporary file left


def test_the_command_names_the_settings_that_change_the_figures(monkeypatch):
    for name in report.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HOME", "/somewhere")  # not a speed setting: left out
    monkeypatch.setattr(sys, "argv", ["tools/bench_segment.py", "--frames", "9"])
    assert report.command() == "OMP_NUM_THREADS=1 ONEDNN_MAX_CPU_ISA=AVX2 python tools/bench_segment.py --frames 9"


def test_the_report_is_a_json_and_a_markdown_file_whatever_suffix_is_given(tmp_path):
    rows = [{"configuration": "plain", "fps (median)": 9.5}]
    for given in ("speed", "speed.json", "speed.md"):
        report.add_section(str(tmp_path / given), "end to end", rows, "python x.py")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speed.json", "speed.md"]
    assert list(json.loads((tmp_path / "speed.json").read_text())["sections"]) == ["end to end"]
