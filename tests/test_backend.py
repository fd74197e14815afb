"""engine.backend: the one place that reads a model file's suffix, and the one object every caller uses
(quick tier: small untrained checkpoints, no export)."""
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from conftest import ROOT
from engine.backend import TorchBackend, load
from engine.checkpoint import self_contained
from model import build_model
from utils.checkpoint import save_checkpoint
from utils.errors import UserError
from utils.files import model_file_kind

NETWORK = {"name": "CGNet", "classes": 11, "M": 1, "N": 1}
MEAN = [72.39, 82.91, 73.16]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("backend") / "cgnet.pth")
    torch.manual_seed(0)
    save_checkpoint(self_contained(build_model(**NETWORK).state_dict(), NETWORK, "camvid", MEAN), path)
    return path


def test_the_suffix_decides_the_kind():
    assert [model_file_kind(p) for p in ("a.pth", "b.PTH", "c.onnx", "d.XML", "e.tar", "f")] == \
        ["checkpoint", "checkpoint", "onnx", "openvino", "checkpoint", "checkpoint"]


def test_a_checkpoint_gives_labels_and_logits_of_bgr_images_and_what_it_records(ckpt):
    backend = load(ckpt)
    assert isinstance(backend, TorchBackend) and backend.input_kind == "float" and backend.device.type == "cpu"
    assert backend.network == NETWORK and backend.classes == 11 and backend.dataset == "camvid"
    assert np.allclose(backend.mean, MEAN) and len(backend.class_names) == len(backend.palette) == 11
    image = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)  # BGR
    batch = backend.prepare(image)
    assert backend.size(batch) == (24, 40)
    logits, labels = backend.logits(batch), backend.labels(batch)
    assert logits.shape == (1, 11, 24, 40) and logits.dtype == torch.float32
    assert torch.equal(labels, logits.argmax(1))
    rgb = torch.from_numpy(cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) - np.float32(MEAN))
    assert torch.equal(batch, rgb.permute(2, 0, 1)[None])  # the eval scripts' preprocessing


def test_mode_and_amp_choose_the_inference_mode(ckpt, monkeypatch):
    import engine.backend as backend_module
    monkeypatch.setattr(backend_module, "keep_cpu_memory", lambda: True)
    modes = [load(ckpt, **change).predictor.mode for change in ({}, {"mode": "plain"}, {"amp": "bf16"})]
    assert modes == ["fold_bn+channels_last", "eager", "fold_bn+channels_last+bf16"]
    with pytest.raises(ValueError, match="mode is one of fast, compile, plain"):
        load(ckpt, mode="exact")


def test_the_flags_become_load_s_keywords_in_one_place(ckpt, monkeypatch):
    """engine.cli.load_options: --plain over --compile, as before; a GPU is looked for only for a checkpoint."""
    from engine.cli import load_options
    flags = dict(resume=ckpt, cuda=False, gpus="0", plain=False, compile=True, amp="bf16", inform_data_file="i.pkl")
    assert load_options(SimpleNamespace(**flags)) == {"device": "cpu", "mode": "compile", "amp": "bf16",
                                                      "inform": "i.pkl", "flag": "--resume"}
    assert load_options(SimpleNamespace(**dict(flags, plain=True)))["mode"] == "plain"
    asked = []
    monkeypatch.setattr("engine.cli.select_device", lambda args: asked.append(args.resume) or (torch.device("cpu"), []))
    load_options(SimpleNamespace(**dict(flags, cuda=True, resume="model.onnx")))
    load_options(SimpleNamespace(**dict(flags, cuda=True)))
    assert asked == [ckpt]


def test_an_exported_file_that_is_missing_is_one_sentence(tmp_path):
    for name in ("gone.onnx", "gone.xml"):
        with pytest.raises(UserError, match=f"^model file .*{name} does not exist"):  # Python's call
            load(str(tmp_path / name))
        with pytest.raises(UserError, match=f"^--resume .*{name} does not exist"):  # the scripts'
            load(str(tmp_path / name), flag="--resume")


def test_training_imports_no_inference_export_or_web_module():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import engine.train; "
            "print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code, ROOT], capture_output=True, text=True,
                                check=True).stdout.split())
    deployment = {"engine.backend", "engine.export", "engine.evaluate", "engine.segmenter", "model.inference",
                  "onnx", "onnxruntime", "openvino", "nncf", "gradio"}
    assert not loaded & deployment, loaded & deployment


def test_every_backend_streams_and_the_segmenter_asks_no_backend_what_it_is(ckpt):
    """Backend.stream: one batch at a time in the base class, in order; Segmenter.stream calls it whatever the
    backend (an OpenVINOBackend overrides it to keep two frames in flight)."""
    from engine.profile import Profile
    from engine.segmenter import Segmenter
    backend = load(ckpt)
    images = [np.full((16, 24, 3), v, np.uint8) for v in (0, 128, 255)]
    profile = Profile()
    out = list(backend.stream(((i, backend.prepare(image)) for i, image in enumerate(images)), profile))
    assert [tag for tag, _ in out] == [0, 1, 2] and profile.seconds["network"] > 0
    for (_, labels), image in zip(out, images):
        assert torch.equal(labels, backend.labels(backend.prepare(image)))

    class Recording(TorchBackend):
        def stream(self, items, profile=None):
            self.streamed = True
            return super().stream(items, profile)
    recording = Recording(ckpt, backend.weights, backend.model, "eager")
    recording.mean = backend.mean
    seg = Segmenter(recording)
    frames = list(seg.stream((image, seg.input(image)) for image in images))
    assert recording.streamed and [f is i for (f, _), i in zip(frames, images)] == [True] * 3
    assert all(pred.dtype == np.uint8 and pred.shape == (16, 24) for _, pred in frames)
    assert seg.class_names == backend.class_names and seg.palette == backend.palette and seg.classes == 11
