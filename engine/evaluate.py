"""Evaluation and testing, shared by cityscapes_eval.py, camvid_test.py, cityscapes_test.py and custom_test.py."""
import contextlib
import math
import os
import zipfile

import cv2
import numpy as np
import torch

from dataset.classes_file import background_class
from dataset.datasets import EvalDataset, image_header, make_loader, read_list
from engine.backend import load
from engine.checkpoint import network_of
from model.inference import multiscale_probs
from utils.log import log
from utils.errors import UserError
from utils.files import (BackgroundWriter, atomic_write, check_writable_dir, check_writable_file, save_json, save_png,
                         staged_folder)
from utils.metric import ConfusionMatrix
from utils.progress import bar
from utils.vis import confusion_image, overlay, panel


def check_outputs(args, seg_dir):
    """Before any work: the checkpoint exists and the picture folder (None: no pictures) can be written."""
    if not os.path.exists(args.resume):
        raise UserError(f"--resume {args.resume} does not exist; give the checkpoint to evaluate "
                        f"(see docs/training.md, 'Released checkpoints').")
    if seg_dir:
        check_writable_dir(seg_dir, "--save_seg_dir")
    elif (args.overlay or args.panel) and getattr(args, "metrics", None):
        raise UserError("--overlay/--panel write pictures but --metrics writes the metrics alone; drop one of them "
                        "(--save_seg_dir without --metrics writes pictures and metrics.json).")
    elif args.overlay or args.panel:
        raise UserError("--overlay/--panel need --save_seg_dir, the folder to write the pictures to.")


def staged(folder):
    """staged_folder(folder), or None for no folder: outputs appear all together or not at all."""
    return staged_folder(folder, log) if folder else contextlib.nullcontext(None)


def save_pictures(args, palette, folder, sample, pred, gt, background=None):
    """{name}_overlay.png / {name}_panel.png beside the predictions (runs in a writer thread)."""
    rgb = cv2.imread(sample.image, cv2.IMREAD_COLOR)[:, :, ::-1]
    if args.overlay:
        save_png(os.path.join(folder, f"{sample.name}_overlay.png"), overlay(rgb, pred, palette, background=background))
    if args.panel:
        save_png(os.path.join(folder, f"{sample.name}_panel.png"),
                 panel(rgb, pred, palette, gt, args.ignore_label))


def eval_classes(weights, spec):
    """(class names, palette) of the outputs: the checkpoint's when it records them (a dataset of your own,
    fine-tuned classes), else the dataset's."""
    names = weights.class_names or list(spec.class_names)
    palette = weights.palette or [list(c) for c in spec.palette]
    return names, palette


def run_inference(args, spec, list_flag, with_label, write, picture_dir=None):
    """Predict every image of the list; write(writer, sample, pred uint8 (H, W), gt or None, palette) queues
    its PNGs on the background writer, --overlay/--panel pictures go to picture_dir. The caller has run
    check_outputs. Returns (samples, confusion matrix or None, class names)."""
    backend = load(args.resume, args, network=network_of(args),
                   data=(args.data_dir, args.dataset_list, args.classes, args.ignore_label))
    device = backend.device
    names, palette = eval_classes(backend.weights, spec)
    samples = read_list(getattr(args, list_flag.lstrip("-")), args.data_dir, with_label, list_flag)
    if args.batch_size > 1:  # images are stacked into one tensor: they must share a size
        sizes = {}
        for s in samples:
            sizes.setdefault(image_header(s.image)[:2], s.image)
        if len(sizes) > 1:
            a, b = list(sizes.values())[:2]
            raise UserError(f"--batch_size {args.batch_size} stacks images, but {list_flag} names images of "
                            f"different sizes (e.g. {a} and {b}); use --batch_size 1.")
    dataset = EvalDataset(samples, backend.mean, args.classes, args.ignore_label)
    loader = make_loader(dataset, args.batch_size, 0 if args.plain else args.num_workers, device)

    conf = ConfusionMatrix(args.classes, args.ignore_label, device) if with_label else None
    writer = BackgroundWriter(0 if args.plain else 2)
    progress = bar(len(samples), "evaluating" if with_label else "testing", "images")
    try:
        for images, label, indices in loader:
            if args.plain:  # the original's loop: logits to the host, argmax there
                preds = backend.logits(images.to(device)).cpu().numpy().argmax(1).astype(np.uint8)
                pred = torch.from_numpy(preds).long().to(device)
            elif args.multi_scale or args.flip:
                pred = multiscale_probs(backend.logits, images.to(device, non_blocking=True),
                                        args.multi_scale or [1.0], args.flip, args.classes).argmax(1)
            else:
                pred = backend.labels(images)
            if conf is not None:
                conf.update(pred, label.to(pred.device, non_blocking=True))
            if not args.plain:
                preds = pred.to(torch.uint8).cpu().numpy()
            gts = label.to(torch.uint8).numpy() if with_label else [None] * len(preds)
            for p, gt, i in zip(preds, gts, indices.tolist()):
                write(writer, samples[i], p, gt, palette)
                if args.overlay or args.panel:
                    writer.submit(save_pictures, args, palette, picture_dir, samples[i], p, gt, background_class(names))
            progress.update(len(preds))
    finally:
        writer.close()
        progress.close()
    return samples, conf, names


