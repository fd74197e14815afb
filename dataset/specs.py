"""What differs between Cityscapes, CamVid and your own datasets, as data: the scripts share everything else."""
import os
from dataclasses import dataclass

from dataset import custom, palettes


@dataclass(frozen=True)
class DatasetSpec:
    name: str                 # --dataset, and the checkpoint/result sub-folder
    classes: int
    ignore_label: int
    class_names: tuple
    palette: tuple
    input_size: str           # training crop "H,W"
    batch_size: int
    max_epochs: int
    gpus: str
    train_type: str
    train_list: str
    val_list: str
    test_list: str
    dataset_list: str         # list inside data_dir used for the inform statistics
    resume_eval: str          # the released checkpoints' paths of the original README
    resume_test: str
    label_ids: tuple = ()     # trainId -> official labelId (Cityscapes submission)
    # The original release's published inform mean (computed on BGR images, so subtracted in that order from the
    # RGB image: red minus the blue mean), for checkpoints of that release that come without their statistics.
    release_mean: tuple = ()
    root: str = ""            # your own dataset: its folder, which also holds its statistics (default ./data/NAME)

    @property
    def data_dir(self):
        return self.root or f"./data/{self.name}"

    @property
    def inform_data_file(self):
        if self.root:
            return os.path.join(self.root, custom.INFORM)
        return f"./dataset/wtfile/{self.name}_inform.pkl"


CITYSCAPES = DatasetSpec(
    name="cityscapes", classes=19, ignore_label=255,
    class_names=palettes.CITYSCAPES_CLASSES, palette=palettes.CITYSCAPES_PALETTE,
    input_size="680,680", batch_size=16, max_epochs=350, gpus="0,1", train_type="ontrainval",
    train_list="./dataset/list/Cityscapes/cityscapes_trainval_list.txt",
    val_list="./dataset/list/Cityscapes/cityscapes_val_list.txt",
    test_list="./dataset/list/Cityscapes/cityscapes_test_list.txt",
    dataset_list="cityscapes_trainval_list.txt",
    resume_eval="./checkpoint/cityscapes/CGNet_M3N21bs16gpu2_ontrain/model_cityscapes_train_on_trainset.pth",
    resume_test="./checkpoint/cityscapes/CGNet_M3N21bs16gpu2_ontrainval/model_cityscapes_train_on_trainvalset.pth",
    label_ids=palettes.CITYSCAPES_LABEL_IDS, release_mean=(73.15835921, 82.90891754, 72.39239876))

CAMVID = DatasetSpec(
    name="camvid", classes=11, ignore_label=11,
    class_names=palettes.CAMVID_CLASSES, palette=palettes.CAMVID_PALETTE,
    input_size="360,360", batch_size=8, max_epochs=800, gpus="0", train_type="ontrainval",
    train_list="./dataset/list/CamVid/camvid_trainval_list.txt",
    val_list="./dataset/list/CamVid/camvid_val_list.txt",
    test_list="./dataset/list/CamVid/camvid_test_list.txt",
    dataset_list="camvid_trainval_list.txt",
    resume_eval="./checkpoint/camvid/CGNet_M3N21bs8gpu1_ontrainval/model_camvid_train_on_trainvalset.pth",
    resume_test="./checkpoint/camvid/CGNet_M3N21bs8gpu1_ontrainval/model_camvid_train_on_trainvalset.pth")

# Training defaults of your own dataset when its description gives none: the CamVid recipe's batch, a crop no
# larger than its images (prepare_dataset.py picks it), and fewer epochs than CamVid's 800 for a first run.
CUSTOM_TRAINING = {"input_size": "360,360", "batch_size": 8, "max_epochs": 300}


def spec_from_description(desc, data_dir):
    """The DatasetSpec of a folder prepared by tools/prepare_dataset.py (its cgnet_dataset.json, read by
    dataset.custom.read_description): lists and statistics inside data_dir, classes and colours as described."""
    train = {**CUSTOM_TRAINING, **desc.get("training", {})}
    lists = desc.get("lists", {})
    path = lambda split: os.path.join(data_dir, lists[split]) if split in lists else ""  # noqa: E731
    run = f"./checkpoint/{desc['name']}/"
    return DatasetSpec(
        name=desc["name"], classes=len(desc["class_names"]), ignore_label=desc["ignore_label"],
        class_names=tuple(desc["class_names"]), palette=tuple(tuple(c) for c in desc["palette"]),
        input_size=train["input_size"], batch_size=train["batch_size"], max_epochs=train["max_epochs"],
        gpus="0", train_type="ontrain", train_list=path("train"), val_list=path("val"),
        test_list=path("val") or path("test"), dataset_list=lists.get("train", custom.list_name("train")),
        resume_eval=run, resume_test=run, root=data_dir)


DATASETS = {"cityscapes": CITYSCAPES, "camvid": CAMVID}


def spec_for(dataset, classes):
    """The dataset a checkpoint was trained for: recorded, or told by its class count (19, 11); else None."""
    if dataset in DATASETS:
        return DATASETS[dataset]
    return next((spec for spec in DATASETS.values() if spec.classes == classes), None)
