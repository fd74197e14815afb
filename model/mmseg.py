"""mmsegmentation's CGNet checkpoints (configs/cgnet/): their parameter names mapped onto the original's.

mmsegmentation's CGNet M3N21 is the original network under other names (its backbone is
mmseg/models/backbones/cgnet.py, same blocks, same concatenation orders, BN eps 1e-3), with one
difference: its head (an FCNHead without convs) is a 1x1 conv WITH a bias, built here with
head_bias=True. Its released files hold {"meta", "state_dict", "optimizer"}.
"""
import re

import torch

from model import CGNet

# img_norm_cfg of mmsegmentation's CGNet configs (to_rgb=True, std 1): subtracted from the RGB image,
# in RGB order. The original subtracts the same three numbers in BGR order from the RGB image.
MEAN_RGB = (72.39239876, 82.90891754, 73.15835921)
# The only mmsegmentation CGNet released: Cityscapes, M3N21 (configs/cgnet/cgnet_*_60k_cityscapes.py).
NETWORK = {"name": "CGNet", "classes": 19, "M": 3, "N": 21, "head_bias": True}

_JOINS = {"0": "b1", "1": "bn_prelu_2", "2": "bn_prelu_3"}      # norm_prelu_{i}: the BN+PReLU after each stage
_ACT = {"activate": "act"}                                       # mmcv's ConvModule names its activation `activate`


def is_mmseg(ckpt):
    """An mmsegmentation checkpoint: {"meta", "state_dict", ...} whose keys start with backbone. / decode_head."""
    return (isinstance(ckpt, dict) and "meta" in ckpt and isinstance(ckpt.get("state_dict"), dict)
            and any(k.startswith(("backbone.", "decode_head.")) for k in ckpt["state_dict"]))


def _block(prefix, down, rest):
    """One CG block's parameter name; mmseg's down block is the same module class as the others."""
    part, _, tail = rest.partition(".")
    if part == "conv1x1":                                        # conv1x1.{conv,bn,activate}.*
        sub, _, tail = tail.partition(".")
        return f"{prefix}conv1x1.{_ACT.get(sub, sub)}.{tail}"
    if part in ("f_loc", "f_sur"):                               # a bare conv here, Conv(...).conv in ours
        return f"{prefix}F_{part[2:]}.conv.{tail}"
    if part == "f_glo":
        return f"{prefix}F_glo.{tail}"
    if part == "bottleneck" and down:
        return f"{prefix}reduce.conv.{tail}"
    if part in ("bn", "activate"):                               # the BN+PReLU on cat([loc, sur])
        name = _ACT.get(part, part)
        return f"{prefix}{name}.{tail}" if down else f"{prefix}bn_prelu.{name}.{tail}"
    return None


def original_name(key):
    """The original release's name for an mmsegmentation CGNet parameter, or None if it has none."""
    m = re.fullmatch(r"backbone\.stem\.([012])\.(conv|bn|activate)\.(.+)", key)
    if m:
        return f"level1_{m[1]}.{_ACT.get(m[2], m[2])}.{m[3]}"
    m = re.fullmatch(r"backbone\.norm_prelu_([012])\.([01])\.(.+)", key)
    if m:
        return f"{_JOINS[m[1]]}.{'bn' if m[2] == '0' else 'act'}.{m[3]}"
    m = re.fullmatch(r"backbone\.level([12])\.(\d+)\.(.+)", key)  # mmseg's stages 1, 2 are the original's 2, 3
    if m:
        stage, i = int(m[1]) + 1, int(m[2])
        prefix = f"level{stage}_0." if i == 0 else f"level{stage}.{i - 1}."
        return _block(prefix, i == 0, m[3])
    m = re.fullmatch(r"decode_head\.conv_seg\.(weight|bias)", key)
    if m:
        return f"classifier.0.conv.{m[1]}"
    return None


def _config_types(meta):
    """(backbone type, head type) named in the config text that mmsegmentation stores in `meta`."""
    text = (meta.get("config") or meta.get("cfg")) if isinstance(meta, dict) else None  # mmseg 0.x / 1.x
    text = text if isinstance(text, str) else ""
    found = [re.search(rf"{part}\s*=\s*dict\(\s*type\s*=\s*['\"](\w+)['\"]", text)
             for part in ("backbone", "decode_head")]
    return [f[1] if f else None for f in found]


def to_original(ckpt):
    """The state_dict of an mmsegmentation CGNet M3N21 Cityscapes checkpoint under the original's names
    (plus the classifier bias). Anything else raises ValueError with a clause saying what the file is."""
    sd = ckpt["state_dict"]
    backbone, head = _config_types(ckpt["meta"])
    if backbone not in (None, "CGNet"):
        raise ValueError(f"is an mmsegmentation {backbone} + {head or 'unknown head'} checkpoint, not CGNet")
    names = {k: original_name(k) for k in sd}
    foreign = [k for k, v in names.items() if v is None]
    if foreign:
        what = f"a {backbone} + {head} model" if backbone and head else "another network"
        raise ValueError(f"is an mmsegmentation checkpoint of {what} (parameters such as {', '.join(foreign[:2])} "
                         f"have no place in CGNet)")
    converted = {names[k]: v for k, v in sd.items()}
    M = len({k.split(".")[2] for k in sd if k.startswith("backbone.level1.")})
    N = len({k.split(".")[2] for k in sd if k.startswith("backbone.level2.")})
    head_weight = sd.get("decode_head.conv_seg.weight")
    classes = head_weight.shape[0] if torch.is_tensor(head_weight) else None
    if (M, N, classes) != (NETWORK["M"], NETWORK["N"], NETWORK["classes"]):
        raise ValueError(f"is an mmsegmentation CGNet M{M}N{N} with {classes} classes, not the released "
                         f"Cityscapes CGNet M3N21 (19 classes)")
    own = CGNet.Context_Guided_Network(NETWORK["classes"], NETWORK["M"], NETWORK["N"], head_bias=True).state_dict()
    odd = [f"{k} {tuple(v.shape)}" for k, v in converted.items() if k not in own or own[k].shape != v.shape]
    missing = [k for k in own if k not in converted]
    if odd or missing:
        raise ValueError(f"is an mmsegmentation CGNet M3N21 of other channel widths or an incomplete one "
                         f"({', '.join((odd + missing)[:2])} do not fit the released network)")
    return converted
