"""Progress bars (tqdm): off a terminal, about ten lines per loop, with or without a known total."""
import io

from utils.progress import bar


def test_off_a_terminal_a_long_loop_prints_about_ten_lines():
    stream = io.StringIO()
    with bar(1000, "epoch 1/2", stream=stream) as progress:
        for _ in range(1000):
            progress.update()
    lines = stream.getvalue().splitlines()
    assert 5 <= len(lines) <= 12 and "\r" not in stream.getvalue()
    assert lines[-1].startswith("epoch 1/2: 100%") and "1000/1000" in lines[-1]


def test_an_unknown_total_counts_without_a_total():
    stream = io.StringIO()
    with bar(None, "stream", "frames", stream=stream) as progress:
        for _ in range(50):
            progress.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) <= 3 and "50frames" in lines[-1].replace(" ", "") and "/" not in lines[-1].split("[")[0]
