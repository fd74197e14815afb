"""Your own dataset: tools/prepare_dataset.py reads each layout and mask format, refuses bad data in one sentence
without writing anything, and custom_train.py -> custom_test.py -> tools/segment.py -> tools/export_onnx.py carry
the dataset's classes and colours end to end."""
import json
import os
import shutil
from types import SimpleNamespace

import cv2
import numpy as np
import onnx
import pytest
from PIL import Image

import custom_test
import custom_train
from conftest import TINY, fails
from dataset import custom
from dataset.classes_file import read_classes
from dataset.palettes import default_palette
from engine.backend import onnxruntime_session
from tools import export_onnx, prepare_dataset, segment
from dataset.synthetic import SHAPE_CLASSES, SHAPE_COLOURS, make_custom
from utils.errors import UserError, run_cli
from utils.vis import confusion_image

SIZE = (32, 48)


def made(tmp_path, layout, n_train=6, n_val=2, n_test=2):
    return make_custom(str(tmp_path / layout), layout, n_train, n_val, n_test, size=SIZE)


def prepare(root, *extra):
    return run_cli(prepare_dataset.main, prepare_dataset.get_args_parser(), [root, *extra])


def snapshot(root):
    return sorted((os.path.relpath(os.path.join(d, f), root), os.path.getmtime(os.path.join(d, f)))
                  for d, _, names in os.walk(root) for f in names)


def refused(root, capsys, *extra):
    """prepare_dataset.py exits 2 with one sentence and leaves the folder exactly as it was."""
    before = snapshot(root)
    message = fails(prepare_dataset, [root, *extra], capsys)
    assert snapshot(root) == before
    return message


# ------------------------------------------------------------------------------------------ classes files

def test_classes_files_in_every_format(tmp_path):
    plain = tmp_path / "classes.txt"
    plain.write_text("\ufeffsky\nroad\n\ntraffic light\n")
    assert read_classes(str(plain)) == [("sky", None), ("road", None), ("traffic light", None)]
    coloured = tmp_path / "coloured.txt"
    coloured.write_text("background 0 0 0\ntraffic light 250 170 30\r\n")
    assert read_classes(str(coloured)) == [("background", (0, 0, 0)), ("traffic light", (250, 170, 30))]
    cvat = tmp_path / "labelmap.txt"
    cvat.write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\ncar:0,0,142::\n")
    assert read_classes(str(cvat)) == [("background", (0, 0, 0)), ("car", (0, 0, 142))]


@pytest.mark.parametrize("text, says", [("a 1 2 3\nb\n", "gives colours for some classes but not for 'b'"),
                                         ("a 1 2 3\nb 1 2 3\n", "two classes the same colour"),
                                         ("a 1 2 300\n", "beyond 0..255"), ("# only a comment\n", "names no class")])
def test_a_bad_classes_file_is_one_sentence(tmp_path, text, says):
    path = tmp_path / "classes.txt"
    path.write_text(text)
    with pytest.raises(UserError, match=says) as e:
        read_classes(str(path))
    assert str(path) in str(e.value)


# ------------------------------------------------------------------------------------------ prepare

def read_description(root):
    return json.loads(open(os.path.join(root, custom.DESCRIPTION)).read())


def list_rows(root, split):
    return [line.split() for line in open(os.path.join(root, custom.list_name(split))).read().splitlines()]


def test_voc_layout_palette_masks_are_read_by_index_and_keep_voc_colours(tmp_path):
    root = made(tmp_path, "voc")
    desc = prepare(root)
    assert desc["class_names"] == [f"class_{i}" for i in range(5)] and desc["ignore_label"] == 255
    assert desc["palette"] == default_palette(5) and desc["palette_from"] == "the masks' palette"
    assert (desc["samples"]["train"], desc["samples"]["val"]) == (6, 2)  # ImageSets/Segmentation's split
    image, label = list_rows(root, "train")[0]
    assert image.startswith("JPEGImages/") and label.startswith(".cgnet/labels/")
    index = np.asarray(Image.open(os.path.join(root, "SegmentationClass", os.path.basename(label))))
    converted = cv2.imread(os.path.join(root, label), cv2.IMREAD_UNCHANGED)
    assert converted.ndim == 2 and (converted == index).all() and set(np.unique(converted)) <= {0, 1, 2, 3, 4, 255}
    assert os.path.isfile(os.path.join(root, custom.INFORM))


