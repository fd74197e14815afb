"""CGNet: A Light-weight Context Guided Network for Semantic Segmentation (Wu et al., TIP 2020).

Module names, registration order, concatenation orders, BN eps and initialisation follow the
original release exactly, so that its checkpoints load by name and give its predictions
(see tests/data/cgnet_m3n21_state_dict.txt).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPS = 1e-3


class ConvBNPReLU(nn.Module):
    def __init__(self, nIn, nOut, kSize, stride=1):
        super().__init__()
        padding = (kSize - 1) // 2
        self.conv = nn.Conv2d(nIn, nOut, kSize, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(nOut, eps=BN_EPS)
        self.act = nn.PReLU(nOut)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class BNPReLU(nn.Module):
    def __init__(self, nOut):
        super().__init__()
        self.bn = nn.BatchNorm2d(nOut, eps=BN_EPS)
        self.act = nn.PReLU(nOut)

    def forward(self, x):
        return self.act(self.bn(x))


class Conv(nn.Module):
    def __init__(self, nIn, nOut, kSize, stride=1, bias=False):
        super().__init__()
        padding = (kSize - 1) // 2
        self.conv = nn.Conv2d(nIn, nOut, kSize, stride=stride, padding=padding, bias=bias)

    def forward(self, x):
        return self.conv(x)


class ChannelWiseConv(nn.Module):
    """Depthwise convolution: F_loc, the local feature extractor."""

    def __init__(self, nIn, nOut, kSize, stride=1):
        super().__init__()
        padding = (kSize - 1) // 2
        self.conv = nn.Conv2d(nIn, nOut, kSize, stride=stride, padding=padding, groups=nIn, bias=False)

    def forward(self, x):
        return self.conv(x)


class ChannelWiseDilatedConv(nn.Module):
    """Depthwise dilated convolution: F_sur, the surrounding-context extractor."""

    def __init__(self, nIn, nOut, kSize, stride=1, d=1):
        super().__init__()
        padding = (kSize - 1) // 2 * d
        self.conv = nn.Conv2d(nIn, nOut, kSize, stride=stride, padding=padding, groups=nIn,
                              dilation=d, bias=False)

    def forward(self, x):
        return self.conv(x)


class FGlo(nn.Module):
    """Global context: a squeeze-and-excitation style channel reweighting of the joint feature."""

    def __init__(self, channel, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channel, channel // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(channel // reduction, channel),
            nn.Sigmoid())

    def forward(self, x):
        b, c = x.shape[:2]
        y = self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)
        return x * y


class ContextGuidedBlock_Down(nn.Module):
    """CG block that halves the resolution; no residual (input and output channels differ)."""

    def __init__(self, nIn, nOut, dilation_rate=2, reduction=16):
        super().__init__()
        # Named conv1x1 in the original although it is a 3x3 stride-2 conv; the name is in the checkpoints.
        self.conv1x1 = ConvBNPReLU(nIn, nOut, 3, 2)
        self.F_loc = ChannelWiseConv(nOut, nOut, 3, 1)
        self.F_sur = ChannelWiseDilatedConv(nOut, nOut, 3, 1, dilation_rate)
        self.bn = nn.BatchNorm2d(2 * nOut, eps=BN_EPS)
        self.act = nn.PReLU(2 * nOut)
        self.reduce = Conv(2 * nOut, nOut, 1, 1)
        self.F_glo = FGlo(nOut, reduction)

    def joint_bn(self):
        """For BN folding (model/inference.py): bn acts per channel on cat([F_loc, F_sur])."""
        return self, [self.F_loc.conv, self.F_sur.conv]

    def forward(self, x):
        x = self.conv1x1(x)                                          # (B, C, H/2, W/2)
        joi = torch.cat([self.F_loc(x), self.F_sur(x)], 1)           # (B, 2C, H/2, W/2)
        joi = self.reduce(self.act(self.bn(joi)))                    # (B, C, H/2, W/2)
        return self.F_glo(joi)


class ContextGuidedBlock(nn.Module):
    """CG block: f_loc and f_sur on half the channels, joined, reweighted by f_glo, plus the input."""

    def __init__(self, nIn, nOut, dilation_rate=2, reduction=16):
        super().__init__()
        n = nOut // 2
        self.conv1x1 = ConvBNPReLU(nIn, n, 1, 1)
        self.F_loc = ChannelWiseConv(n, n, 3, 1)
        self.F_sur = ChannelWiseDilatedConv(n, n, 3, 1, dilation_rate)
        self.bn_prelu = BNPReLU(nOut)
        self.F_glo = FGlo(nOut, reduction)

    def joint_bn(self):
        """For BN folding (model/inference.py): bn_prelu.bn acts per channel on cat([F_loc, F_sur])."""
        return self.bn_prelu, [self.F_loc.conv, self.F_sur.conv]

    def forward(self, x):
        y = self.conv1x1(x)                                          # (B, C/2, H, W)
        joi = self.bn_prelu(torch.cat([self.F_loc(y), self.F_sur(y)], 1))  # (B, C, H, W)
        return x + self.F_glo(joi)                                   # global residual


class InputInjection(nn.Module):
    """The input image average-pooled down to a stage's resolution (no parameters)."""

    def __init__(self, downsamplingRatio):
        super().__init__()
        self.pool = nn.ModuleList([nn.AvgPool2d(3, stride=2, padding=1) for _ in range(downsamplingRatio)])

    def forward(self, x):
        for pool in self.pool:
            x = pool(x)
        return x


