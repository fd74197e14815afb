"""EncNet, the Context Encoding Network (Zhang et al., CVPR 2018), configured as mmsegmentation's
`encnet_r50-d8` (Cityscapes val 75.67 mIoU at 512x1024, 40k iterations, with ImageNet weights).

- Backbone: torchvision ResNet-50, dilated to output stride 8 (`replace_stride_with_dilation=
  [False, True, True]`). torchvision's first blocks of layer3/layer4 use dilation 1/2, the rest 2/4,
  which is mmseg's `contract_dilation=True`. Unlike mmseg's ResNetV1c, the stem is torchvision's
  single 7x7 conv, not three 3x3 convs, so torchvision ImageNet weights could be loaded. Residual
  BNs start at zero as in mmseg's from-scratch init (`zero_init_residual=True`).
- EncHead (`num_codes=32, use_se_loss=True, add_lateral=False`): 3x3 ConvBNReLU 2048 -> 512 on
  layer4; the encoding module (1x1 ConvBNReLU, Encoding, BN1d over codewords, ReLU, mean over
  codewords); channel attention relu(x + x * sigmoid(fc(e))); Dropout2d(0.1) + 1x1 classifier.
  The SE branch is Linear(512, classes) on the encoded vector.
- Auxiliary FCNHead on layer3: 3x3 ConvBNReLU 1024 -> 256, Dropout2d(0.1), 1x1 classifier.
- Losses (`aux_loss`): 0.2 x BCE of the SE branch against the classes present in each label map,
  0.4 x CE of the auxiliary head. The main CE is the training engine's.
Plain BatchNorm (mmseg uses SyncBN; convert with `nn.SyncBatchNorm.convert_sync_batchnorm` if wanted).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

SE_LOSS_WEIGHT = 0.2
AUX_LOSS_WEIGHT = 0.4


def conv_bn_relu(in_channels, out_channels, kernel_size):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True))


def class_presence(labels, classes, ignore_label):
    """(B, classes) float: 1 where the class occurs in the image's label map (the SE-loss target)."""
    b = labels.shape[0]
    # The ignore label and any value outside 0..classes-1 go to an extra column that is dropped.
    valid = (labels >= 0) & (labels < classes) & (labels != ignore_label)
    idx = torch.where(valid, labels, classes).reshape(b, -1).long()
    present = torch.zeros(b, classes + 1, device=labels.device)
    return present.scatter_(1, idx, 1.0)[:, :classes]


class Encoding(nn.Module):
    """Encoding layer: soft-assigns each of the N feature vectors to K learned codewords with learned
    smoothing factors and aggregates the residuals: e_k = sum_i a_ik (x_i - c_k),
    a_ik = softmax_k(s_k * |x_i - c_k|^2). Output (B, K, C).

    Computed by expanding |x - c|^2 and sum_i a_ik (x_i - c_k) into matrix products, which gives the
    result of mmseg's version without its (B, N, K, C) intermediate (0.5 GB per 512x1024 image).
    """

    def __init__(self, channels, num_codes):
        super().__init__()
        std = 1.0 / (num_codes * channels) ** 0.5
        self.codewords = nn.Parameter(torch.empty(num_codes, channels).uniform_(-std, std))
        self.scale = nn.Parameter(torch.empty(num_codes).uniform_(-1, 0))

    def forward(self, x):
        b, c = x.shape[:2]
        x = x.view(b, c, -1).transpose(1, 2)                          # (B, N, C)
        dist = (x.pow(2).sum(2, keepdim=True)                         # (B, N, K)
                - 2 * x @ self.codewords.t()
                + self.codewords.pow(2).sum(1))
        assignment = F.softmax(self.scale * dist, dim=2)              # (B, N, K)
        # sum_i a_ik x_i - (sum_i a_ik) c_k
        return assignment.transpose(1, 2) @ x - assignment.sum(1).unsqueeze(2) * self.codewords  # (B, K, C)


class EncModule(nn.Module):
    def __init__(self, channels, num_codes):
        super().__init__()
        self.encoding_project = conv_bn_relu(channels, channels, 1)
        self.encoding = nn.Sequential(
            Encoding(channels, num_codes),
            nn.BatchNorm1d(num_codes),
            nn.ReLU(inplace=True))
        self.fc = nn.Sequential(nn.Linear(channels, channels), nn.Sigmoid())

    def forward(self, x):
        encoded = self.encoding(self.encoding_project(x)).mean(dim=1)  # (B, C)
        gamma = self.fc(encoded)[:, :, None, None]                     # (B, C, 1, 1)
        return encoded, F.relu(x + x * gamma)


class EncHead(nn.Module):
    def __init__(self, in_channels, channels, classes, num_codes=32):
        super().__init__()
        self.bottleneck = conv_bn_relu(in_channels, channels, 3)
        self.enc_module = EncModule(channels, num_codes)
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(channels, classes, 1)
        self.se_layer = nn.Linear(channels, classes)

    def forward(self, x):
        encoded, feat = self.enc_module(self.bottleneck(x))
        return self.conv_seg(self.dropout(feat)), self.se_layer(encoded)


class FCNHead(nn.Module):
    """mmseg's auxiliary FCNHead with num_convs=1, concat_input=False."""

    def __init__(self, in_channels, channels, classes):
        super().__init__()
        self.convs = conv_bn_relu(in_channels, channels, 3)
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(channels, classes, 1)

    def forward(self, x):
        return self.conv_seg(self.dropout(self.convs(x)))


class EncNet(nn.Module):
    """Eval: logits (B, classes, H, W). Train: (logits, (se_logits (B, classes), aux_logits (B, classes, H/8, W/8)))."""

    def __init__(self, classes=19, num_codes=32):
        super().__init__()
        self.classes = classes
        from torchvision.models import resnet50  # importing torchvision takes seconds: only when built
        self.backbone = resnet50(weights=None, replace_stride_with_dilation=[False, True, True],
                                 zero_init_residual=True)
        del self.backbone.avgpool, self.backbone.fc
        self.decode_head = EncHead(2048, 512, classes, num_codes)
        self.auxiliary_head = FCNHead(1024, 256, classes)

    def forward(self, input):
        r = self.backbone
        x = r.maxpool(r.relu(r.bn1(r.conv1(input))))                  # (B, 64, H/4, W/4)
        c3 = r.layer3(r.layer2(r.layer1(x)))                          # (B, 1024, H/8, W/8)
        c4 = r.layer4(c3)                                             # (B, 2048, H/8, W/8)
        seg, se = self.decode_head(c4)
        seg = F.interpolate(seg, input.shape[2:], mode="bilinear", align_corners=False)
        if not self.training:
            return seg
        return seg, (se, self.auxiliary_head(c3))

    def aux_loss(self, aux, labels, ignore_label):
        """0.2 x SE loss + 0.4 x auxiliary CE; labels (B, H, W) int64."""
        se, aux_logits = aux
        present = class_presence(labels, self.classes, ignore_label).to(se.dtype)
        se_loss = F.binary_cross_entropy_with_logits(se, present)
        aux_logits = F.interpolate(aux_logits, labels.shape[-2:], mode="bilinear", align_corners=False)
        aux_ce = F.cross_entropy(aux_logits, labels, ignore_index=ignore_label)
        return SE_LOSS_WEIGHT * se_loss + AUX_LOSS_WEIGHT * aux_ce