def test_binary_masks_become_two_classes_with_a_notice(tmp_path, capsys):
    root = made(tmp_path, "binary")
    desc = prepare(root)
    assert "only the values 0 and 255: read as binary masks" in capsys.readouterr().out
    assert desc["class_names"] == ["background", "foreground"] and desc["masks"] == "binary 0/255"
    assert desc["palette"] == [[0, 0, 0], [255, 0, 0]] and desc["background"] == 0  # a visible foreground
    assert (desc["samples"]["train"], desc["samples"]["val"]) == (6, 2)  # 0.2 of 8: the nearest count, 2
    for image, label in list_rows(root, "train") + list_rows(root, "val"):
        assert set(np.unique(cv2.imread(os.path.join(root, label), cv2.IMREAD_UNCHANGED))) <= {0, 1}
    val = list_rows(root, "val")
    assert prepare(root)["lists"] == desc["lists"] and list_rows(root, "val") == val  # a rerun draws the same val


def test_the_split_by_fraction_is_deterministic_and_stable(tmp_path):
    root = made(tmp_path, "binary", n_train=40, n_val=0, n_test=0)
    prepare(root, "--val_fraction", "0.3")
    val = list_rows(root, "val")
    assert len(val) == 12 and len(list_rows(root, "train")) == 28  # exactly 0.3 of 40
    prepare(root, "--val_fraction", "0.3")
    assert list_rows(root, "val") == val
    make_custom(str(tmp_path / "more"), "binary", 60, 0, 0, size=SIZE)  # the same 40 pairs and 20 new ones
    for folder in ("images", "masks"):
        for path in (tmp_path / "more" / folder).glob("train_00[4-5]*.png"):
            shutil.copy(path, os.path.join(root, folder, path.name))
    prepare(root, "--val_fraction", "0.3")
    assert set(map(tuple, val)) <= set(map(tuple, list_rows(root, "val")))


def test_colour_masks_with_cvat_labelmap_and_split_subfolders(tmp_path):
    root = made(tmp_path, "colour")
    desc = prepare(root)
    assert desc["class_names"] == list(SHAPE_CLASSES) and desc["palette"] == [list(c) for c in SHAPE_COLOURS]
    assert all(len(row) == 1 and row[0].startswith("images/test/") for row in list_rows(root, "test"))
    image, label = list_rows(root, "val")[0]
    rgb = np.asarray(Image.open(os.path.join(root, "masks", "val", os.path.basename(label))).convert("RGB"))
    index = cv2.imread(os.path.join(root, label), cv2.IMREAD_UNCHANGED)
    assert (np.asarray(SHAPE_COLOURS, np.uint8)[index] == rgb).all()


def test_grey_index_masks_are_used_as_they_are_and_skipped_values_are_reported(tmp_path, capsys):
    root = tmp_path / "mine"
    for i in range(3):
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "annotations").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "images" / f"{i}.jpg"), np.full((16, 16, 3), 40 * i, np.uint8))
        mask = np.zeros((16, 16), np.uint8)
        mask[:4], mask[4:6] = 14, 19
        cv2.imwrite(str(root / "annotations" / f"{i}.png"), mask)
    desc = prepare(str(root))
    out = capsys.readouterr().out
    assert "class values 0 (480 pixels), 14 (192 pixels), 19 (96 pixels): that makes 20 classes" in out
    assert "not renumbered" in out and "--classes" in out
    assert len(desc["class_names"]) == 20 and desc["converted_masks"] is None
    assert all(label.startswith("annotations/") for _, label in list_rows(str(root), "train"))


# ------------------------------------------------------------------------------------------ refusals

