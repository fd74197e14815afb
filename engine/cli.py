"""Command lines of the original scripts, built from a DatasetSpec."""
import argparse
import os

from dataset.custom import read_description
from dataset.specs import DatasetSpec, spec_from_description
from engine.published import PUBLISHED
from model import MODELS
from utils.args import positive_float, positive_int, non_negative_int, scale_list, seed_int, size_pair, str2bool
from utils.device import select_device
from utils.errors import UserError
from utils.files import model_file_kind

# Here, not in engine/segmenter.py, so that the training parser loads no inference module.
MAX_SIDE = 2048  # --max_side: the long side of Cityscapes, the scale CGNet was trained for


def _common(parser, spec, gpus, auto_workers=False):
    """Flags every script of the original has."""
    parser.add_argument("--model", default="CGNet", choices=MODELS, help="network to use")
    parser.add_argument("--dataset", default=spec.name, choices=[spec.name],
                        help="dataset name; also the sub-folder of checkpoints and results")
    parser.add_argument("--data_dir", default=spec.data_dir,
                        help="dataset root; the paths in the list files are relative to it")
    parser.add_argument("--dataset_list", default=spec.dataset_list,
                        help="list file inside --data_dir used once to compute the mean and class weights")
    parser.add_argument("--inform_data_file", default=spec.inform_data_file,
                        help="where those statistics are cached (computed if absent)")
    parser.add_argument("--classes", type=positive_int, default=spec.classes, help="number of classes")
    parser.add_argument("--ignore_label", type=int, default=spec.ignore_label,
                        help="label value that is not trained on or scored")
    parser.add_argument("--M", type=positive_int, default=3, help="CG blocks at 1/4 resolution (stage 2)")
    parser.add_argument("--N", type=positive_int, default=21, help="CG blocks at 1/8 resolution (stage 3)")
    parser.add_argument("--num_workers", type=non_negative_int, default=None if auto_workers else min(4, os.cpu_count() or 1),
                        help="data-loading worker processes (0 loads in the main process)"
                             + ("; default: 1 on the CPU when the decoded images fit in memory, else min(4, CPUs)"
                                if auto_workers else ""))
    parser.add_argument("--scaleIn", type=int, default=1, choices=[1],
                        help="kept so the original command lines run; as in the original it must be 1")
    parser.add_argument("--cuda", type=str2bool, default=True,
                        help="use GPUs if there are any (true/false); without a visible GPU the CPU is used")
    parser.add_argument("--gpus", default=gpus, type=str,
                        help="comma-separated GPU ids, e.g. 0,1; '' runs on the CPU")


def train_parser(spec):
    p = argparse.ArgumentParser(description=f"Train CGNet on {spec.name} with the original recipe "
                                f"(Adam, poly LR, random scale/crop/flip, weighted cross-entropy).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _common(p, spec, spec.gpus, auto_workers=True)
    p.add_argument("--train_data_list", default=spec.train_list, help="list of training image/label pairs")
    p.add_argument("--val_data_list", default=spec.val_list, help="list used for validation mIoU")
    p.add_argument("--train_type", default=spec.train_type,
                   help="a tag for the run folder, e.g. ontrain or ontrainval")
    p.add_argument("--max_epochs", type=positive_int, default=spec.max_epochs, help="epochs to train")
    p.add_argument("--input_size", type=size_pair, default=spec.input_size, help="training crop H,W")
    p.add_argument("--random_mirror", type=str2bool, default=True, help="random horizontal flips")
    p.add_argument("--random_scale", type=str2bool, default=True, help="random scaling 0.5..2.0")
    p.add_argument("--batch_size", type=positive_int, default=spec.batch_size,
                   help="total batch size over all GPUs/processes")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="initial learning rate")
    p.add_argument("--savedir", default="./checkpoint/", help="checkpoints go to SAVEDIR/DATASET/RUN_NAME/")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", default=None,
                       help="checkpoint to continue from, or 'auto' for the run folder's checkpoint.pth if any")
    start.add_argument("--weights", default=None,
                       help="start a new run (epoch 0, fresh optimizer and LR schedule) from the weights of this "
                            "checkpoint (ours, the original release's, mmsegmentation's) or of a published one by "
                            f"name ({', '.join(PUBLISHED)}: downloaded to tools/download_weights.py's path once, "
                            "sha256 checked); with another class count the classifier starts fresh (fine-tuning, "
                            "transfer)")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in a run folder that holds an earlier run's checkpoints, deleting them "
                        "(without it such a run is refused)")
    p.add_argument("--logFile", default="log.txt", help="name of the log file inside the run folder")
    p.add_argument("--seed", type=seed_int, default=None,
                   help="random seed (printed and stored; with it a CPU run is repeatable); default: random")
    p.add_argument("--val_interval", type=positive_int, default=50,
                   help="validate every this many epochs (and after the last)")
    p.add_argument("--amp", default=None, choices=["none", "bf16", "fp16"],
                   help="mixed-precision training (fp16 with a gradient scaler; the loss stays fp32); none keeps "
                        "the original's fp32; default: bf16 for a compiled step on a CPU with native bf16 "
                        "(avx512_bf16 or AMX), else none")
    p.add_argument("--channels_last", type=str2bool, default=None,
                   help="channels-last memory format for training (true/false); default: on on the CPU, except for "
                        "an uncompiled bf16 step")
    p.add_argument("--compile", type=str2bool, default=None,
                   help="torch.compile the training step, once per process (true/false); default: on on the CPU")
    p.add_argument("--plain", type=str2bool, default=False,
                   help="the original's training: eager fp32, NCHW, images decoded every epoch (to measure what "
                        "the default gains)")
    p.add_argument("--sync_bn", type=str2bool, default=False,
                   help="BatchNorm statistics over all GPUs of a multi-GPU run (true/false); needs GPUs")
    return p


