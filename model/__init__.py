"""Networks selectable with --model; `from model import CGNet` works as in the original scripts."""
from model import CGNet

MODELS = ("CGNet",)


def build_model(name, classes, M=3, N=21, dropout_flag=False):
    if name == "CGNet":
        return CGNet.Context_Guided_Network(classes, M=M, N=N, dropout_flag=dropout_flag)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def run_name(args, gpu_nums):
    """Checkpoint folder name of the original: CGNet_M3N21bs16gpu2_ontrain."""
    if args.model == "CGNet":
        return f"CGNet_M{args.M}N{args.N}bs{args.batch_size}gpu{gpu_nums}_{args.train_type}"
    return f"{args.model}_bs{args.batch_size}gpu{gpu_nums}_{args.train_type}"


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
