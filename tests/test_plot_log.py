import pytest

from tools.plot_log import get_args_parser, main, read_log
from utils.errors import run_cli

LOG = ("Parameters: 496306\n"
       "Epoch\t\tLoss(Tr)\t\tmIOU (tr)\t\tmIOU (val)\t\tlr\t\n"
       "0\t\t1.2000\t\t0.1000\t\t0.0010000\n"
       "1\t\t0.9000\t\t0.2000\t\t0.0009000\n"
       "2\t\t0.8000\t\t0.2500\t\t0.3000\t\t0.0008000\n"
       "3\t\t0.7000\t\t0.3000\t\t0.0007000\n")


@pytest.mark.slow  # renders with matplotlib
def test_plot_writes_a_png_next_to_the_log(tmp_path, capsys):
    log = tmp_path / "log.txt"
    log.write_text(LOG)
    out = main(get_args_parser().parse_args([str(log)]))
    assert out == tmp_path / "log.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    assert read_log(log)[2] == (0.8, 0.25, 0.3) and read_log(log)[3] == (0.7, 0.3, None)


def test_out_flag(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text(LOG)
    main(get_args_parser().parse_args([str(log), "--out", str(tmp_path / "plots" / "curves.png")]))
    assert (tmp_path / "plots" / "curves.png").stat().st_size > 5000


@pytest.mark.parametrize("text, says", [
    (None, "not found"),
    ("", "is empty"),
    ("Parameters: 5\n", "no header line"),
    ("Parameters: 5\nEpoch\tLoss\n", "no epoch rows yet"),
    (LOG + "4\t\tnan?\t\tx\t\t0.1\n", "line 7 of"),
    (LOG + "5\t\t0.5\n", "line 7 of"),
])
def test_bad_log_is_one_sentence(tmp_path, capsys, text, says):
    log = tmp_path / "log.txt"
    if text is not None:
        log.write_text(text)
    with pytest.raises(SystemExit) as e:
        run_cli(main, get_args_parser(), [str(log)])
    assert e.value.code != 0
    err = capsys.readouterr().err
    assert says in err and str(log) in err and "Traceback" not in err
    assert not (tmp_path / "log.png").exists()
