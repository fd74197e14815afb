"""Confusion matrix on the device and the official Cityscapes IoU definition."""
import torch
import torch.distributed as dist


class ConfusionMatrix:
    def __init__(self, classes, ignore_label, device):
        self.classes, self.ignore_label = classes, ignore_label
        self.mat = torch.zeros(classes, classes, dtype=torch.int64, device=device)

    def update(self, pred, target):
        """pred, target: integer tensors of the same shape; ignore-label pixels are not counted."""
        k = (target != self.ignore_label) & (target >= 0) & (target < self.classes)
        idx = target[k] * self.classes + pred[k]
        self.mat += torch.bincount(idx, minlength=self.classes ** 2).view(self.classes, self.classes)

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
