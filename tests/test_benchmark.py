import json
import statistics

import pytest
import torch
import torch.nn as nn

import benchmark
from utils.errors import UserError

MODE_FIELDS = {"mode", "features", "exact", "first_call_s", "peak_memory_mb", "times_s", "median_ms",
               "p10_ms", "p90_ms", "min_ms", "max_ms", "fps", "speedup_vs_eager", "speedup_vs_eager_min",
               "argmax_agreement", "max_abs_diff", "max_rel_diff"}
SUMMARY_FIELDS = {"model", "M", "N", "classes", "input_size", "input", "weights", "parameters",
                  "gflops_paper_size", "paper_size", "gflops_input_size", "flops_counting", "warmup", "runs", "clock",
                  "memory_kind", "argmax_agreement_bf16_rounded_input"}
MACHINE_FIELDS = {"cpu", "cpu_count", "torch", "threads", "device", "device_name", "keep_cpu_memory"}


def run(argv):
    parser = benchmark.get_args_parser()
    return benchmark.main(parser.parse_args(argv))


@pytest.mark.slow  # measures bf16, emulated on CPUs without native bf16
def test_json_has_every_field(tmp_path, capsys):
    out = tmp_path / "sub" / "bench.json"
    run(["--device", "cpu", "--input_size", "33,47", "--M", "1", "--N", "1", "--classes", "4",
         "--mode", "exact", "bf16", "--warmup", "0", "--runs", "2", "--json", str(out)])
    report = json.loads(out.read_text())
    assert SUMMARY_FIELDS <= set(report["summary"])
    assert MACHINE_FIELDS <= set(report["machine"])
    assert [m["mode"] for m in report["modes"]] == ["eager", "exact", "bf16"]
    for row in report["modes"]:
        assert MODE_FIELDS <= set(row), MODE_FIELDS - set(row)
        assert len(row["times_s"]) == 2 and row["median_ms"] > 0
    exact = report["modes"][1]
    assert exact["argmax_agreement"] > 0.999 and exact["max_rel_diff"] < 1e-4
    assert exact["exact"] == (exact["argmax_agreement"] == 1.0)  # what was measured, not what the mode promises
    assert report["summary"]["input_size"] == [1, 3, 33, 47]
    printed = capsys.readouterr().out
    assert "synchronize" not in printed and "speed-up" in printed  # the CUDA note on CUDA runs only


def test_cpu_clock(tmp_path):
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        run(["--device", "cpu", "--input_size", "16,24", "--M", "1", "--N", "1", "--mode", "channels_last",
             "--warmup", "0", "--runs", "1", "--clock", "cpu", "--threads", "1", "--json", str(out)])
    finally:
        torch.set_num_threads(threads)
    report = json.loads(out.read_text())
    assert report["summary"]["clock"] == "cpu" and report["machine"]["threads"] == 1
    assert all(row["fps"] is None and row["median_ms"] > 0 for row in report["modes"])


def test_real_image_input(tmp_path):
    import cv2
    import numpy as np
    path = tmp_path / "street.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    results = run(["--device", "cpu", "--input_size", "24,40", "--M", "1", "--N", "1", "--mode", "fold_bn",
                   "--warmup", "0", "--runs", "1", "--image", str(path)])
    assert results["fold_bn"]["argmax_agreement"] > 0.999
    with pytest.raises(UserError, match="--image"):
        run(["--device", "cpu", "--image", str(tmp_path / "missing.png")])


def test_all_leaves_out_fp16_on_cpu_and_runs_the_runtimes_whose_packages_import(monkeypatch):
    args = benchmark.get_args_parser().parse_args(["--all", "--device", "cpu"])
    modes = benchmark.select_modes(args, torch.device("cpu"))
    assert modes[0] == "eager" and "fp16" not in modes and "compile" in modes
    assert set(benchmark.RUNTIMES) <= set(modes)  # onnx, onnxruntime, openvino and nncf are in requirements-dev
    assert not set(benchmark.RUNTIMES) & set(benchmark.select_modes(args, torch.device("cuda")))  # CPU runtimes
    monkeypatch.setattr(benchmark.export, "available", lambda fmt: not fmt.startswith("openvino"))
    assert [m for m in benchmark.select_modes(args, torch.device("cpu")) if m in benchmark.RUNTIMES] == \
        ["onnxruntime", "onnxruntime_int8"]


def test_flops_count_two_per_multiply_add():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert benchmark.count_gflops(conv, 4, 5) == pytest.approx(2 * 8 * 3 * 9 * 20 / 1e9)


