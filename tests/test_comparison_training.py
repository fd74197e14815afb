"""Every comparison network trains, evaluates and tests through the same scripts as CGNet."""
import os

import pytest

import cityscapes_eval
import cityscapes_train
from conftest import train_argv
from utils.errors import UserError


@pytest.fixture(scope="module")
def cs(synthetic):
    return synthetic(n_train=2, n_val=1, n_test=1, size=(32, 64))


def run(cs, out, model, *extra):
    argv = train_argv(cs, out, "--model", model, "--max_epochs", "1", "--seed", "0", *extra)
    return cityscapes_train.main(cityscapes_train.get_args_parser().parse_args(argv))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["ENet", "ESPNet", "LRASPP", "EncNet"])
def test_one_epoch_train_and_eval_through_the_scripts(cs, tmp_path, model):
    summary = run(cs, tmp_path, model)
    assert os.path.basename(summary["run_dir"]) == f"{model}_bs2cpu_ontrain"
    ckpt = os.path.join(summary["run_dir"], "model_1.pth")
    result = cityscapes_eval.main(cityscapes_eval.get_args_parser().parse_args([
        "--model", model, "--data_dir", cs, "--val_data_list", f"{cs}/cityscapes_val_list.txt",
        "--inform_data_file", f"{tmp_path}/inform.pkl", "--resume", ckpt, "--save_seg_dir", str(tmp_path / "v"),
        "--num_workers", "0", "--cuda", "false"]))
    assert 0 <= result["mIoU"] <= 1


@pytest.mark.slow
def test_a_checkpoint_of_another_model_is_refused(cs, tmp_path):
    summary = run(cs, tmp_path, "ENet")
    with pytest.raises(UserError, match="trained with --model ENet"):
        cityscapes_eval.main(cityscapes_eval.get_args_parser().parse_args([
            "--model", "ESPNet", "--data_dir", cs, "--val_data_list", f"{cs}/cityscapes_val_list.txt",
            "--inform_data_file", f"{tmp_path}/inform.pkl", "--resume", os.path.join(summary["run_dir"], "checkpoint.pth"),
            "--save_seg_dir", str(tmp_path / "v"), "--num_workers", "0", "--cuda", "false"]))