def first_mask(root, split="train"):
    return sorted((p for p in (root / "masks").rglob("*.png") if f"/{split}" in str(p)), key=str)[0]


def test_a_value_beyond_the_classes_file(tmp_path, capsys):
    root = tmp_path / "voc"
    made(tmp_path, "voc")
    (root / "classes.txt").write_text("background\ndisc\nbox\n")
    message = refused(str(root), capsys)
    assert "beyond the 3 classes of" in message and "SegmentationClass" in message


def test_a_mask_of_another_size(tmp_path, capsys):
    root = tmp_path / "binary"
    made(tmp_path, "binary")
    mask = first_mask(root)
    cv2.imwrite(str(mask), np.zeros((SIZE[0] + 1, SIZE[1]), np.uint8))
    message = refused(str(root), capsys)
    assert f"mask {mask} is {SIZE[1]}x{SIZE[0] + 1} but its image" in message and "EXIF" in message


def test_a_colour_mask_saved_as_jpeg(tmp_path, capsys):
    root = tmp_path / "colour"
    made(tmp_path, "colour")
    mask = first_mask(root)
    jpeg = cv2.imencode(".jpg", cv2.imread(str(mask)), [cv2.IMWRITE_JPEG_QUALITY, 70])[1]
    lossy = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    cv2.imwrite(str(mask), lossy)
    message = refused(str(root), capsys)
    assert str(mask) in message and "saved as JPEG" in message and "lossless PNG" in message


def test_a_colour_not_in_the_classes_file(tmp_path, capsys):
    root = tmp_path / "colour"
    made(tmp_path, "colour")
    mask = first_mask(root)
    bgr = cv2.imread(str(mask))
    bgr[:2, :2] = (30, 20, 10)
    cv2.imwrite(str(mask), bgr)
    message = refused(str(root), capsys)
    assert f"mask {mask} has colours not in the classes file: (10,20,30)" in message


def test_colour_masks_without_a_classes_file(tmp_path, capsys):
    root = tmp_path / "colour"
    made(tmp_path, "colour")
    (root / "labelmap.txt").unlink()
    assert "is an RGB colour image; give --classes FILE" in refused(str(root), capsys)


def test_an_image_that_does_not_decode(tmp_path, capsys):
    root = tmp_path / "binary"
    made(tmp_path, "binary")
    image = root / "images" / "train_0000.png"
    image.write_bytes(b"not a png")
    assert f"image {image} cannot be decoded" in refused(str(root), capsys)


def test_a_jpeg_mask(tmp_path, capsys):
    root = tmp_path / "binary"
    made(tmp_path, "binary")
    mask = first_mask(root)
    jpeg = mask.with_suffix(".jpg")
    mask.rename(jpeg)
    assert f"mask {jpeg} is a JPEG" in refused(str(root), capsys)


def test_no_pairs_and_no_layout(tmp_path, capsys):
    root = tmp_path / "binary"
    made(tmp_path, "binary")
    for mask in (root / "masks").glob("*.png"):
        mask.rename(mask.with_name("other_" + mask.name))
    assert "has a mask of the same name" in refused(str(root), capsys)
    shutil.rmtree(root / "masks")
    assert "holds none of the layouts this tool reads" in refused(str(root), capsys)


# ------------------------------------------------------------------------------------------ confusion picture

def test_the_confusion_picture_is_row_normalised():
    picture = confusion_image([[900, 100], [0, 0]], ["background", "foreground"], cell=30)
    assert picture.ndim == 3 and picture.dtype == np.uint8

    def cells(rgb):  # (pixels, mean x, mean y) of one exact colour
        ys, xs = np.nonzero((picture == rgb).all(2))
        return len(ys), xs.mean() if len(xs) else None, ys.mean() if len(ys) else None

    # Shares of the row, white (0 %) to dark blue (100 %): 90 % and 10 % side by side; a row without pixels is grey.
    ninety, ten, grey = cells((33, 69, 122)), cells((230, 234, 240)), cells((200, 200, 200))
    assert min(ninety[0], ten[0]) > 30 * 30 / 2 and grey[0] > 2 * 30 * 30 * 0.9
    assert ninety[1] < ten[1] and abs(ninety[2] - ten[2]) < 2 and grey[2] > ninety[2] + 20


