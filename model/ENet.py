"""ENet (Paszke, Chaurasia, Kim, Culurciello 2016, arXiv 1606.02147), the "ENet [23]" of the CGNet tables.

Built from Table 1 of the paper and the authors' Torch code: an initial block, then
bottlenecks 1.x (64 ch, 1/4), 2.x and 3.x (128 ch, 1/8), 4.x (64 ch, 1/4), 5.x (16 ch, 1/2) and
a full (transposed) convolution to the input size. A bottleneck is a 1x1 projection to a quarter
of the output channels, a main conv (regular 3x3, dilated 3x3, asymmetric 5x1 + 1x5, or a stride-2
transposed 3x3 when upsampling), a 1x1 expansion, spatial dropout, added to the main branch.
Projections have no bias, main convs do; BN eps is 1e-3 as in the Torch code.
Encoder activations are PReLU, decoder activations ReLU.

Inputs of any size work: pooling uses ceil mode, the 2x2 stride-2 projection of a downsampling
bottleneck sees the input padded to even size, unpooling and transposed convs are given the size
to restore, and the last transposed conv is cropped to the input size. For H, W multiples of 8
this is the plain network of the paper.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPS = 1e-3


class InitialBlock(nn.Module):
    """3x3 stride-2 conv (13 maps) beside a 2x2 max pool of the image (3 maps), concatenated: 16 maps."""

    def __init__(self, out_channels=16):
        super().__init__()
        self.conv = nn.Conv2d(3, out_channels - 3, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.act = nn.PReLU(out_channels)

    def forward(self, x):
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))  # (B, 16, H/2, W/2)


class Bottleneck(nn.Module):
    """Regular, dilated or asymmetric bottleneck (same size in and out); PReLU."""

    def __init__(self, channels, kind="regular", dilation=1, dropout=0.1):
        super().__init__()
        internal = channels // 4
        if kind == "asymmetric":
            # As in the Torch code: the first of the pair has no bias, BN follows the pair.
            main = [nn.Conv2d(internal, internal, (5, 1), padding=(2, 0), bias=False),
                    nn.Conv2d(internal, internal, (1, 5), padding=(0, 2))]
        else:
            main = [nn.Conv2d(internal, internal, 3, padding=dilation, dilation=dilation)]
        self.ext = nn.Sequential(
            nn.Conv2d(channels, internal, 1, bias=False),
            nn.BatchNorm2d(internal, eps=BN_EPS),
            nn.PReLU(internal),
            *main,
            nn.BatchNorm2d(internal, eps=BN_EPS),
            nn.PReLU(internal),
            nn.Conv2d(internal, channels, 1, bias=False),
            nn.BatchNorm2d(channels, eps=BN_EPS),
            nn.Dropout2d(dropout))
        self.act = nn.PReLU(channels)

    def forward(self, x):
        return self.act(x + self.ext(x))


class DownsamplingBottleneck(nn.Module):
    """Halves the resolution. Main branch: max pool (indices kept for the decoder), zero channels
    appended. Extension: the 1x1 projection becomes a 2x2 stride-2 conv."""

    def __init__(self, in_channels, out_channels, dropout=0.1):
        super().__init__()
        internal = out_channels // 4
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True, return_indices=True)
        self.ext = nn.Sequential(
            nn.Conv2d(in_channels, internal, 2, stride=2, bias=False),
            nn.BatchNorm2d(internal, eps=BN_EPS),
            nn.PReLU(internal),
            nn.Conv2d(internal, internal, 3, padding=1),
            nn.BatchNorm2d(internal, eps=BN_EPS),
            nn.PReLU(internal),
            nn.Conv2d(internal, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels, eps=BN_EPS),
            nn.Dropout2d(dropout))
        self.act = nn.PReLU(out_channels)
        self.extra_channels = out_channels - in_channels

    def forward(self, x):
        h, w = x.shape[2:]
        main, indices = self.pool(x)                                  # (B, Cin, ceil(H/2), ceil(W/2))
        main = F.pad(main, (0, 0, 0, 0, 0, self.extra_channels))      # zero maps up to Cout
        ext = self.ext(F.pad(x, (0, w % 2, 0, h % 2)))                # padded so the 2x2 conv gives ceil too
        return self.act(main + ext), indices


class UpsamplingBottleneck(nn.Module):
    """Doubles the resolution. Main branch: 1x1 conv + BN, then max unpooling with the indices of the
    matching downsampling bottleneck. Extension: 1x1, stride-2 transposed 3x3, 1x1. ReLU, no dropout."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        internal = out_channels // 4
        self.main_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels, eps=BN_EPS))
        self.unpool = nn.MaxUnpool2d(2, stride=2)
        self.ext_proj = nn.Sequential(
            nn.Conv2d(in_channels, internal, 1, bias=False),
            nn.BatchNorm2d(internal, eps=BN_EPS),
            nn.ReLU(inplace=True))
        self.ext_up = nn.ConvTranspose2d(internal, internal, 3, stride=2, padding=1, output_padding=1)
        self.ext_out = nn.Sequential(
            nn.BatchNorm2d(internal, eps=BN_EPS),
            nn.ReLU(inplace=True),
            nn.Conv2d(internal, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels, eps=BN_EPS))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x, indices, size):
        main = self.unpool(self.main_conv(x), indices, output_size=size)
        ext = self.ext_out(self.ext_up(self.ext_proj(x), output_size=size))
        return self.act(main + ext)


