"""The original's optimiser recipe: Adam with weight decay and a poly learning rate set every iteration."""
import torch


def poly_lr(base_lr, it, max_it, power=0.9):
    """lr * (1 - it / max_it) ** power, with `it` counted over all epochs (0 at the first iteration)."""
    return base_lr * (1 - it / max_it) ** power


def build_optimizer(model, lr):
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=5e-4)


def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr
