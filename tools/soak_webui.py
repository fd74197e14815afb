"""A soak test of tools/webui.py, kept as a script (not in CI): it serves the page in a process of its own on the
loopback (127.0.0.1 only) and sends it N sessions through gradio_client, each a new visitor with one upload:
photos (--megapixels), short videos, and bad uploads (a text file, a PNG cut short, an AVI cut short). At most
--concurrency are in flight. It prints the answers (a result, or one sentence for a bad upload) and failures,
the latency (p50/p95), the server's resident memory (after the first --warmup sessions, after all, and its peak),
and the bytes of its temporary folder before, after, once the sessions expired, and after SIGTERM.

    python tools/soak_webui.py --resume model.pth --sessions 50 --megapixels 12 --videos 4 --bad 6
    python tools/soak_webui.py --resume model.pth --sessions 50 --report docs/soak/soak   # FILE.md and FILE.json

The memory criterion of the page: the resident memory after all sessions stays within 300 MB of that after the
first 5 (a session keeps no image; the cache is bounded by --cache_mb).
"""
import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from dataset.synthetic import street_scene  # noqa: E402
from utils.args import non_negative_int, positive_float, positive_int  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.log import log  # noqa: E402
from utils.report import add_section  # noqa: E402

GENERIC = "has raised an exception"  # Gradio's words for an error the page did not put in a sentence


