"""benchmark.py --mode onnxruntime: ONNX Runtime timed beside the torch modes, on the same input."""
import pytest
import benchmark

pytestmark = pytest.mark.slow  # exports the network to ONNX, as heavy as torch.compile


def test_onnxruntime_mode_is_timed_and_agrees_with_eager(capsys):
    results = benchmark.main(benchmark.get_args_parser().parse_args([
        "--device", "cpu", "--input_size", "40,56", "--M", "1", "--N", "1", "--mode", "onnxruntime",
        "--warmup", "0", "--runs", "2"]))
    row = results["onnxruntime"]
    assert "error" not in row and len(row["times_s"]) == 2 and row["median_ms"] > 0
    assert row["argmax_agreement"] > 0.999 and row["max_rel_diff"] < 1e-4
    assert "onnxruntime's peak MB reads 0: ONNX Runtime allocates" in capsys.readouterr().out