class Context_Guided_Network(nn.Module):
    """CGNet_M{M}N{N}: M CG blocks at 1/4 resolution, N at 1/8; output (B, classes, H, W).

    head_bias gives the classifier conv a bias, as mmsegmentation's CGNet head has (model/mmseg.py);
    the original's has none, and its checkpoints keep exactly their state_dict."""

    def __init__(self, classes=19, M=3, N=21, dropout_flag=False, head_bias=False):
        super().__init__()
        if M < 1 or N < 1:
            raise ValueError(f"CGNet needs M >= 1 and N >= 1 (got M={M}, N={N})")
        self.level1_0 = ConvBNPReLU(3, 32, 3, 2)
        self.level1_1 = ConvBNPReLU(32, 32, 3, 1)
        self.level1_2 = ConvBNPReLU(32, 32, 3, 1)

        self.sample1 = InputInjection(1)
        self.sample2 = InputInjection(2)

        self.b1 = BNPReLU(32 + 3)

        self.level2_0 = ContextGuidedBlock_Down(32 + 3, 64, dilation_rate=2, reduction=8)
        self.level2 = nn.ModuleList(
            [ContextGuidedBlock(64, 64, dilation_rate=2, reduction=8) for _ in range(M - 1)])
        self.bn_prelu_2 = BNPReLU(128 + 3)

        self.level3_0 = ContextGuidedBlock_Down(128 + 3, 128, dilation_rate=4, reduction=16)
        self.level3 = nn.ModuleList(
            [ContextGuidedBlock(128, 128, dilation_rate=4, reduction=16) for _ in range(N - 1)])
        self.bn_prelu_3 = BNPReLU(256)

        if dropout_flag:
            self.classifier = nn.Sequential(nn.Dropout2d(0.1, False), Conv(256, classes, 1, 1, bias=head_bias))
        else:
            self.classifier = nn.Sequential(Conv(256, classes, 1, 1, bias=head_bias))

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, input):
        output0 = self.level1_2(self.level1_1(self.level1_0(input)))  # (B, 32, H/2, W/2)
        inp1 = self.sample1(input)                                    # (B, 3, H/2, W/2)
        inp2 = self.sample2(input)                                    # (B, 3, H/4, W/4)

        output0_cat = self.b1(torch.cat([output0, inp1], 1))          # (B, 35, H/2, W/2)
        output1_0 = self.level2_0(output0_cat)                        # (B, 64, H/4, W/4)
        output1 = output1_0
        for layer in self.level2:
            output1 = layer(output1)
        output1_cat = self.bn_prelu_2(torch.cat([output1, output1_0, inp2], 1))  # (B, 131, H/4, W/4)

        output2_0 = self.level3_0(output1_cat)                        # (B, 128, H/8, W/8)
        output2 = output2_0
        for layer in self.level3:
            output2 = layer(output2)
        output2_cat = self.bn_prelu_3(torch.cat([output2_0, output2], 1))  # (B, 256, H/8, W/8)

        classifier = self.classifier(output2_cat)                     # (B, classes, H/8, W/8)
        return F.interpolate(classifier, input.shape[2:], mode='bilinear', align_corners=False)
