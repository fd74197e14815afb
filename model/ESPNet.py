"""ESPNet (Mehta, Rastegari, Caspi, Shapiro, Hajishirzi; ECCV 2018, arXiv 1803.06815), the "ESPNet [21]"
of the CGNet tables: the full network with its light-weight decoder, alpha2 = 2, alpha3 = 8.

ESP module: a 1x1 conv reduces to N/K maps (K = 5; a 3x3 stride-2 conv when downsampling), five
parallel 3x3 dilated convs (d = 1, 2, 4, 8, 16) transform them, and hierarchical feature fusion
adds each output to the sum of the previous ones (d2, d2+d4, ...) before concatenation, which
removes gridding artefacts. Input reinforcement: the image, average-pooled, is concatenated at
1/2 and 1/4. The decoder projects 1/8 and 1/4 features to the class count and upsamples with
2x2 transposed convs.

Module names follow the authors' release (`encoder.level1...`, `level3_C`, `up_l3`, ...), so its
state_dicts load by name. BN eps 1e-3, no conv biases, PyTorch default initialisation, as there.
Inputs of any size work: each upsampled map is cropped to the size of the map it joins (the
encoder rounds sizes up), which is the identity for H, W multiples of 8.
"""
import torch
import torch.nn as nn

from model.CGNet import BNPReLU, Conv, ConvBNPReLU

BN_EPS = 1e-3

# ESPNet's CBR, BR and C are CGNet's ConvBNPReLU, BNPReLU and Conv (same attributes, eps and padding).
CBR, BR, C = ConvBNPReLU, BNPReLU, Conv


class CDilated(nn.Module):
    def __init__(self, nIn, nOut, kSize, stride=1, d=1):
        super().__init__()
        padding = (kSize - 1) // 2 * d
        self.conv = nn.Conv2d(nIn, nOut, kSize, stride=stride, padding=padding, bias=False, dilation=d)

    def forward(self, x):
        return self.conv(x)


def _hff(x, d1, d2, d4, d8, d16):
    """Spatial pyramid of dilated convs with hierarchical feature fusion."""
    add1 = d2(x)
    add2 = add1 + d4(x)
    add3 = add2 + d8(x)
    add4 = add3 + d16(x)
    return torch.cat([d1(x), add1, add2, add3, add4], 1)


class DownSamplerB(nn.Module):
    """Strided ESP module: halves the resolution, no residual."""

    def __init__(self, nIn, nOut):
        super().__init__()
        n = nOut // 5
        n1 = nOut - 4 * n  # d1 takes the remainder so the concatenation has nOut maps
        self.c1 = C(nIn, n, 3, 2)
        self.d1 = CDilated(n, n1, 3, 1, 1)
        self.d2 = CDilated(n, n, 3, 1, 2)
        self.d4 = CDilated(n, n, 3, 1, 4)
        self.d8 = CDilated(n, n, 3, 1, 8)
        self.d16 = CDilated(n, n, 3, 1, 16)
        self.bn = nn.BatchNorm2d(nOut, eps=BN_EPS)
        self.act = nn.PReLU(nOut)

    def forward(self, x):
        y = _hff(self.c1(x), self.d1, self.d2, self.d4, self.d8, self.d16)
        return self.act(self.bn(y))


class DilatedParllelResidualBlockB(nn.Module):
    """ESP module (reduce, split, transform, merge) with a residual connection when `add`."""

    def __init__(self, nIn, nOut, add=True):
        super().__init__()
        n = nOut // 5
        n1 = nOut - 4 * n
        self.c1 = C(nIn, n, 1, 1)
        self.d1 = CDilated(n, n1, 3, 1, 1)
        self.d2 = CDilated(n, n, 3, 1, 2)
        self.d4 = CDilated(n, n, 3, 1, 4)
        self.d8 = CDilated(n, n, 3, 1, 8)
        self.d16 = CDilated(n, n, 3, 1, 16)
        self.bn = BR(nOut)
        self.add = add

    def forward(self, x):
        y = _hff(self.c1(x), self.d1, self.d2, self.d4, self.d8, self.d16)
        if self.add:
            y = x + y
        return self.bn(y)


