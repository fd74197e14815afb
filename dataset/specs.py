"""What differs between Cityscapes and CamVid, as data: the scripts share everything else."""
from dataclasses import dataclass

from dataset import palettes


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

    @property
    def data_dir(self):
        return f"./data/{self.name}"

    @property
    def inform_data_file(self):
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

DATASETS = {"cityscapes": CITYSCAPES, "camvid": CAMVID}


def spec_for(dataset, classes):
    """The dataset a checkpoint was trained for: recorded, or told by its class count (19, 11); else None."""
    if dataset in DATASETS:
        return DATASETS[dataset]
    return next((spec for spec in DATASETS.values() if spec.classes == classes), None)
