"""The published CGNet weights: where each file is, how to verify it, and what a file that records nothing
about itself (the original release's layout) needs to be used alone. tools/download_weights.py fetches them;
engine.checkpoint.read_weights recognises the authors' CamVid file by its sha256, however it was fetched."""
import hashlib
import os
from dataclasses import dataclass

from dataset.palettes import CAMVID_CLASSES, CAMVID_PALETTE


@dataclass(frozen=True)
class Published:
    name: str           # tools/download_weights.py NAME
    url: str
    sha256: str         # the whole digest, or the prefix that the file name carries (checked as torch.hub does)
    size: int           # bytes; None where not recorded here
    out: str            # default --out, relative to the repository root (where the scripts are run)
    what: str           # one line for --help
    # For a file in the original layout ({"epoch", "model"}), which records none of these:
    dataset: str = None
    mean: tuple = None  # subtracted from the RGB image in this order (the original's BGR-computed statistics)
    class_names: tuple = None
    palette: tuple = None


CAMVID_COMMIT = "ebc812c445b2f10a6cf64a2b16bbfe1cc2fec10f"
MMSEG = "https://download.openmmlab.com/mmsegmentation/v0.5/cgnet/"


def mmseg(crop, stamp, miou):
    """An mmsegmentation release: its file name ends in the first 8 hex digits of its sha256."""
    config = f"cgnet_{crop}_60k_cityscapes"
    file = f"{config}_{stamp}.pth"
    return Published(name=f"mmseg-cityscapes-{crop}", url=f"{MMSEG}{config}/{file}", sha256=stamp.rsplit("-", 1)[1],
                     size=None, out=f"checkpoint/mmseg/{file}",
                     what=f"mmsegmentation's CGNet on Cityscapes, {crop} crops ({miou} % val mIoU as it publishes it)")

PUBLISHED = {p.name: p for p in (
    # The CGNet authors' own CamVid model (CGNet_M3N21, trained on train+val for 800 epochs): still in the original
    # repository's history, deleted from its tip later.
    Published(
        name="camvid",
        url=f"https://github.com/wutianyiRosun/CGNet/raw/{CAMVID_COMMIT}/checkpoint/camvid/"
            f"CGNet_M3N21bs8gpu1_ontrainval/model_800.pth",
        sha256="3676a50e6587379426bf04924b0a2d98f332d3468adb990a40e0446e4f32a63e", size=2119239,
        out="checkpoint/camvid/CGNet_M3N21bs8gpu1_ontrainval/model_camvid_train_on_trainvalset.pth",
        what="the CGNet authors' CamVid model (11 classes, 65.54 % mIoU on the CamVid test split)",
        dataset="camvid",
        # The training mean of that file: the per-channel mean of CamVid train+val (468 images,
        # camvid_trainval_list.txt) as the original code computes it (cv2 images, so B, G, R order), copied from
        # ../shared/camvid/trainval_stats.json. The original subtracts it from the RGB image as it is.
        mean=(105.65775299072266, 103.329833984375, 99.62540435791016),
        class_names=CAMVID_CLASSES, palette=CAMVID_PALETTE),
    # mmsegmentation's CGNet M3N21 trained on Cityscapes (its results page for CGNet). Their layout is recognised
    # by engine.checkpoint, which also knows their preprocessing, so nothing more is needed here.
    mmseg("680x680", "20201101_110253-4c0b2f2d", "65.63"),
    mmseg("512x1024", "20201101_110254-124ea03b", "68.27"),
)}


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def matches(entry, path):
    """The file at `path` is `entry`'s: its size (when recorded) and its sha256 (or the hash prefix) agree."""
    if entry.size is not None and os.path.getsize(path) != entry.size:
        return False
    return sha256_of(path).startswith(entry.sha256)


def recognise(path):
    """The entry with facts about itself (a mean, ...) whose file `path` is, else None. Only entries of a recorded
    size are tried, so a file of any other size is never hashed."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        return None
    size = os.path.getsize(path)
    return next((e for e in PUBLISHED.values() if e.mean is not None and e.size == size and matches(e, path)), None)