class InputProjectionA(nn.Module):
    """Input reinforcement: the image average-pooled `samplingTimes` times by 2."""

    def __init__(self, samplingTimes):
        super().__init__()
        self.pool = nn.ModuleList([nn.AvgPool2d(3, stride=2, padding=1) for _ in range(samplingTimes)])

    def forward(self, x):
        for pool in self.pool:
            x = pool(x)
        return x


class ESPNetEncoder(nn.Module):
    """ESPNet-C: alpha2 ESP modules at 1/4, alpha3 at 1/8, a 1x1 classifier at 1/8."""

    def __init__(self, classes, p=2, q=8):
        super().__init__()
        self.level1 = CBR(3, 16, 3, 2)
        self.sample1 = InputProjectionA(1)
        self.sample2 = InputProjectionA(2)
        self.b1 = BR(16 + 3)
        self.level2_0 = DownSamplerB(16 + 3, 64)
        self.level2 = nn.ModuleList([DilatedParllelResidualBlockB(64, 64) for _ in range(p)])
        self.b2 = BR(128 + 3)
        self.level3_0 = DownSamplerB(128 + 3, 128)
        self.level3 = nn.ModuleList([DilatedParllelResidualBlockB(128, 128) for _ in range(q)])
        self.b3 = BR(256)
        self.classifier = C(256, classes, 1, 1)


def _crop(x, like):
    return x[:, :, :like.shape[2], :like.shape[3]]


class ESPNet(nn.Module):
    """ESPNet with the decoder; output (B, classes, H, W)."""

    def __init__(self, classes=19, p=2, q=8):
        super().__init__()
        self.encoder = ESPNetEncoder(classes, p, q)
        self.level3_C = C(128 + 3, classes, 1, 1)
        self.br = nn.BatchNorm2d(classes, eps=BN_EPS)
        self.conv = CBR(19 + classes, classes, 3, 1)  # 19 = 16 + 3 maps of the 1/2 level
        self.up_l3 = nn.Sequential(nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False))
        self.combine_l2_l3 = nn.Sequential(BR(2 * classes),
                                           DilatedParllelResidualBlockB(2 * classes, classes, add=False))
        self.up_l2 = nn.Sequential(nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False), BR(classes))
        self.classifier = nn.ConvTranspose2d(classes, classes, 2, stride=2, bias=False)

    def forward(self, input):
        enc = self.encoder
        output0 = enc.level1(input)                                   # (B, 16, H/2, W/2)
        inp1 = enc.sample1(input)                                     # (B, 3, H/2, W/2)
        inp2 = enc.sample2(input)                                     # (B, 3, H/4, W/4)
        output0_cat = enc.b1(torch.cat([output0, inp1], 1))           # (B, 19, H/2, W/2)

        output1_0 = enc.level2_0(output0_cat)                         # (B, 64, H/4, W/4)
        output1 = output1_0
        for layer in enc.level2:
            output1 = layer(output1)
        output1_cat = enc.b2(torch.cat([output1, output1_0, inp2], 1))  # (B, 131, H/4, W/4)

        output2_0 = enc.level3_0(output1_cat)                         # (B, 128, H/8, W/8)
        output2 = output2_0
        for layer in enc.level3:
            output2 = layer(output2)
        output2_cat = enc.b3(torch.cat([output2_0, output2], 1))      # (B, 256, H/8, W/8)

        output1_C = self.level3_C(output1_cat)                        # (B, classes, H/4, W/4)
        output2_c = _crop(self.up_l3(self.br(enc.classifier(output2_cat))), output1_C)
        comb_l2_l3 = self.up_l2(self.combine_l2_l3(torch.cat([output1_C, output2_c], 1)))
        comb_l2_l3 = _crop(comb_l2_l3, output0_cat)                   # (B, classes, H/2, W/2)
        concat_features = self.conv(torch.cat([comb_l2_l3, output0_cat], 1))
        return _crop(self.classifier(concat_features), input)         # (B, classes, H, W)
