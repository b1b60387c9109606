import torch
import torch.nn as nn


class Model(nn.Module):
    """RMSNorm over the last dimension with a learned per-channel weight (LLaMA-style)."""

    def __init__(self, hidden: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        # Not all ones: a kernel that ignores the weight must fail verification.
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


M = 2048
N = 4096


def get_inputs():
    return [torch.randn(M, N)]


def get_init_inputs():
    return [N]