def eval_parser(spec, list_flag, list_default, save_default, description, labelled=True):
    """The flags of the evaluation (labelled list) and test scripts."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _common(p, spec, "0")  # one GPU, as the original's help says: evaluation runs in one process
    p.add_argument(list_flag, default=list_default, help="list of images (and labels) to run on")
    p.add_argument("--batch_size", type=positive_int, default=1,
                   help="images per forward pass (all images must have the same size when > 1)")
    p.add_argument("--resume", default=spec.resume_eval if list_flag == "--val_data_list" else spec.resume_test,
                   help="checkpoint to evaluate (required to exist): .pth, or an exported .onnx/.xml (CPU)")
    p.add_argument("--save_seg_dir", default=save_default, help="where prediction PNGs are written")
    if labelled:
        p.add_argument("--metrics", default=None, metavar="FILE",
                       help="write the metrics (per-class IoU, mIoU, pixel accuracy, checkpoint, list) to this JSON "
                            "file and no prediction PNGs (--save_seg_dir is then not used)")
    p.add_argument("--overlay", type=str2bool, default=False,
                   help="also write {name}_overlay.png: the colour mask blended on the image")
    p.add_argument("--panel", type=str2bool, default=False,
                   help="also write {name}_panel.png: input | prediction | ground truth (when labelled)")
    p.add_argument("--compile", type=str2bool, default=False,
                   help="torch.compile the (BN-folded, channels-last) model: exact, faster after a warm-up")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"],
                   help="autocast inference in bf16/fp16: faster, not bit-exact")
    p.add_argument("--multi_scale", type=scale_list, default=None,
                   help="comma-separated scales, e.g. 0.5,0.75,1.0,1.25,1.5,1.75: average the softmax over them")
    p.add_argument("--flip", type=str2bool, default=False, help="also average over horizontally flipped inputs")
    p.add_argument("--plain", type=str2bool, default=False,
                   help="the plain loop of the original (eager fp32, argmax on the host, synchronous PNG "
                        "writes, no loader workers), to measure what the fast path gains")
    return p


def custom_spec(data_dir):
    """The DatasetSpec of a folder prepared by tools/prepare_dataset.py; a UserError says how to prepare it."""
    return spec_from_description(read_description(data_dir), data_dir)


# For --help and the error of a missing or unprepared --data_dir: main() then says what to do.
UNPREPARED = DatasetSpec(name="custom", classes=2, ignore_label=255, class_names=("class_0", "class_1"),
                         palette=((0, 0, 0), (128, 0, 0)), input_size="360,360", batch_size=8, max_epochs=300,
                         gpus="0", train_type="ontrain", train_list="", val_list="", test_list="",
                         dataset_list="", resume_eval="", resume_test="")


def spec_of_argv(argv):
    """The spec whose defaults the custom scripts' parser shows: --data_dir is read first (parse_known_args),
    its description gives the classes, lists and training defaults; UNPREPARED when it has none."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--data_dir", default=None)
    data_dir = pre.parse_known_args(argv)[0].data_dir
    try:
        return custom_spec(data_dir) if data_dir else UNPREPARED
    except UserError:  # reported by main() with the parsed flags, after argparse had its say
        return UNPREPARED


def load_options(args):
    """engine.backend.load()'s keywords from the flags of a script that runs the model file --resume (the eval/test
    scripts, tools/segment.py, tools/webui.py): the one place those flags become them. A GPU is picked (--cuda,
    --gpus) for a checkpoint only: an exported file runs on the CPU."""
    checkpoint = model_file_kind(args.resume) == "checkpoint"
    return {"device": select_device(args)[0] if args.cuda and checkpoint else "cpu",
            "mode": "plain" if args.plain else "compile" if args.compile else "fast",
            "amp": args.amp, "inform": args.inform_data_file, "flag": "--resume"}


def segmenter_options(args):
    """engine.segmenter.load_segmenter()'s keywords from the flags segmenter_flags() adds."""
    return {"max_side": args.max_side, "tile": args.tile, **load_options(args)}


def segmenter_flags(parser):
    """The flags of load_segmenter(): what tools/segment.py and tools/webui.py take to run a model file."""
    parser.add_argument("--resume", required=True,
                        help="checkpoint: ours (self-contained), the original release's or mmsegmentation's; or an "
                             "exported .onnx/.xml (runs on the CPU)")
    parser.add_argument("--max_side", type=non_negative_int, default=MAX_SIDE,
                        help="larger images are shrunk to this long side for the network, the predictions resized "
                             "back to the original size (bounds memory; 2048 keeps Cityscapes images as they are); "
                             "0: no cap")
    parser.add_argument("--tile", type=str2bool, nargs="?", const=True, default=False,
                        help="segment at full resolution in overlapping tiles instead (slower; memory still bounded)")
    parser.add_argument("--inform_data_file", default=None,
                        help="statistics file whose mean to use for a checkpoint that records none (the original "
                             "release's); 19-class checkpoints default to the release's Cityscapes mean")
    parser.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"],
                        help="autocast inference (OpenVINO's bf16 for an .xml): faster, not bit-exact")
    parser.add_argument("--compile", type=str2bool, default=False, help="torch.compile the model (exact)")
    parser.add_argument("--plain", type=str2bool, default=False,
                        help="the original's eager fp32 forward, to measure what the default path gains")
    parser.add_argument("--cuda", type=str2bool, default=True, help="use a GPU if one is visible (true/false)")
    parser.add_argument("--gpus", default="0", help="GPU id to use; '' runs on the CPU")
