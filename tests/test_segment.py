"""tools/segment.py: a trained checkpoint alone segments a user's images, folders and videos."""
import glob
import os
import shutil

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import cityscapes_eval
import cityscapes_train
from model import build_model
from tools import segment
from dataset.synthetic import make_cityscapes
from utils.checkpoint import save_checkpoint
from utils.errors import run_cli

pytestmark = pytest.mark.slow  # its fixture trains a network through the script


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained one epoch on synthetic Cityscapes; its images kept aside, then the data and the
    inform file deleted: what a user has who got only the checkpoint."""
    root = tmp_path_factory.mktemp("segment")
    cs = str(root / "cs")
    make_cityscapes(cs, n_train=4, n_val=3, n_test=1, size=(48, 96))
    cityscapes_train.main(cityscapes_train.get_args_parser().parse_args([
        "--data_dir", cs, "--train_data_list", f"{cs}/cityscapes_train_list.txt", "--val_data_list", "",
        "--inform_data_file", str(root / "inform.pkl"), "--savedir", str(root / "ckpt") + "/",
        "--input_size", "32,32", "--batch_size", "2", "--max_epochs", "1", "--seed", "0",
        "--M", "1", "--N", "2", "--num_workers", "0", "--cuda", "false"]))
    photos = sorted(glob.glob(f"{cs}/leftImg8bit/val/*/*.png"))
    kept = root / "kept"
    kept.mkdir()
    for p in photos:
        shutil.copy(p, kept)
    shutil.rmtree(cs)
    os.remove(root / "inform.pkl")
    ckpt = str(root / "ckpt" / "cityscapes" / "CGNet_M1N2bs2cpu_ontrainval" / "model_1.pth")
    return root, ckpt, sorted(str(p) for p in kept.iterdir())


def user_folder(tmp_path, photos):
    """A JPEG, a name with a space, two sizes, a subfolder, and a file that is not an image."""
    folder = tmp_path / "my photos"
    (folder / "sub").mkdir(parents=True)
    a, b, c = (cv2.imread(p) for p in photos)
    cv2.imwrite(str(folder / "street.jpg"), a)
    cv2.imwrite(str(folder / "my street.png"), cv2.resize(b, (72, 40)))
    cv2.imwrite(str(folder / "sub" / "corner.bmp"), c)
    (folder / "notes.txt").write_text("not an image")
    return folder, {"street": folder / "street.jpg", "my street": folder / "my street.png",
                    "sub/corner": folder / "sub" / "corner.bmp"}


def run(argv):
    return run_cli(segment.main, segment.get_args_parser(), argv)


def test_a_folder_is_segmented_from_the_checkpoint_alone_as_cityscapes_eval_does(trained, tmp_path, capsys):
    root, ckpt, photos = trained
    folder, images = user_folder(tmp_path, photos)
    out = tmp_path / "out"
    summary = run(["--resume", ckpt, str(folder), "--out", str(out), "--cuda", "false"])
    assert summary["images"] == 3 and summary["skipped"] == [str(folder / "notes.txt")]
    assert "skipped" in capsys.readouterr().out
    written = sorted(os.path.relpath(p, out) for p in glob.glob(f"{out}/**/*.png", recursive=True))
    assert written == sorted(f"{s}{suffix}.png" for s in images for suffix in ("", "_color", "_overlay"))
    assert np.asarray(Image.open(out / "my street.png")).shape == (40, 72)
    assert Image.open(out / "street_color.png").mode == "P"
    assert np.asarray(Image.open(out / "sub" / "corner_overlay.png")).shape == (48, 96, 3)

    # cityscapes_eval.py on the same pictures (as PNGs in a list, with dummy labels), no inform file either
    data = tmp_path / "data"
    data.mkdir()
    lines = []
    for stem, path in images.items():
        name = stem.replace("/", "_").replace(" ", "_")
        image = cv2.imread(str(path))
        cv2.imwrite(str(data / f"{name}.png"), image)
        cv2.imwrite(str(data / f"{name}_label.png"), np.zeros(image.shape[:2], np.uint8))
        lines.append(f"{name}.png {name}_label.png")
    (data / "list.txt").write_text("\n".join(lines) + "\n")
    cityscapes_eval.main(cityscapes_eval.get_args_parser().parse_args([
        "--data_dir", str(data), "--val_data_list", str(data / "list.txt"), "--resume", ckpt,
        "--inform_data_file", str(tmp_path / "none.pkl"), "--save_seg_dir", str(tmp_path / "eval"),
        "--num_workers", "0", "--cuda", "false"]))
    assert not (tmp_path / "none.pkl").exists()
    for stem in images:
        name = stem.replace("/", "_").replace(" ", "_")
        ours = np.asarray(Image.open(out / f"{stem}.png"))
        theirs = np.asarray(Image.open(tmp_path / "eval" / f"{name}.png"))
        assert np.array_equal(ours, theirs), stem


def test_a_video_round_trips_with_its_frame_count_size_and_rate(trained, tmp_path):
    _, ckpt, photos = trained
    frame = cv2.imread(photos[0])
    video = tmp_path / "drive.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (96, 48))
    for i in range(7):
        writer.write(np.roll(frame, 4 * i, axis=1))
    writer.release()
    summary = run(["--resume", ckpt, str(video), "--out", str(tmp_path / "out"), "--cuda", "false"])
    assert summary["videos"][0]["frames"] == 7 and summary["videos"][0]["fps"] > 0
    assert os.listdir(tmp_path / "out") == ["drive_overlay.mp4"]  # no temporary file left
    capture = cv2.VideoCapture(str(tmp_path / "out" / "drive_overlay.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 7
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (96, 48)
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)


def test_an_original_release_checkpoint_uses_the_published_cityscapes_mean(trained, tmp_path, capsys):
    _, ckpt, photos = trained
    original = tmp_path / "model_cityscapes_train_on_trainset.pth"
    state = torch.load(ckpt, weights_only=True)
    torch.save({"epoch": 1, "model": {"module." + k: v for k, v in state["model"].items()}}, original,
               _use_new_zipfile_serialization=False)
    run(["--resume", str(original), photos[0], "--out", str(tmp_path / "out"), "--cuda", "false"])
    assert "original release's Cityscapes mean" in capsys.readouterr().out
    assert len(os.listdir(tmp_path / "out")) == 3


def fails(argv, capsys):
    with pytest.raises(SystemExit) as e:
        run(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and err.endswith(".") and "Traceback" not in err
    return err


def test_bad_inputs_are_one_sentence_and_write_nothing(trained, tmp_path, capsys):
    root, ckpt, photos = trained
    out = tmp_path / "out"
    cpu = ["--cuda", "false"]
    assert "does not exist" in fails(["--resume", ckpt, str(tmp_path / "nope.jpg"), "--out", str(out), *cpu], capsys)
    assert "matches no file" in fails(["--resume", ckpt, str(tmp_path / "*.jpg"), "--out", str(out), *cpu], capsys)
    (tmp_path / "file").write_text("x")
    assert "is a file, not a folder" in fails(["--resume", ckpt, photos[0], "--out", str(tmp_path / "file"), *cpu],
                                              capsys)
    (tmp_path / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(2048))
    assert "cannot be read by OpenCV" in fails(["--resume", ckpt, str(tmp_path / "broken.mp4"), "--out", str(out),
                                                *cpu], capsys)
    (tmp_path / "text.jpg").write_text("not a picture")
    assert "is not a readable image" in fails(["--resume", ckpt, str(tmp_path / "text.jpg"), "--out", str(out),
                                               *cpu], capsys)
    enet = tmp_path / "enet.pth"
    save_checkpoint(build_model("ENet", 19).state_dict(), str(enet))
    assert "is not a checkpoint of CGNet" in fails(["--resume", str(enet), photos[0], "--out", str(out), *cpu],
                                                   capsys)
    camvid = tmp_path / "camvid_original.pth"
    save_checkpoint({"epoch": 1, "model": build_model("CGNet", 11, M=1, N=1).state_dict()}, str(camvid))
    assert "pass --inform_data_file" in fails(["--resume", str(camvid), photos[0], "--out", str(out), *cpu], capsys)
    assert not out.exists()


def test_a_failure_late_in_a_run_leaves_out_as_it_was_and_a_rerun_merges_subfolders(trained, tmp_path, capsys,
                                                                                     monkeypatch):
    """An image folder, then a video that cannot be written: no PNG of the images appears. A later run into
    an --out that already has the subfolder merges its files in."""
    root, ckpt, photos = trained
    folder = tmp_path / "in" / "sub"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "a.png"), cv2.imread(photos[0]))
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "old.png").write_bytes(b"kept")
    real_writer = cv2.VideoWriter

    def refusing_writer(*args):
        writer = real_writer(*args)
        writer.release()
        return writer  # released: isOpened() is False, as when OpenCV has no mp4 encoder
    video = tmp_path / "clip.mp4"
    writer = real_writer(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (96, 48))
    for _ in range(2):
        writer.write(np.zeros((48, 96, 3), np.uint8))
    writer.release()
    monkeypatch.setattr(cv2, "VideoWriter", refusing_writer)
    message = fails(["--resume", ckpt, str(tmp_path / "in"), str(video), "--out", str(out), "--cuda", "false"],
                    capsys)
    monkeypatch.undo()
    assert "cannot write an mp4 video" in message
    assert sorted(p.name for p in out.rglob("*")) == ["old.png", "sub"]  # nothing of this run, no staging folder
    run_cli(segment.main, segment.get_args_parser(),
            ["--resume", ckpt, str(tmp_path / "in"), "--out", str(out), "--cuda", "false"])
    assert sorted(p.name for p in (out / "sub").iterdir()) == ["a.png", "a_color.png", "a_overlay.png", "old.png"]
