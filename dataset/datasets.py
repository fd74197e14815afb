"""List-file datasets shared by Cityscapes and CamVid: reading, checking, preprocessing, augmentation."""
import os
import struct
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image

from utils.errors import UserError
from utils.progress import plural

cv2.setNumThreads(0)  # DataLoader workers already run in parallel; OpenCV threads inside them only contend.


LABEL_MODES = ("L", "I;16", "I;16B", "I")  # single-channel PNG modes; cv2 reads them as class indices
FORMAT = ("file paths relative to --data_dir, separated by spaces or tabs; a path cannot contain a space "
          "and names a file, not a folder")


@dataclass(frozen=True)
class Sample:
    image: str
    label: str        # '' for test lists
    name: str         # output name: the image file name without extension
    line: int


def find_list(list_path, data_dir):
    """The list file a list flag names: the path as given (the original's commands name lists under
    dataset/list/), else the same path inside data_dir (`--data_dir data/mine --val_data_list
    cgnet_val_list.txt`, where prepare_dataset.py writes them); as given when neither exists."""
    inside = os.path.join(data_dir, list_path)
    return inside if not os.path.exists(list_path) and os.path.isfile(inside) else list_path


def read_list(list_path, data_dir, with_label, flag):
    """Parse a list file (`image label` or `image` per line, relative to data_dir; the list itself found by
    find_list) and check the files.

    Fields may be separated by any run of spaces or tabs, and a UTF-8 byte-order mark (Windows Notepad
    writes one) is dropped. Existence and sizes are checked from the PNG headers only (nothing is
    decoded), so a broken dataset fails in seconds, before any training.
    """
    if not os.path.isdir(data_dir):
        raise UserError(f"--data_dir {data_dir} is not a directory; point it at the dataset's root folder "
                        f"(see docs/training.md, 'Preparing the real datasets').")
    given, list_path = list_path, find_list(list_path, data_dir)
    if os.path.isdir(list_path):
        raise UserError(f"{flag} {given} is a directory; give the path of a list file "
                        f"(the originals are in dataset/list/).")
    if not os.path.isfile(list_path):
        inside = os.path.join(data_dir, given)
        raise UserError(f"{flag} {given} does not exist" + (f", nor does {inside}" if inside != given else "")
                        + "; give the path of a list file, as it is or relative to --data_dir (the originals are "
                          "in dataset/list/).")
    fields = 2 if with_label else 1
    samples = []
    try:
        with open(list_path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{flag} {list_path} is not a text file; give a list file with one "
                        f"'image label' pair per line.") from None
    except OSError as e:
        raise UserError(f"{flag} {list_path} cannot be read ({e.strerror}); check its permissions.") from None
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        # Test lists have no labels; an `image label` list is accepted there too (labels unused).
        if len(parts) != fields and not (not with_label and len(parts) == 2):
            want = "'image label'" if with_label else "'image'"
            raise UserError(f"{flag} {list_path} line {n} has {plural(len(parts), 'field')}, expected {want}: "
                            f"{FORMAT}; fix or remove that line.")
        image = os.path.join(data_dir, parts[0])
        label = os.path.join(data_dir, parts[1]) if with_label else ""
        samples.append(Sample(image, label, os.path.splitext(os.path.basename(parts[0]))[0], n))
    if not samples:
        raise UserError(f"{flag} {list_path} is empty; it must name at least one image.")
    check_files(samples, list_path, flag)
    return samples


# One rule for EXIF orientation (phone photos): every file is seen upright, as cv2.imread(IMREAD_COLOR) and
# PIL's ImageOps.exif_transpose show it. image_header reports that size and load_label turns a label the same
# way, so a rotated photo and a mask drawn on what the user sees agree. Tag 0x0112: 1 upright, 2..8 below.
UPRIGHT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.swapaxes(0, 1),
           6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, -1)[::-1], 8: lambda a: np.rot90(a, 1)}


def orientation(im):
    """The EXIF orientation of an open PIL image (1 when it has none or it cannot be read)."""
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # a damaged EXIF block: the decoders ignore it too
        return 1
    return value if value in UPRIGHT else 1


