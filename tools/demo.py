"""Interim demo: build CGNet, count its parameters and run one forward pass on the CPU."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from model import build_model, count_parameters  # noqa: E402

model = build_model("CGNet", 19).eval()
with torch.no_grad():
    out = model(torch.randn(1, 3, 512, 1024))
print(f"CGNet_M3N21: {count_parameters(model):,} parameters; output {tuple(out.shape)} for a 1x3x512x1024 input")