class DecoderBottleneck(nn.Module):
    """Regular bottleneck of the decoder: ReLU and no dropout."""

    def __init__(self, channels):
        super().__init__()
        internal = channels // 4
        self.ext = nn.Sequential(
            nn.Conv2d(channels, internal, 1, bias=False),
            nn.BatchNorm2d(internal, eps=BN_EPS),
            nn.ReLU(inplace=True),
            nn.Conv2d(internal, internal, 3, padding=1),
            nn.BatchNorm2d(internal, eps=BN_EPS),
            nn.ReLU(inplace=True),
            nn.Conv2d(internal, channels, 1, bias=False),
            nn.BatchNorm2d(channels, eps=BN_EPS))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(x + self.ext(x))


def _stage23(dropout):
    """Bottlenecks x.1 to x.8 of stages 2 and 3."""
    return nn.Sequential(
        Bottleneck(128, dropout=dropout),
        Bottleneck(128, "dilated", 2, dropout),
        Bottleneck(128, "asymmetric", dropout=dropout),
        Bottleneck(128, "dilated", 4, dropout),
        Bottleneck(128, dropout=dropout),
        Bottleneck(128, "dilated", 8, dropout),
        Bottleneck(128, "asymmetric", dropout=dropout),
        Bottleneck(128, "dilated", 16, dropout))


class ENet(nn.Module):
    """ENet; output (B, classes, H, W)."""

    def __init__(self, classes=19):
        super().__init__()
        self.initial = InitialBlock(16)
        # Spatial dropout 0.01 in stage 1, 0.1 from bottleneck2.0 on (Section 4 of the paper).
        self.down1 = DownsamplingBottleneck(16, 64, dropout=0.01)
        self.stage1 = nn.Sequential(*[Bottleneck(64, dropout=0.01) for _ in range(4)])
        self.down2 = DownsamplingBottleneck(64, 128, dropout=0.1)
        self.stage2 = _stage23(0.1)
        self.stage3 = _stage23(0.1)
        self.up4 = UpsamplingBottleneck(128, 64)
        self.stage4 = nn.Sequential(DecoderBottleneck(64), DecoderBottleneck(64))
        self.up5 = UpsamplingBottleneck(64, 16)
        self.stage5 = DecoderBottleneck(16)
        self.fullconv = nn.ConvTranspose2d(16, classes, 2, stride=2)

    def forward(self, input):
        x = self.initial(input)                                       # (B, 16, H/2, W/2)
        size1 = x.shape[2:]
        x, indices1 = self.down1(x)                                   # (B, 64, H/4, W/4)
        x = self.stage1(x)
        size2 = x.shape[2:]
        x, indices2 = self.down2(x)                                   # (B, 128, H/8, W/8)
        x = self.stage3(self.stage2(x))
        x = self.stage4(self.up4(x, indices2, size2))                 # (B, 64, H/4, W/4)
        x = self.stage5(self.up5(x, indices1, size1))                 # (B, 16, H/2, W/2)
        x = self.fullconv(x)                                          # (B, classes, 2*ceil(H/2), 2*ceil(W/2))
        return x[:, :, :input.shape[2], :input.shape[3]]
