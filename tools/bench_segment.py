"""Frames/second of tools/segment.py on a video: default, --amp bf16, eager, and the exported files (ONNX,
OpenVINO fp32 and int8) given as --resume. The video is a synthetic 640x360 street scene panning sideways, or,
with --frames_from DIR, the images of a folder in name order: the real CamVid test split is two drives filmed
frame after frame (0001TP_008550, 0001TP_008580, ...: every 30th frame of a 30 fps camera), 360x480.

Each configuration runs tools/segment.py as its own process (the allocator setting of the fast path
is process-wide), in rounds that interleave the configurations; the table gives the median fps of the
frame loop (decode, network, overlay, mp4 encoding) that segment.py prints.

    python tools/bench_segment.py [--frames 60] [--rounds 2] [--configs plain,default,bf16,openvino_int8]
    python tools/bench_segment.py --frames_from ../shared/camvid/test --frames 60 \
        --resume checkpoint/camvid/CGNet_M3N21bs8gpu1_ontrainval/model_camvid_train_on_trainvalset.pth
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dataset.specs import CITYSCAPES  # noqa: E402
from engine.checkpoint import self_contained  # noqa: E402
from model import build_model  # noqa: E402
from dataset.synthetic import street_scene  # noqa: E402
from utils.args import positive_int  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.files import IMAGE_EXTENSIONS  # noqa: E402
from utils.report import add_section  # noqa: E402

# configuration: (the file given as --resume, extra flags)
CONFIGS = {"plain": ("pth", ["--plain", "true"]), "default": ("pth", []), "bf16": ("pth", ["--amp", "bf16"]),
           "compile": ("pth", ["--compile", "true"]), "onnx": ("onnx", []), "openvino": ("xml", []),
           "openvino_bf16": ("xml", ["--amp", "bf16"]), "openvino_int8": ("int8", []),
           "openvino_int8_bf16": ("int8", ["--amp", "bf16"])}
CALIBRATION_FRAMES = 20


def make_video(path, frames, w=640, h=360):
    """A street scene panning sideways: every frame differs, as in a drive."""
    scene = np.ascontiguousarray(street_scene(np.random.default_rng(0), h, 2 * w)[0][:, :, ::-1])
    video = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    for i in range(frames):
        x = i * w // max(frames, 1)
        video.write(np.ascontiguousarray(scene[:, x:x + w]))
    video.release()


def video_from_frames(path, folder, frames):
    """The first `frames` images of `folder` in name order, as an mp4 at their own size (they must share it)."""
    if not os.path.isdir(folder):
        raise UserError(f"--frames_from {folder} is not a folder; give a folder of consecutive frames.")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))[:frames]
    if not names:
        raise UserError(f"--frames_from {folder} holds no images; give a folder of consecutive frames.")
    video, size = None, None
    for name in names:
        frame = cv2.imread(os.path.join(folder, name), cv2.IMREAD_COLOR)
        if frame is None:
            raise UserError(f"--frames_from {folder}: {name} cannot be read as an image; remove it or give another "
                            f"folder.")
        if video is None:
            size = frame.shape[:2]
            video = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (size[1], size[0]))
        elif frame.shape[:2] != size:
            raise UserError(f"--frames_from {folder}: {name} is {frame.shape[1]}x{frame.shape[0]} but {names[0]} "
                            f"{size[1]}x{size[0]}; give a folder of the frames of one video.")
        video.write(frame)
    video.release()
    return f"{len(names)} frames of {folder} ({size[1]}x{size[0]})"


def export(kind, ckpt, video, tmp):
    """The file of `kind` for the checkpoint: itself, or exported by the project's tools (int8 calibrated on
    frames of the video; random weights: the agreement check is not the point, speed is)."""
    if kind == "pth":
        return ckpt
    out = os.path.join(tmp, {"onnx": "cgnet.onnx", "xml": "cgnet.xml", "int8": "cgnet_int8.xml"}[kind])
    tool = "export_onnx.py" if kind == "onnx" else "export_openvino.py"
    extra = ["--min_agreement", "0"]
    if kind == "int8":
        frames = os.path.join(tmp, "calibration")
        os.makedirs(frames, exist_ok=True)
        capture = cv2.VideoCapture(video)
        for i in range(CALIBRATION_FRAMES):
            ok, frame = capture.read()
            if ok:
                cv2.imwrite(os.path.join(frames, f"{i:03d}.png"), frame)
        capture.release()
        extra += ["--int8", "--calibration", frames]
    run = subprocess.run([sys.executable, os.path.join(ROOT, "tools", tool), "--resume", ckpt, "--out", out, *extra],
                         capture_output=True, text=True, cwd=ROOT)
    if run.returncode:
        sys.exit(f"{tool} failed:\n{run.stdout}{run.stderr}")
    return out


def main(a):
    rows = {name: [] for name in a.configs.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        video = os.path.join(tmp, "drive.mp4")
        if a.frames_from:
            what = video_from_frames(video, a.frames_from, a.frames)
        else:
            make_video(video, a.frames)
            what = f"a synthetic 640x360 video of {a.frames} frames"
        ckpt = a.resume or os.path.join(tmp, "cgnet.pth")  # speed does not depend on what the weights are
        if not a.resume:
            torch.save(self_contained(build_model("CGNet", 19).state_dict(),
                                      {"name": "CGNet", "classes": 19, "M": 3, "N": 21}, "cityscapes",
                                      CITYSCAPES.release_mean), ckpt)
        files = {kind: export(kind, ckpt, video, tmp) for kind in {CONFIGS[name][0] for name in rows}}
        for _ in range(a.rounds):
            for name in rows:
                kind, flags = CONFIGS[name]
                out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "segment.py"), "--resume",
                                      files[kind], video, "--out", os.path.join(tmp, name), "--cuda", str(a.cuda),
                                      *flags], capture_output=True, text=True, cwd=ROOT)
                found = re.search(r"at ([\d.]+) frames/s", out.stdout)
                if out.returncode or not found:
                    sys.exit(f"segment.py {name} failed:\n{out.stdout}{out.stderr}")
                rows[name].append(float(found.group(1)))
    base = statistics.median(rows["plain"]) if "plain" in rows else None
    print(f"tools/segment.py on {what}, {a.rounds} rounds, {'--resume ' + a.resume if a.resume else 'random weights'}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'configuration':<20}{'fps':>8}{'vs plain':>10}")
    for name, fps in rows.items():
        med = statistics.median(fps)
        print(f"{name:<20}{med:>8.2f}{(f'{med / base:.2f}x' if base else ''):>10}")
    if a.report:
        add_section(a.report, "end to end: tools/segment.py", [
            {"configuration": name, "fps (median)": statistics.median(fps), "fps (best)": max(fps),
             "x plain (median)": statistics.median(fps) / base if base else None} for name, fps in rows.items()],
            note=f"{what}, {a.rounds} interleaved rounds, {'--resume ' + a.resume if a.resume else 'random weights'}")
    return rows


def get_args_parser():
    p = argparse.ArgumentParser(description="Time tools/segment.py on a video: synthetic, or made of real frames.")
    p.add_argument("--frames", type=positive_int, default=60, help="frames of the video")
    p.add_argument("--frames_from", default=None, metavar="DIR",
                   help="make the video of the first --frames images of DIR in name order (consecutive frames, e.g. "
                        "../shared/camvid/test) instead of a synthetic street scene")
    p.add_argument("--resume", default=None,
                   help="checkpoint to time (e.g. the authors' CamVid model); default: CGNet M3N21 with random weights")
    p.add_argument("--rounds", type=positive_int, default=2,
                   help="runs of every configuration, interleaved; the median of each is reported")
    p.add_argument("--configs", default="plain,default,bf16", help=f"comma-separated, from {', '.join(CONFIGS)}")
    p.add_argument("--cuda", default="true", help="passed to tools/segment.py: use a GPU if one is visible")
    p.add_argument("--report", default="", metavar="FILE",
                   help="add the figures to this report (FILE.json, FILE.md), beside benchmark.py --report's")
    return p


if __name__ == "__main__":
    run_cli(main, get_args_parser())
