"""LR-ASPP on MobileNetV3-Large (Howard et al., "Searching for MobileNetV3", ICCV 2019), torchvision's build."""
import torch.nn as nn
from torchvision.models.segmentation import lraspp_mobilenet_v3_large


class LRASPP(nn.Module):
    """torchvision's model, randomly initialised, returning the logits (B, classes, H, W) instead of a dict."""

    def __init__(self, classes=19):
        super().__init__()
        self.net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=classes)

    def forward(self, input):
        return self.net(input)["out"]