def evaluate(args, spec, list_flag):
    """Per-class IoU, mean IoU, pixel accuracy and the confusion matrix over a labelled list; with
    --save_seg_dir also `{name}.png` (class ids), `{name}_color.png`, metrics.json and confusion.png; with
    --metrics FILE that JSON alone.

    The PNGs are staged and appear only when every image has been predicted: a bad label found at the
    end of the list leaves no half set of predictions beside no metrics.json."""
    seg_dir = None if args.metrics else args.save_seg_dir
    check_outputs(args, seg_dir)
    if args.metrics:
        check_writable_file(args.metrics, "--metrics")
    with staged(seg_dir) as stage:
        def write(writer, sample, pred, gt, palette):
            if stage:
                writer.submit(save_png, os.path.join(stage, f"{sample.name}.png"), pred)
                writer.submit(save_png, os.path.join(stage, f"{sample.name}_color.png"), pred, palette)
        samples, conf, names = run_inference(args, spec, list_flag, True, write, stage)
        metrics = conf.compute()
        print_table(metrics, names)
        matrix = conf.mat.cpu().tolist()
        result = {"checkpoint": args.resume, "list": getattr(args, list_flag.lstrip("-")), "images": len(samples),
                  "mIoU": metrics["mIoU"], "pixel_accuracy": metrics["pixel_accuracy"],
                  "IoU": {n: (None if math.isnan(v) else v) for n, v in zip(names, metrics["IoU"])},
                  "confusion": {"classes": names, "rows": "ground truth", "columns": "prediction",
                                "pixels": matrix}}
        if stage:
            save_json(os.path.join(stage, "metrics.json"), result)
            save_png(os.path.join(stage, "confusion.png"), confusion_image(matrix, names))
    if seg_dir:
        log(f"predictions, metrics.json and confusion.png written to {seg_dir}")
    if args.metrics:
        save_json(args.metrics, result)
        log(f"metrics written to {args.metrics}")
    return result


def test(args, spec, list_flag):
    """Predict an unlabelled list: `{name}_color.png` to --save_seg_dir, and the server's labelId
    `{name}.png` to --submit_dir (one PNG per image, nothing else, as the evaluator expects); both sets
    appear only once every image has been predicted."""
    if not args.save_seg_dir and not args.submit_dir:
        raise UserError("--save_seg_dir and --submit_dir are both empty, so there is nothing to write; give a folder "
                        "to at least one of them ('' leaves out that set of PNGs).")
    if args.zip and not args.submit_dir:
        raise UserError("--zip packs the PNGs of --submit_dir, which is empty; give --submit_dir a folder or drop "
                        "--zip.")
    check_outputs(args, args.save_seg_dir)
    if args.submit_dir:
        check_writable_dir(args.submit_dir, "--submit_dir")
    if args.zip:
        check_writable_file(args.zip, "--zip")
    to_label_id = np.asarray(spec.label_ids, np.uint8)
    with staged(args.save_seg_dir) as seg, staged(args.submit_dir) as submit:
        def write(writer, sample, pred, gt, palette):  # '' for either folder leaves its PNGs out
            if seg:
                writer.submit(save_png, os.path.join(seg, f"{sample.name}_color.png"), pred, palette)
            if submit:
                writer.submit(save_png, os.path.join(submit, f"{sample.name}.png"), to_label_id[pred])
        samples, _, _ = run_inference(args, spec, list_flag, False, write, seg)
    log("; ".join(([f"colour predictions in {args.save_seg_dir}"] if args.save_seg_dir else [])
                  + ([f"submission PNGs (labelIds) in {args.submit_dir}"] if args.submit_dir else [])))
    result = {"images": len(samples), "save_seg_dir": args.save_seg_dir, "submit_dir": args.submit_dir}
    if args.zip:
        result["zip"] = make_zip(args.submit_dir, [f"{s.name}.png" for s in samples], args.zip)
        log(f"submission archive {result['zip']}")
    return result


def predict_list(args, spec, list_flag):
    """Predict an unlabelled list of a dataset of your own: `{name}.png` (class ids) and `{name}_color.png` in
    the dataset's colours to --save_seg_dir, appearing only once every image has been predicted."""
    check_outputs(args, args.save_seg_dir)
    with staged(args.save_seg_dir) as stage:
        def write(writer, sample, pred, gt, palette):
            writer.submit(save_png, os.path.join(stage, f"{sample.name}.png"), pred)
            writer.submit(save_png, os.path.join(stage, f"{sample.name}_color.png"), pred, palette)
        samples, _, _ = run_inference(args, spec, list_flag, False, write, stage)
    log(f"class-id and colour predictions of {len(samples)} images in {args.save_seg_dir} (the list has no masks, "
        f"so nothing is scored)")
    return {"images": len(samples), "save_seg_dir": args.save_seg_dir}


def print_table(metrics, class_names):
    lines = [f"{'class':<16}{'IoU':>8}"]
    for name, iou in zip(class_names, metrics["IoU"]):
        lines.append(f"{name:<16}{'n/a' if math.isnan(iou) else f'{iou * 100:.2f}':>8}")
    lines.append(f"{'mean IoU':<16}{metrics['mIoU'] * 100:>8.2f}")
    lines.append(f"{'pixel accuracy':<16}{metrics['pixel_accuracy'] * 100:>8.2f}")
    log("\n".join(lines))


def make_zip(folder, names, path):
    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for name in names:
                z.write(os.path.join(folder, name), name)
    atomic_write(path, write)
    return path
