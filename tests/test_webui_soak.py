"""tools/soak_webui.py, small: the page answers every visitor (photos, a video, bad uploads each in one sentence),
its memory stays bounded as new sessions arrive, and SIGTERM leaves no temporary file."""
import pytest

from conftest import free_port
from tools import soak_webui
from utils.errors import run_cli

pytestmark = pytest.mark.slow  # serves the page in a process of its own and sends it a dozen sessions


def test_a_small_soak_answers_everyone_within_bounded_memory(untrained):
    figures = run_cli(soak_webui.main, soak_webui.get_args_parser(), [
        "--resume", untrained()["ckpt"], "--sessions", "8", "--megapixels", "4", "--videos", "1", "--bad", "3",
        "--warmup", "3", "--port", str(free_port()), "--webui_args", "--cuda false --cache_mb 64"])
    assert figures["answered"] == 12 and figures["failed"] == 0, figures["failures"]
    assert figures["rss_mb_growth"] < 200, figures  # a session keeps no image: 5 more photos of 4 MP, bounded
    assert figures["temp_mb_after_sigterm"] == 0 and figures["sigterm_exit"] == 0
