import torch
import torch.nn as nn


class Model(nn.Module):
    """C = A @ B"""

    def forward(self, a, b):
        return a @ b


M = 16
N = 16
K = 16


def get_inputs():
    return [torch.randn(M, K), torch.randn(K, N)]


def get_init_inputs():
    return []
