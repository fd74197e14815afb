"""Check a Cityscapes download, make its *_gtFine_labelTrainIds.png and split lists, and print the training command.

    python tools/prepare_cityscapes.py ./data/cityscapes

DATA_DIR holds the official zips unpacked side by side: leftImg8bit_trainvaltest.zip gives
DATA_DIR/leftImg8bit/{train,val,test}/<city>/*_leftImg8bit.png and gtFine_trainvaltest.zip gives
DATA_DIR/gtFine/{train,val,test}/<city>/*_gtFine_polygons.json (and *_gtFine_labelIds.png). Each missing
label image is made with the official cityscapesScripts conversion (the one csCreateTrainIdLabelImgs applies to
every file), or, where a frame has only its *_gtFine_labelIds.png, by mapping those ids through cityscapesScripts'
label table (the same id -> trainId pairs); a rerun only checks.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file (python tools/x.py): the project's packages are importable

from dataset.cityscapes_files import (IMAGE, ZIPS, check_layout, how_to_get, make_train_ids,  # noqa: E402
                                      samples_on_disk)
from dataset.lists import REPO, choose_lists, summary, train_command, verify, write_lists  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402

SHIPPED = REPO / "dataset" / "list" / "Cityscapes"


def get_args_parser():
    parser = argparse.ArgumentParser(description="Check a Cityscapes download and make its labels and lists.")
    parser.add_argument("data_dir", type=Path, help="the folder holding leftImg8bit/ and gtFine/")
    return parser


def main(args):
    data_dir = args.data_dir.resolve()
    check_layout(data_dir)
    made = make_train_ids(data_dir)
    if made:
        print(f"made {made} *_gtFine_labelTrainIds.png")
    chosen = choose_lists(data_dir, SHIPPED, "cityscapes", samples_on_disk(data_dir))
    if not chosen["train"][0] or not chosen["val"][0]:
        raise UserError(f"no {IMAGE} images found under {data_dir / 'leftImg8bit'}/train and /val: unzip "
                        f"{ZIPS['leftImg8bit']} into {data_dir}.")
    write_lists(data_dir, "cityscapes", chosen)
    verify(data_dir, "cityscapes", chosen, lambda p: how_to_get(data_dir, p))
    summary(chosen, train_command("cityscapes_train.py", data_dir, "cityscapes", chosen))
    return chosen


if __name__ == "__main__":
    run_cli(main, get_args_parser())