# ------------------------------------------------------------------------------------------ the whole path

def train(root, out, *extra):
    argv = ["--data_dir", root, "--savedir", f"{out}/ckpt/", "--max_epochs", "2", "--batch_size", "2",
            "--seed", "1", *TINY, *extra]
    return run_cli(custom_train.main, custom_train.get_args_parser(argv), argv)


def evaluate(root, *extra):
    argv = ["--data_dir", root, "--num_workers", "0", "--cuda", "false", "--M", "1", "--N", "2", *extra]
    return run_cli(custom_test.main, custom_test.get_args_parser(argv), argv)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["voc", "binary", "colour"])
def test_prepare_train_test_segment_export(tmp_path, layout, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = made(tmp_path, layout)
    desc = prepare(root)
    classes, palette = len(desc["class_names"]), desc["palette"]
    summary = train(root, tmp_path)
    assert os.path.basename(summary["run_dir"]) == "CGNet_M1N2bs2cpu_ontrain"
    assert summary["run_dir"].startswith(f"{tmp_path}/ckpt/{layout}/") and "val_mIoU" in summary
    ckpt = os.path.join(summary["run_dir"], "checkpoint.pth")

    result = evaluate(root, "--resume", f"{tmp_path}/ckpt/{layout}/", "--save_seg_dir", "val")  # the newest run
    assert list(result["IoU"]) == desc["class_names"] and result["images"] == len(list_rows(root, "val"))
    metrics = json.load(open("val/metrics.json"))
    assert np.array(metrics["confusion"]["pixels"]).shape == (classes, classes)
    assert os.path.isfile("val/confusion.png")
    name = os.path.basename(list_rows(root, "val")[0][0])[:-4]
    colour = Image.open(f"val/{name}_color.png")
    assert colour.mode == "P" and colour.getpalette()[:3 * classes] == sum(palette, [])  # VOC's stay VOC's

    seg = segment.main(segment.get_args_parser().parse_args(
        [os.path.join(root, list_rows(root, "val")[0][0]), "--resume", ckpt, "--out", "seg", "--cuda", "false"]))
    assert seg["images"] == 1 and Image.open(f"seg/{name}_color.png").getpalette()[:3 * classes] == sum(palette, [])

    export_onnx.main(export_onnx.get_args_parser().parse_args(["--resume", ckpt, "--out", "m.onnx"]))
    image = cv2.imread(os.path.join(root, list_rows(root, "val")[0][0]))
    labels, logits = onnxruntime_session("m.onnx").run(None, {"image": image[None]})
    assert logits.shape == (1, classes) + image.shape[:2] and labels.max() < classes
    meta = {p.key: json.loads(p.value) for p in onnx.load("m.onnx").metadata_props}["cgnet"]
    assert meta["class_names"] == desc["class_names"] and meta["palette"] == palette

    if layout == "colour":  # a list without masks: predictions alone
        evaluate(root, "--resume", ckpt, "--test_data_list", os.path.join(root, custom.list_name("test")),
             "--save_seg_dir", "test")
        assert sorted(os.listdir("test")) == ["test_0000.png", "test_0000_color.png", "test_0001.png",
                                              "test_0001_color.png"]


@pytest.mark.slow
def test_transfer_from_a_19_class_checkpoint_to_two_classes(tmp_path, untrained, capsys):
    root = made(tmp_path, "binary")
    prepare(root)
    weights = untrained()["ckpt"]  # Cityscapes' 19 classes, CGNet M1N1
    summary = train(root, tmp_path, "--weights", weights, "--M", "1", "--N", "1")
    assert "every weight is loaded except the classifier" in capsys.readouterr().out
    model = custom_train.custom_spec(root)
    from engine.checkpoint import read_weights
    recorded = read_weights(os.path.join(summary["run_dir"], "checkpoint.pth"))
    assert recorded.network["classes"] == 2 and recorded.class_names == list(model.class_names)
    assert recorded.dataset == "binary"


def test_the_custom_scripts_say_how_to_prepare_a_folder(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    for script in (custom_train, custom_test):
        argv = ["--data_dir", str(tmp_path / "mine")]
        cli = SimpleNamespace(main=script.main, get_args_parser=lambda: script.get_args_parser(argv))
        message = fails(cli, argv, capsys)
        assert message == (f"error: --data_dir {tmp_path / 'mine'} holds no {custom.DESCRIPTION}; run python "
                           f"tools/prepare_dataset.py {tmp_path / 'mine'} first (it checks the masks and writes "
                           f"the lists and that description).")
        assert os.listdir(tmp_path / "mine") == []


@pytest.mark.slow
def test_a_binary_0_255_dataset_learns_both_classes(tmp_path):
    """Measured: background 0.69, foreground 0.54 IoU after these 10 epochs (seed 1, this CPU); an all-background
    prediction would score 0 on the foreground."""
    root = make_custom(str(tmp_path / "binary"), "binary", 20, 5, 0, size=(48, 64))
    prepare(root)
    train(root, tmp_path, "--max_epochs", "10", "--batch_size", "4", "--val_interval", "10")
    result = evaluate(root, "--resume", f"{tmp_path}/ckpt/binary/", "--metrics", str(tmp_path / "m.json"))
    assert result["IoU"]["background"] >= 0.4 and result["IoU"]["foreground"] >= 0.4, result["IoU"]


def test_custom_test_refusals_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = made(tmp_path, "colour")
    prepare(root)
    cli = lambda argv: SimpleNamespace(main=custom_test.main, get_args_parser=lambda: custom_test.get_args_parser(argv))  # noqa: E731
    argv = ["--data_dir", root]
    assert fails(cli(argv), argv, capsys) == (
        "error: --resume ./checkpoint/colour/ does not exist: no run of this dataset was trained here yet; train first "
        "(python custom_train.py --data_dir ...) or give the checkpoint to evaluate.")
    (tmp_path / "model.pth").write_bytes(b"")  # refused before the checkpoint is read
    test_list = os.path.join(root, custom.list_name("test"))
    argv = ["--data_dir", root, "--resume", "model.pth", "--test_data_list", test_list, "--metrics", "m.json"]
    assert f"--test_data_list {test_list} names images only" in fails(cli(argv), argv, capsys)
    with open(os.path.join(root, custom.DESCRIPTION), "w") as f:
        f.write('{"name": "colour"}')
    argv = ["--data_dir", root]
    assert f"{root}/{custom.DESCRIPTION} is damaged" in fails(cli(argv), argv, capsys)
    assert sorted(os.listdir(tmp_path)) == ["colour", "model.pth"]


def test_two_images_of_one_name(tmp_path, capsys):
    root = tmp_path / "binary"
    made(tmp_path, "binary")
    shutil.copy(root / "images" / "train_0000.png", root / "images" / "train_0000.jpg")
    assert "are two images of the same name; keep one" in refused(str(root), capsys)


def test_exif_orientation_is_applied_as_the_loader_reads_the_image(tmp_path, capsys):
    """A phone photo stored 48 wide and 32 high with 'rotate 90°' in its EXIF is 32x48 to the loader (cv2): a mask
    drawn on what the user sees is accepted, a mask of the stored size refused."""
    root = tmp_path / "photos"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    for i in range(2):
        Image.fromarray(np.full((32, 48, 3), 60 * i, np.uint8)).save(root / "images" / f"{i}.jpg", exif=exif)
        mask = np.zeros((48, 32), np.uint8)  # H x W as displayed
        mask[:10] = 1
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    assert prepare(str(root))["training"]["input_size"] == "48,32"
    Image.fromarray(np.zeros((32, 48), np.uint8)).save(root / "masks" / "0.png")
    assert "is 48x32 but its image" in refused(str(root), capsys)