@pytest.mark.slow  # counts FLOPs of the full network at 360x640
def test_cgnet_flops_at_the_paper_size():
    from model import build_model
    # the paper's 6.0 G at 3x640x360 is this count (2 FLOPs per multiply-add)
    assert benchmark.count_gflops(build_model("CGNet", 19), 360, 640) == pytest.approx(5.94, abs=0.01)


@pytest.mark.parametrize("argv", [["--input_size", "1024"], ["--input_size", "0,5"], ["--mode", "warp"],
                                  ["--runs", "0"], ["--warmup", "-1"], ["--all", "--mode", "exact"],
                                  ["--device", "tpu"]])
def test_nonsense_arguments_are_refused(argv):
    with pytest.raises(SystemExit):
        benchmark.get_args_parser().parse_args(argv)


def test_unwritable_json_is_refused_before_measuring(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(benchmark, "TorchBackend", None)  # measuring would fail differently
    with pytest.raises(UserError, match="--json"):
        run(["--device", "cpu", "--json", str(blocker / "x.json")])


def test_a_mode_that_fails_is_an_error_unless_unavailable_modes_are_skipped(tmp_path, monkeypatch, capsys):
    """A regression in one mode is not a quiet 'failed:' row with exit status 0 (issue 33, point 6)."""
    build = benchmark.Modes.__call__

    def failing(self, mode):
        if mode == "exact":
            raise RuntimeError("no compiler")
        return build(self, mode)
    monkeypatch.setattr(benchmark.Modes, "__call__", failing)
    out = tmp_path / "bench.json"
    argv = ["--device", "cpu", "--input_size", "16,24", "--M", "1", "--N", "1", "--mode", "exact", "channels_last",
            "--warmup", "0", "--runs", "1", "--json", str(out)]
    with pytest.raises(UserError, match=r"^1 mode failed \(exact: see the table\); .* --skip_unavailable"):
        run(argv)
    assert "failed: RuntimeError: no compiler" in capsys.readouterr().out and not out.exists()
    results = run(argv + ["--skip_unavailable"])
    assert results["exact"]["error"] == "RuntimeError: no compiler" and "error" not in results["channels_last"]
    assert [row["mode"] for row in json.loads(out.read_text())["modes"]] == ["eager", "exact", "channels_last"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_a_user_error():
    with pytest.raises(UserError, match="--device cpu"):
        run(["--device", "cuda", "--input_size", "16,16"])


@pytest.mark.slow
def test_compare_reports_every_model(tmp_path, capsys):
    out = tmp_path / "compare.json"
    run(["--device", "cpu", "--compare", "--input_size", "32,48", "--warmup", "0", "--runs", "1",
         "--json", str(out)])
    report = json.loads(out.read_text())
    from model import MODELS
    assert [r["model"] for r in report["models"]] == list(MODELS)
    fields = {"parameters", "gflops_paper_size", "median_ms", "p10_ms", "p90_ms", "fps", "peak_memory_mb"}
    for row in report["models"]:
        assert fields <= set(row) and row["median_ms"] > 0
    cgnet = report["models"][0]
    assert cgnet["parameters"] == 496306 and 5.9 < cgnet["gflops_paper_size"] < 6.0
    assert "GFLOPs 640x360" in capsys.readouterr().out


def test_scripts_default_row_is_measured_last_and_exact(tmp_path, monkeypatch):
    events, time_rounds = [], benchmark.time_rounds
    monkeypatch.setattr(benchmark, "keep_cpu_memory", lambda: events.append("keep_cpu_memory") or True)
    monkeypatch.setattr(benchmark, "time_rounds",
                        lambda calls, *a: events.append(sorted(calls)) or time_rounds(calls, *a))
    out = tmp_path / "b.json"
    run(["--device", "cpu", "--input_size", "32,48", "--M", "1", "--N", "1", "--mode", "exact",
         "--scripts_default", "--warmup", "0", "--runs", "2", "--json", str(out)])
    modes = json.loads(out.read_text())["modes"]
    assert [m["mode"] for m in modes] == ["eager", "exact", benchmark.SCRIPTS_DEFAULT]
    # last: glibc is told to keep memory only after the other modes' rounds, and its own rounds follow
    assert events == [["eager", "exact"], "keep_cpu_memory", [benchmark.SCRIPTS_DEFAULT]]
    row, eager = modes[-1], modes[0]
    assert row["exact"] is True and row["argmax_agreement"] == 1.0 and row["max_rel_diff"] < 1e-4
    # its speed-up is what the name says: the median over rounds of eager's time / its time
    assert len(row["times_s"]) == 2 and row["speedup_vs_eager"] == pytest.approx(
        statistics.median(b / m for b, m in zip(eager["times_s"], row["times_s"])))


def test_every_help_entry_is_described():
    for action in benchmark.get_args_parser()._actions:
        assert action.help, action.option_strings
