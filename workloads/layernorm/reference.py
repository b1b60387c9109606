import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """LayerNorm over the last dimension with a learned weight and bias (GPT-2 / OPT / BLOOM style).

    y = (x - mean) / sqrt(var + eps) * weight + bias, biased variance (divide by N), eps 1e-5.
    """

    def __init__(self, hidden: int, eps: float = 1e-5):
        super().__init__()
        self.hidden = hidden
        self.eps = eps
        # Neither all ones nor all zeros: a kernel that skips the weight or the bias must fail.
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(hidden))
        self.bias = nn.Parameter(0.1 * torch.randn(hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (self.hidden,), self.weight, self.bias, self.eps)


M = 2048
N = 4096


def get_inputs():
    return [torch.randn(M, N)]


def get_init_inputs():
    return [N]
