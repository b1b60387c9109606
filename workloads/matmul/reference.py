import torch
import torch.nn as nn


class Model(nn.Module):
    """C = A @ B for A [M, K], B [K, N] in fp32: compute-bound, the vendor library is the bar."""

    def __init__(self):
        super().__init__()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


M = 1024
N = 1024
K = 1024


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, N)]


def get_init_inputs():
    return []
