"""Confusion matrix on the device and the official Cityscapes IoU definition."""
import torch
import torch.distributed as dist


class ConfusionMatrix:
    def __init__(self, classes, ignore_label, device):
        self.classes, self.ignore_label = classes, ignore_label
        self.mat = torch.zeros(classes, classes, dtype=torch.int64, device=device)

    def update(self, pred, target):
        """pred, target: integer tensors of the same shape; ignore-label pixels are not counted.

        Every shape here is fixed by the input's size, never by its values: pixels that are not counted
        go to one extra bin, which is dropped. A boolean mask (target[k]) or bincount (it reads the
        largest index) would make the GPU wait for the host at every training step.
        """
        target, pred = target.reshape(-1).long(), pred.reshape(-1).long()
        n = self.classes
        counted = (target != self.ignore_label) & (target >= 0) & (target < n) & (pred >= 0) & (pred < n)
        idx = torch.where(counted, target * n + pred, n * n)
        bins = torch.zeros(n * n + 1, dtype=torch.int64, device=idx.device)
        bins.index_add_(0, idx, torch.ones_like(idx))
        self.mat += bins[:-1].view(n, n)

    def all_reduce(self):
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.mat)

    def compute(self):
        """Per-class IoU = TP / (TP + FP + FN); NaN for classes absent from both GT and prediction,
        and left out of the mean (the official evaluator's definition)."""
        mat = self.mat.double().cpu()
        tp = mat.diag()
        denom = mat.sum(0) + mat.sum(1) - tp
        iou = torch.where(denom > 0, tp / denom.clamp(min=1), torch.tensor(float("nan"), dtype=torch.float64))
        valid = ~iou.isnan()
        miou = iou[valid].mean().item() if valid.any() else float("nan")
        total = mat.sum().item()
        acc = tp.sum().item() / total if total else float("nan")
        return {"mIoU": miou, "IoU": iou.tolist(), "pixel_accuracy": acc}
