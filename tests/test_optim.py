import pytest
import torch

from utils.optim import build_optimizer, poly_lr, set_lr


def test_poly_lr_follows_the_formula():
    assert poly_lr(1e-3, 0, 100) == 1e-3
    assert poly_lr(1e-3, 50, 100) == pytest.approx(1e-3 * 0.5 ** 0.9)
    assert poly_lr(1e-3, 100, 100) == 0
    values = [poly_lr(1e-3, it, 10) for it in range(11)]
    assert values == sorted(values, reverse=True)


def test_adam_recipe_and_set_lr():
    opt = build_optimizer(torch.nn.Linear(2, 2), 1e-3)
    g = opt.param_groups[0]
    assert isinstance(opt, torch.optim.Adam)
    assert (g["lr"], g["betas"], g["eps"], g["weight_decay"]) == (1e-3, (0.9, 0.999), 1e-8, 5e-4)
    set_lr(opt, 0.5)
    assert opt.param_groups[0]["lr"] == 0.5