def image_header(path):
    """(width, height, mode) from the image header (nothing is decoded), the size as seen upright (EXIF
    orientation applied), or a str saying why there is none."""
    if not os.path.exists(path):
        return "missing"
    if os.path.isdir(path):
        return "a directory"
    if not os.access(path, os.R_OK):
        return "unreadable (no read permission)"
    try:
        with Image.open(path) as im:
            w, h = im.size
            return ((h, w) if orientation(im) >= 5 else (w, h)) + (im.mode,)
    except Exception:  # PIL raises several types for files that are not images, all alike here
        return "not an image"


def undecodable(path):
    """Why the image at `path` cannot be decoded whole, or None. Pillow decodes strictly: a truncated JPEG or a
    PNG with a damaged body is an error there, where OpenCV may return a partly grey image with a warning."""
    try:
        with Image.open(path) as image:
            image.load()
    except Image.DecompressionBombError:
        return None  # beyond Pillow's limit; OpenCV decodes it in the run, which caps what the network sees
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as e:
        return str(e).rstrip(".") or type(e).__name__
    return None


def check_files(samples, list_path, flag, show=3):
    """Every file of the list exists, has an image header, and each label is single-channel and as large as
    its image; all entries are checked, the first `show` problems are reported with their line numbers."""
    problems = []
    for s in samples:
        image = image_header(s.image)
        if isinstance(image, str):
            problems.append(f"line {s.line}: {s.image} is {image}")
        if s.label:
            label = image_header(s.label)
            if isinstance(label, str):
                problems.append(f"line {s.line}: {s.label} is {label}")
            elif label[2] not in LABEL_MODES:  # cv2 turns palette PNGs into colours too
                problems.append(f"line {s.line}: {s.label} has image mode {label[2]}, not a single-channel "
                                f"greyscale label map")
            elif not isinstance(image, str) and label[:2] != image[:2]:
                problems.append(f"line {s.line}: {s.label} is {label[0]}x{label[1]} but its image "
                                f"is {image[0]}x{image[1]}")
    if problems:
        shown = "; ".join(problems[:show]) + (f"; and {len(problems) - show} more" if len(problems) > show else "")
        want = "'image label'" if any(s.label for s in samples) else "'image'"
        raise UserError(f"{flag} {list_path} names files that cannot be used ({shown}); check --data_dir, the list "
                        f"(one {want} per line: {FORMAT}), that labels are class-index PNGs, and the dataset "
                        f"download (tools/prepare_*.py verifies it).")


