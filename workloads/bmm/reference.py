import torch
import torch.nn as nn


class Model(nn.Module):
    """C[b] = A[b] @ B[b] for A [BATCH, M, K], B [BATCH, K, N] in fp32 (torch.bmm): attention scores
    per head (Q @ K^T with K^T materialised as [head_dim, seq]), P @ V, or one GEMM per MoE expert."""

    def __init__(self):
        super().__init__()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.bmm(a, b)


BATCH = 32
M = 512
N = 512
K = 128


def get_inputs():
    return [torch.randn(BATCH, M, K), torch.randn(BATCH, K, N)]


def get_init_inputs():
    return []
