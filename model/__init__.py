"""Networks selectable with --model; `from model import CGNet` works as in the original scripts."""
from model import CGNet

MODELS = ("CGNet", "ENet", "ESPNet", "LRASPP", "EncNet")


def build_model(name, classes, M=3, N=21, dropout_flag=False, head_bias=False):
    """M, N, dropout_flag and head_bias (a classifier bias, for mmsegmentation's checkpoints) configure
    CGNet only; the comparison networks are imported on demand."""
    if name == "CGNet":
        return CGNet.Context_Guided_Network(classes, M=M, N=N, dropout_flag=dropout_flag, head_bias=head_bias)
    if name == "ENet":
        from model.ENet import ENet
        return ENet(classes)
    if name == "ESPNet":
        from model.ESPNet import ESPNet
        return ESPNet(classes)
    if name == "LRASPP":
        from model.LRASPP import LRASPP
        return LRASPP(classes)
    if name == "EncNet":
        from model.EncNet import EncNet
        return EncNet(classes)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