def load_image(path):
    """BGR uint8, as the original's cv2.imread(path, IMREAD_COLOR), which applies the EXIF orientation."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"image {path} cannot be read; re-download or remove it from the list.")
    return image


def load_label(path, classes, ignore_label):
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)  # class indices as stored; this flag ignores EXIF, so:
    if label is None:
        raise UserError(f"label {path} cannot be read; re-download or remove it from the list.")
    with Image.open(path) as im:
        turn = UPRIGHT.get(orientation(im))
    if turn is not None:
        label = np.ascontiguousarray(turn(label))
    if label.ndim == 3:
        raise UserError(f"label {path} is a colour image; labels must be single-channel class-index PNGs "
                        f"(for Cityscapes the *_gtFine_labelTrainIds.png files; tools/prepare_cityscapes.py makes them).")
    bad = np.unique(label[(label >= classes) & (label != ignore_label)])
    if bad.size:
        raise UserError(f"label {path} has values {bad[:5].tolist()} outside 0..{classes - 1} and the ignore label "
                        f"{ignore_label}; check --classes/--ignore_label, or that the list names trainId labels.")
    return label


def normalize(image_bgr, mean):
    """The original's preprocessing, channel-order quirk included: BGR -> RGB, then subtract the mean
    computed on BGR images (so the blue mean is subtracted from red). No std. (H, W, 3) float32."""
    return image_bgr.astype(np.float32)[:, :, ::-1] - mean


def to_tensor(image_hwc):
    return torch.from_numpy(np.ascontiguousarray(image_hwc.transpose(2, 0, 1)))


class TrainDataset(torch.utils.data.Dataset):
    """Random scale 0.5..2.0 (steps of 0.1), pad bottom/right, random crop, random horizontal flip.

    Each sample's randomness comes from (seed, epoch, index), so a run is repeatable whatever the number
    of workers or processes, and a resumed run sees the same augmentations as an uninterrupted one.
    """

    def __init__(self, samples, mean, crop_size, classes, ignore_label, scale=True, mirror=True, seed=0):
        self.samples, self.mean = samples, np.asarray(mean, np.float32)
        self.crop_h, self.crop_w = crop_size
        self.classes, self.ignore_label = classes, ignore_label
        self.scale, self.mirror, self.seed = scale, mirror, seed
        self.epoch = 0
        self.decoded = None

    def keep_in_memory(self, progress=None):
        """Decode (and check) every image and label once and keep them: an epoch then only augments. Done before
        the loader's workers start, which share the arrays with this process (fork, copy-on-write).
        Returns the bytes kept."""
        decoded = []
        for s in self.samples:
            decoded.append((load_image(s.image), load_label(s.label, self.classes, self.ignore_label)))
            if progress is not None:
                progress.update()
        self.decoded = decoded
        return sum(image.nbytes + label.nbytes for image, label in decoded)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        s = self.samples[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.decoded is not None:
            image, label = self.decoded[index]
        else:
            image, label = load_image(s.image), load_label(s.label, self.classes, self.ignore_label)
        if self.scale:
            f = 0.5 + rng.integers(0, 16) / 10.0
            image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_LINEAR)
            label = cv2.resize(label, None, fx=f, fy=f, interpolation=cv2.INTER_NEAREST)
        # The original pads the normalized image bottom/right (0.0, ignore label) up to the crop, then crops at a
        # random offset of the padded image. The same crop, computed here before normalizing and padding, touches
        # only the crop's pixels (a 2x-scaled CamVid image has 6.4 times as many).
        h_off = rng.integers(0, max(label.shape[0], self.crop_h) - self.crop_h + 1)
        w_off = rng.integers(0, max(label.shape[1], self.crop_w) - self.crop_w + 1)
        image = normalize(image[h_off:h_off + self.crop_h, w_off:w_off + self.crop_w], self.mean)
        label = label[h_off:h_off + self.crop_h, w_off:w_off + self.crop_w]
        pad_h, pad_w = self.crop_h - label.shape[0], self.crop_w - label.shape[1]
        if pad_h or pad_w:
            image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0.0, 0.0, 0.0))
            label = cv2.copyMakeBorder(label, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(self.ignore_label,))
        if self.mirror and rng.integers(0, 2):
            image, label = image[:, ::-1], label[:, ::-1]
        return to_tensor(image), torch.from_numpy(np.ascontiguousarray(label)).long()


def decoded_bytes(samples):
    """The memory `samples` take decoded (uint8 BGR image + label), from their headers."""
    total = 0
    for s in samples:
        header = image_header(s.image)
        total += header[0] * header[1] * 4 if not isinstance(header, str) else 0
    return total


class EvalDataset(torch.utils.data.Dataset):
    """Full-resolution images with the original's preprocessing; labels when the list has them."""

    def __init__(self, samples, mean, classes, ignore_label):
        self.samples, self.mean = samples, np.asarray(mean, np.float32)
        self.classes, self.ignore_label = classes, ignore_label

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        s = self.samples[index]
        image = to_tensor(normalize(load_image(s.image), self.mean))
        if s.label:
            label = torch.from_numpy(load_label(s.label, self.classes, self.ignore_label)).long()
        else:
            label = torch.zeros(0, dtype=torch.long)
        return image, label, index


def make_loader(dataset, batch_size, num_workers, device, sampler=None, drop_last=False):
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                                       pin_memory=device.type == "cuda", drop_last=drop_last)