def make_inputs(folder, megapixels, seed=0):
    """A photo of `megapixels` (a synthetic street scene, enlarged), a 3 s video, and three bad uploads."""
    rng = np.random.default_rng(seed)
    rgb, _ = street_scene(rng, 512, 1024)
    h = int(round((megapixels * 1e6 / 4 * 3) ** 0.5))  # 4:3, as a phone's photo
    photo = os.path.join(folder, "photo.jpg")
    cv2.imwrite(photo, cv2.resize(rgb[:, :, ::-1], (h * 4 // 3, h), interpolation=cv2.INTER_CUBIC),
                [cv2.IMWRITE_JPEG_QUALITY, 90])
    video = os.path.join(folder, "clip.mp4")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 320))
    frame = cv2.resize(rgb[:, :, ::-1], (640, 320))
    for i in range(30):
        writer.write(np.roll(frame, 4 * i, axis=1))
    writer.release()
    text = os.path.join(folder, "notes.txt")
    Path(text).write_text("not an image")
    cut_png = os.path.join(folder, "cut.png")
    cv2.imwrite(cut_png, frame)
    data = Path(cut_png).read_bytes()
    Path(cut_png).write_bytes(data[:len(data) // 2])
    cut_avi = os.path.join(folder, "cut.avi")
    writer = cv2.VideoWriter(cut_avi, cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 160))
    for i in range(30):
        writer.write(cv2.resize(np.roll(frame, 4 * i, axis=1), (320, 160)))
    writer.release()
    data = Path(cut_avi).read_bytes()
    Path(cut_avi).write_bytes(data[:len(data) // 2])
    # (file, endpoint, the answer expected): one sentence, or the frames read with a word that some are missing
    return photo, video, [(text, "/segment", "refusal"), (cut_png, "/segment", "refusal"),
                          (cut_avi, "/segment_video", "warning")]


def rss_mb(pid, field="VmRSS"):
    """The process's resident memory (VmRSS) or its peak (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tree_bytes(folder):
    return sum(os.path.getsize(os.path.join(r, n)) for r, _, names in os.walk(folder) for n in names
               if os.path.isfile(os.path.join(r, n)))


def serve(args, tmp):
    """tools/webui.py in its own process, its temporary folder under `tmp`; (process, url)."""
    port = args.port
    command = [sys.executable, str(ROOT / "tools" / "webui.py"), "--resume", args.resume, "--host", "127.0.0.1",
               "--port", str(port), *shlex.split(args.webui_args)]
    server = subprocess.Popen(command, env=dict(os.environ, TMPDIR=tmp), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise UserError(f"tools/webui.py ended before serving ({server.stdout.read().strip()[-300:]}); "
                            f"check --resume and --port.")
        try:
            urllib.request.urlopen(url, timeout=1)
            return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise UserError(f"tools/webui.py did not serve {url} within 180 s; check --port.")


def visit(url, path, api, expect):
    """One new visitor's upload: (answered as expected, seconds, what happened in a few words)."""
    start = time.perf_counter()
    client = Client(url, verbose=False, download_files=False)  # a new session each time
    try:
        out = client.predict(handle_file(path), *([0.5] if api == "/segment" else []), api_name=api)
        if expect == "warning":
            summary = out[2]
            return "cut short" in summary, time.perf_counter() - start, summary
        return expect == "result", time.perf_counter() - start, "result" if expect == "result" else \
            f"{os.path.basename(path)} was accepted"
    except AppError as e:
        sentence = str(e)
        ok = expect == "refusal" and GENERIC not in sentence and sentence.endswith(".")
        return ok, time.perf_counter() - start, sentence
    except Exception as e:  # the soak's job is to count every kind of failure, whatever raised it
        return False, time.perf_counter() - start, f"{type(e).__name__}: {e}"
    finally:
        client.close()


def percentile(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


def main(args):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped itself: the server is stopped too (finally)
    with tempfile.TemporaryDirectory(prefix="cgnet-soak-") as tmp:
        inputs = os.path.join(tmp, "inputs")
        os.makedirs(inputs)
        photo, video, bad = make_inputs(inputs, args.megapixels)
        server_tmp = os.path.join(tmp, "server")
        os.makedirs(server_tmp)
        server, url = serve(args, server_tmp)
        try:
            figures = soak(args, server, url, server_tmp, photo, video, bad)
        finally:
            server.send_signal(signal.SIGTERM)  # as systemd and Docker stop it
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        figures["temp_mb_after_sigterm"] = tree_bytes(server_tmp) / 2 ** 20
        figures["sigterm_exit"] = server.returncode
    print_figures(args, figures)
    if args.report:
        row = {"configuration": f"{args.sessions} photos of {args.megapixels:g} MP, {args.videos} videos, {args.bad} "
                                f"bad uploads, {args.concurrency} at a time",
               **{k: v for k, v in figures.items() if not isinstance(v, list)}}
        add_section(args.report, "soak_webui", [row], note="the machine was shared with other work")
    return figures


def soak(args, server, url, server_tmp, photo, video, bad):
    jobs = [(photo, "/segment", "result")] * args.sessions + [(video, "/segment_video", "result")] * args.videos
    jobs += [bad[i % len(bad)] for i in range(args.bad)]
    order = np.random.default_rng(1).permutation(len(jobs))  # mixed, the photos' warm-up first
    photos_first = [j for j in range(args.warmup)] + [int(j) for j in order if j >= args.warmup]
    jobs = [jobs[j] for j in photos_first]
    figures = {"machine_load": "shared with other work", "sessions": len(jobs), "photo_megapixels": args.megapixels,
               "temp_mb_before": tree_bytes(server_tmp) / 2 ** 20}
    results, rss = [], []
    with ThreadPoolExecutor(args.concurrency) as pool:
        warm = list(pool.map(lambda job: visit(url, job[0], job[1], job[2]), jobs[:args.warmup]))
        results += warm
        figures["rss_mb_after_warmup"] = rss_mb(server.pid)
        futures = [pool.submit(visit, url, *job) for job in jobs[args.warmup:]]
        for f in futures:
            results.append(f.result())
            rss.append(rss_mb(server.pid))
    figures["rss_mb_after_all"] = rss_mb(server.pid)
    figures["rss_mb_peak"] = rss_mb(server.pid, "VmHWM")
    figures["rss_mb_growth"] = figures["rss_mb_after_all"] - figures["rss_mb_after_warmup"]
    figures["temp_mb_after"] = tree_bytes(server_tmp) / 2 ** 20
    latencies = [s for ok, s, _ in results if ok]
    figures.update(answered=sum(ok for ok, _, _ in results), failed=sum(not ok for ok, _, _ in results),
                   p50_s=percentile(latencies, 50), p95_s=percentile(latencies, 95))
    figures["failures"] = sorted({what for ok, _, what in results if not ok})[:5]
    figures["said"] = sorted({what for ok, _, what in results if ok and what != "result"})
    if args.wait_expiry:
        time.sleep(args.wait_expiry)
        figures["temp_mb_after_expiry"] = tree_bytes(server_tmp) / 2 ** 20
        figures["rss_mb_after_expiry"] = rss_mb(server.pid)
    return figures


def print_figures(args, f):
    log(f"sessions: {f['sessions']} ({args.sessions} photos of {args.megapixels:g} MP, {args.videos} videos, "
        f"{args.bad} bad uploads), {args.concurrency} at a time")
    log(f"answered: {f['answered']}   failed: {f['failed']}" + "".join(f"\n  failure: {w}" for w in f["failures"]))
    for sentence in f["said"]:
        log(f"  said: {sentence}")
    log(f"latency of the answered: p50 {f['p50_s']:.2f} s, p95 {f['p95_s']:.2f} s (a loaded machine)")
    log(f"server RSS: {f['rss_mb_after_warmup']:.0f} MB after the first {args.warmup} sessions, "
        f"{f['rss_mb_after_all']:.0f} MB after all ({f['rss_mb_growth']:+.0f} MB), peak {f['rss_mb_peak']:.0f} MB")
    log(f"temporary folder: {f['temp_mb_before']:.1f} MB before, {f['temp_mb_after']:.1f} MB after"
        + (f", {f['temp_mb_after_expiry']:.1f} MB once the sessions expired (RSS then "
           f"{f['rss_mb_after_expiry']:.0f} MB)" if "temp_mb_after_expiry" in f else "")
        + f", {f['temp_mb_after_sigterm']:.1f} MB after SIGTERM (exit {f['sigterm_exit']})")


def get_args_parser():
    p = argparse.ArgumentParser(description="Soak tools/webui.py on the loopback with N sessions.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--resume", required=True, help="the checkpoint the page serves")
    p.add_argument("--sessions", type=positive_int, default=50, help="visitors uploading a photo")
    p.add_argument("--megapixels", type=positive_float, default=12.0, help="size of the photo")
    p.add_argument("--videos", type=non_negative_int, default=4, help="visitors uploading a 3 s video")
    p.add_argument("--bad", type=non_negative_int, default=6, help="visitors uploading a bad file")
    p.add_argument("--warmup", type=positive_int, default=5, help="photo sessions before the first memory reading")
    p.add_argument("--concurrency", type=positive_int, default=2, help="sessions in flight at once")
    p.add_argument("--port", type=positive_int, default=7861, help="loopback port for the page")
    p.add_argument("--wait_expiry", type=non_negative_int, default=0,
                   help="seconds to wait after the sessions before the last temp-folder reading (pass "
                        "--webui_args '--session_minutes 1' and 70 to see them expire)")
    p.add_argument("--webui_args", default="", help="more flags for tools/webui.py, in one quoted string")
    p.add_argument("--report", default=None, help="also write FILE.md and FILE.json with the figures and machine")
    return p


if __name__ == "__main__":
    run_cli(main, get_args_parser())
